"""The rules shipped with botmon, stored on first start and then the operator's to edit."""

from __future__ import annotations

from services.alerts.rule import Rule

__all__ = ["DEFAULT_RULES"]

DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(name="high_cpu", metric="cpu.usage_percent", condition="greater_than", threshold=80,
         duration_seconds=300, severity="warning",
         description="CPU usage above {threshold}% for {duration} (now {value}%)"),
    Rule(name="high_memory_usage", metric="memory.usage_percent", condition="greater_than",
         threshold=90, duration_seconds=300, severity="warning",
         description="Memory usage above {threshold}% for {duration} (now {value}%)"),
    Rule(name="disk_space", metric="disk.free_percent", condition="less_than", threshold=10,
         duration_seconds=60, severity="critical",
         description="Disk space below {threshold}% (now {value}%)"),
    Rule(name="high_error_rate", metric="requests.error_rate", condition="greater_than",
         threshold=0.05, duration_seconds=300, severity="error",
         description="Error rate above {threshold} for {duration} (now {value})"),
    Rule(name="high_p99_latency", metric="requests.p99_latency_ms", condition="greater_than",
         threshold=2000, duration_seconds=300, severity="warning",
         description="p99 latency above {threshold} ms for {duration} (now {value} ms)"),
)
