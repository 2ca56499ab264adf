"""Check the numbers a document quotes from the demo against a run's warehouse.

A document lists the figures it quotes in fenced blocks whose info string is `yaml findings`,
each figure with the SQL that measures it, the value quoted and the tolerance allowed
(absolute, in the figure's unit):

    ```yaml findings
    - figure: ARC-Easy accuracy, tuned minus base
      sql: select delta from capability_preservation where task = 'arc_easy' and metric = 'acc'
      value: 0.04
      tolerance: 0.03
    ```

    python bench/check_findings.py docs/findings.md --warehouse .lorascope/warehouse.duckdb

prints quoted against measured for every figure and exits 1 when one is off by more than its
tolerance (or its query does not return exactly one number). Run it after `make demo`.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from lorascope import warehouse

FINDINGS_BLOCK = re.compile(r"^```yaml findings[^\n]*\n(.*?)^```", re.S | re.M)


@dataclass(frozen=True)
class Figure:
    figure: str
    sql: str
    value: float
    tolerance: float


@dataclass(frozen=True)
class Check:
    figure: Figure
    measured: float | None
    problem: str

    @property
    def ok(self) -> bool:
        return not self.problem


def read_figures(markdown: str) -> list[Figure]:
    """Every figure of every `yaml findings` block, in order."""
    return [Figure(str(item["figure"]), str(item["sql"]), float(item["value"]),
                   float(item["tolerance"]))
            for block in FINDINGS_BLOCK.findall(markdown) for item in yaml.safe_load(block)]


def check_figure(warehouse_file: Path, figure: Figure) -> Check:
    try:
        _, rows = warehouse.query(warehouse_file, figure.sql)
    except warehouse.WarehouseError as error:
        return Check(figure, None, str(error))
    if len(rows) != 1 or len(rows[0]) != 1 or not isinstance(rows[0][0], (int, float)):
        return Check(figure, None, f"the query must return one number, got {rows[:3]}")
    measured = float(rows[0][0])
    if abs(measured - figure.value) > figure.tolerance:
        return Check(figure, measured, f"off by {measured - figure.value:+.4g}, "
                                       f"more than {figure.tolerance:g}")
    return Check(figure, measured, "")


def format_checks(checks: list[Check]) -> str:
    lines = ["| figure | quoted | measured | tolerance | |", "|---|--:|--:|--:|---|"]
    for check in checks:
        measured = "-" if check.measured is None else f"{check.measured:.4g}"
        lines.append(f"| {check.figure.figure} | {check.figure.value:.4g} | {measured} | "
                     f"± {check.figure.tolerance:g} | {'ok' if check.ok else check.problem} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("document", type=Path, help="a Markdown file with `yaml findings` blocks")
    parser.add_argument("--warehouse", type=Path, default=Path(".lorascope/warehouse.duckdb"),
                        help="the demo run's warehouse (default .lorascope/warehouse.duckdb)")
    args = parser.parse_args(argv)
    checks = [check_figure(args.warehouse, figure)
              for figure in read_figures(args.document.read_text())]
    print(format_checks(checks))
    failed = sum(not check.ok for check in checks)
    print(f"\n{len(checks) - failed} of {len(checks)} figures within tolerance")
    return 1 if failed or not checks else 0


if __name__ == "__main__":
    sys.exit(main())
