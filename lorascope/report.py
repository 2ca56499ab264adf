"""The per-run research report: Markdown rendered from warehouse query results.

Everything in the report is a query users can re-run in SQL; the report only lays it out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Section:
    title: str
    intro: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    sql: str


def format_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value).replace("|", "\\|").replace("\n", "⏎ ")
    return text if len(text) <= 160 else text[:157] + "..."


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    if not rows:
        return "_(no rows)_"
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(format_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render_report(title: str, facts: dict[str, Any], sections: Sequence[Section]) -> str:
    parts = [f"# {title}", "", markdown_table(["", ""], list(facts.items())), ""]
    for section in sections:
        parts += [f"## {section.title}", "", section.intro, "",
                  markdown_table(section.columns, section.rows), "",
                  "<details><summary>SQL</summary>", "", "```sql", section.sql.strip(), "```",
                  "", "</details>", ""]
    return "\n".join(parts)
