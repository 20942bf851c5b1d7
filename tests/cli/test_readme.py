"""The README's configuration table is generated from the settings and must not drift."""

from __future__ import annotations

from botmon.cli import README_BEGIN, README_END, configuration_markdown
from tests.cli.conftest import ROOT


def test_readme_configuration_table_matches_the_settings():
    text = (ROOT / "README.md").read_text()
    _, begin, rest = text.partition(README_BEGIN)
    table, end, _ = rest.partition(README_END)
    assert begin and end, "README.md lost its configuration table markers"
    assert table.strip() == configuration_markdown(), (
        "README.md's configuration table is out of date: run `make readme`")
