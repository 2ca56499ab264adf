"""docs/economics.md quotes `lorascope plan --compare-methods` number for number."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from lorascope.cli import main

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = ROOT / "docs" / "economics.md"
# The command in the chapter's console block, then its output between two markers.
COMMAND = re.compile(r"^\$ (lorascope plan .*--compare-methods.*)$", re.M)
OUTPUT = re.compile(r"<!-- output: begin -->\n(.*?)\n<!-- output: end -->", re.S)


def planner_output(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(shlex.split(command)[1:]) == 0
    return capsys.readouterr().out.rstrip("\n")


def table_cells(markdown: str) -> list[tuple[int, list[str]]]:
    """(line number, cells) of every Markdown table row, separator rows left out."""
    return [(number, [cell.strip() for cell in line.strip().strip("|").split("|")])
            for number, line in enumerate(markdown.splitlines(), 1)
            if line.startswith("|") and not set(line) <= set("|-: ")]


@pytest.fixture
def chapter(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(ROOT)  # the chapter's command names configs/... from the checkout
    return CHAPTER.read_text()


def test_every_table_cell_of_the_chapter_is_what_the_planner_prints(
    chapter: str, capsys: pytest.CaptureFixture[str],
) -> None:
    quoted = OUTPUT.search(chapter)
    assert quoted, "docs/economics.md: no <!-- output: begin --> ... end block"
    printed = table_cells(planner_output(COMMAND.search(chapter).group(1), capsys))
    in_doc = table_cells(quoted.group(1))
    assert len(in_doc) == len(printed), "the chapter's tables have other rows than printed"
    for (line, doc_row), (_, row) in zip(in_doc, printed, strict=True):
        assert doc_row == row, f"docs/economics.md output line {line}: {doc_row} != {row}"


def test_the_chapter_quotes_the_whole_output_verbatim(
    chapter: str, capsys: pytest.CaptureFixture[str],
) -> None:
    # The inputs, the tables and the worked example: re-run the command and paste its output
    # between the markers when the planner changes on purpose.
    printed = planner_output(COMMAND.search(chapter).group(1), capsys)
    assert OUTPUT.search(chapter).group(1) == printed


def test_the_hosted_api_costs_the_trained_tokens_at_the_given_price(
    chapter: str, capsys: pytest.CaptureFixture[str],
) -> None:
    command = COMMAND.search(chapter).group(1) + " --api-price-per-mtok 2"
    api = [row for _, row in table_cells(planner_output(command, capsys))
           if row[0] == "billed per trained token"]
    # 10,000 examples x 512 tokens x 3 epochs at 2 $ per 1M tokens.
    assert api == [["billed per trained token", "15,360,000", "2.00", "30.72"]]
