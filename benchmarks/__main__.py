"""``python -m benchmarks [name …]``: run every ``benchmarks/bench_*.py`` (or those named)."""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path


def discover() -> list[str]:
    """Names of the benchmark modules, in order."""
    return sorted(p.stem.removeprefix("bench_")
                  for p in Path(__file__).resolve().parent.glob("bench_*.py"))


def run(names: list[str]) -> int:
    known = discover()
    unknown = [n for n in names if n.removeprefix("bench_") not in known]
    if unknown:
        print(f"benchmarks: no benchmark named {', '.join(unknown)}; "
              f"known: {', '.join(known)}", file=sys.stderr)
        return 2
    for name in [n.removeprefix("bench_") for n in names] or known:
        print(f"== bench_{name}", flush=True)
        started = time.monotonic()
        importlib.import_module(f"benchmarks.bench_{name}").main()
        print(f"== bench_{name} took {time.monotonic() - started:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1:]))
