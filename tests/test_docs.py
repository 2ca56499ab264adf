"""Every shell command and SQL snippet of README.md and docs/*.md, executed on a tiny run.

The snippets are extracted from the Markdown, so the docs cannot rot. What is extracted:

- ```sql blocks: each statement runs on the warehouse of a real tiny pipeline run (TINY_RUN
  on tiny-mistral, one run for the module) and must not fail.
- ```sh and ```bash blocks: every line is a command (a trailing backslash continues it,
  `# ...` is a comment). ```console blocks: only lines starting with `$ ` are commands, the
  rest is output. Other blocks (```text, ```yaml, unlabelled) are not commands.

Placeholders in commands and SQL: `<run_id>` and `RUN_ID` stand for the tiny run's id,
`<evaluation_id>` and `EVALUATION_ID` for its evaluation's id. Commands run in a scratch
folder where `.lorascope` is the tiny run's home (also $LORASCOPE_HOME), and `.venv`,
`configs`, `bench` and `Makefile` are the project's, so they run as a reader types them.

A directive on the line before a block changes what happens to it:

- `<!-- docs-test: skip REASON -->`: nothing runs (REASON is required and says why).
- `<!-- docs-test: parse REASON -->`: lorascope commands are parsed, not run (see below).
- `<!-- docs-test: rows -->`: every SQL statement of the block must return rows on the tiny run
  (use it where the tiny run has the answer: runs, train metrics, comparisons, ...).

What a command does, by program (`.venv/bin/` and leading `VAR=value` are dropped):

- `lorascope`: always parsed by the real argument parser (a wrong flag or command fails);
  a config it names under `configs/` is loaded with the command's `--set` overrides (and a
  sweep's values), a config elsewhere is the reader's own file and not loaded. Cheap
  commands then run for real, in process, on the tiny run: `sql`, `status`, `gc` (with
  `--yes` on a copy of the home), `config`, `--help`, and `plan` for a model the planner
  knows without a download. The rest (`run`, `resume`, `sweep`, `serve`, `eval`, `export`,
  `validate`, `prepare-model`) would train, download or serve: parsed only.
- `duckdb`: run for real (it must be a one-shot `-c` query) on the tiny warehouse.
- `prefect`, `mlx_lm.*`, `hf`, `python bench/*.py`: run with `--help` appended; every
  `--flag` of the command must appear in that help.
- `make TARGET`: the target must be defined in the Makefile (not run: `make demo` is the
  demo itself).
- `pip install PKG`: PKG must be installed in .venv (the project installs it).
- `curl`: not run (it needs a server the block starts); a `-d` body must be valid JSON.
- `export`, `cat`, `brew`, `apt-get`: not checked (environment, reading a file, the
  Mac and root set-ups).

Any other program fails the test: give it a rule here or a directive in the Markdown.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import TINY_RUN, home_with_tiny_mistral

from lorascope import warehouse
from lorascope.paths import warehouse_path

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
DIRECTIVE = re.compile(r"<!--\s*docs-test:\s*(skip|parse|rows)\b\s*(.*?)\s*-->")
SHELL_LANGUAGES = {"sh", "bash", "console"}
CHEAP = {"sql", "status", "gc", "config"}
NOT_CHECKED = {"export", "cat", "brew", "apt-get"}
HELP_CHECKED = {"prefect", "hf"}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    language: str
    text: str
    directive: str | None
    reason: str

    @property
    def where(self) -> str:
        return f"{os.path.relpath(self.path, ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    text = path.read_text()
    found = []
    for match in FENCE.finditer(text):
        language = match.group(1)
        if language not in SHELL_LANGUAGES | {"sql"}:
            continue
        before = [line for line in text[: match.start()].splitlines() if line.strip()]
        directive = DIRECTIVE.search(before[-1]) if before else None
        found.append(Block(path, text.count("\n", 0, match.start()) + 1, language,
                           match.group(2), directive.group(1) if directive else None,
                           directive.group(2) if directive else ""))
    return found


def commands(block: Block) -> list[str]:
    """The block's command lines, continuation lines joined, console output left out."""
    lines, pending = [], ""
    for raw in block.text.splitlines():
        if block.language == "console" and not pending:
            if not raw.startswith("$ "):
                continue
            raw = raw[2:]
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line = (pending + raw).strip()
        pending = ""
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def statements(block: Block) -> list[str]:
    return [s.strip() for s in re.split(r";\s*(?:\n|$)", block.text) if s.strip()]


ALL_BLOCKS = [block for path in DOCS for block in blocks(path)]
# A block marked `skip` (with its reason, checked below) is not collected: no skipped tests.
SQL_BLOCKS = [b for b in ALL_BLOCKS if b.language == "sql" and b.directive != "skip"]
SHELL_BLOCKS = [b for b in ALL_BLOCKS
                if b.language in SHELL_LANGUAGES and b.directive != "skip"]


# ---------------------------------------------------------------- the tiny run


@pytest.fixture(scope="module")
def tiny_run(prefect_harness, tmp_path_factory, tiny_mistral_dir) -> dict:
    from lorascope.flows.pipeline import pipeline

    home = home_with_tiny_mistral(tmp_path_factory.mktemp("docs_home"), tiny_mistral_dir)
    config = tmp_path_factory.mktemp("docs_config") / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_RUN))
    run_id = pipeline(str(config), home=str(home))
    (evaluation_id,), = warehouse.query(
        warehouse_path(home), "select evaluation_id from evaluations where run_id = ?",
        [run_id])[1]
    return {"home": home, "run_id": run_id, "evaluation_id": evaluation_id}


@pytest.fixture(scope="module")
def scratch(tiny_run, tmp_path_factory) -> Path:
    """A folder where the docs' relative paths mean what they mean in a checkout."""
    folder = tmp_path_factory.mktemp("docs_cwd")
    (folder / ".lorascope").symlink_to(tiny_run["home"])
    for name in (".venv", "configs", "bench", "Makefile", "warehouse"):
        (folder / name).symlink_to(ROOT / name)
    return folder


def substitute(text: str, run: dict) -> str:
    for placeholder in ("<run_id>", "RUN_ID"):
        text = text.replace(placeholder, run["run_id"])
    for placeholder in ("<evaluation_id>", "EVALUATION_ID"):
        text = text.replace(placeholder, run["evaluation_id"])
    return text


# ---------------------------------------------------------------- extraction


def test_the_docs_have_snippets_to_check() -> None:
    assert len(SQL_BLOCKS) >= 1 and len(SHELL_BLOCKS) >= 10


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: b.where)
def test_a_skipped_block_says_why(block: Block) -> None:
    assert block.directive not in ("skip", "parse") or block.reason, (
        f"{block.where}: a docs-test {block.directive} needs a reason")


def test_console_blocks_keep_commands_and_leave_output() -> None:
    block = Block(ROOT, 1, "console", "$ lorascope plan a.yaml \\\n    --no-data\npeak 6 GB\n",
                  None, "")
    assert commands(block) == ["lorascope plan a.yaml      --no-data"]


# ---------------------------------------------------------------- SQL


@pytest.mark.parametrize("block", SQL_BLOCKS, ids=lambda b: b.where)
def test_sql_snippet_runs_on_the_tiny_run(block: Block, tiny_run: dict) -> None:
    for statement in statements(block):
        columns, rows = warehouse.query(warehouse_path(tiny_run["home"]),
                                        substitute(statement, tiny_run))
        assert columns, f"{block.where}: no columns from {statement!r}"
        if block.directive == "rows":
            assert rows, f"{block.where}: no rows on the tiny run from {statement!r}"


# ---------------------------------------------------------------- shell commands


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=lambda b: b.where)
def test_shell_commands_run_or_parse(block: Block, tiny_run: dict, scratch: Path,
                                     prefect_api_url: str, monkeypatch, capsys) -> None:
    monkeypatch.chdir(scratch)
    monkeypatch.setenv("LORASCOPE_HOME", str(tiny_run["home"]))
    monkeypatch.setenv("PWD", str(scratch))
    for line in commands(block):
        argv = shlex.split(os.path.expandvars(substitute(line, tiny_run)), comments=True)
        while argv and re.fullmatch(r"[A-Z_]+=.*", argv[0]):
            argv.pop(0)
        assert argv, f"{block.where}: empty command {line!r}"
        check_command(block, Path(argv[0]).name, argv[1:], tiny_run, scratch, capsys)


def check_command(block: Block, program: str, args: list[str], run: dict, scratch: Path,
                  capsys) -> None:
    where = f"{block.where}: {program} {' '.join(args)}"
    if program == "lorascope":
        check_lorascope(where, args, block.directive == "parse", run, capsys)
    elif program == "duckdb":
        assert "-c" in args, f"{where}: an interactive duckdb shell; use -c or a directive"
        result = subprocess.run([str(VENV_BIN / "duckdb"), *args], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, f"{where}: {result.stderr}"
    elif program in HELP_CHECKED or program.startswith("mlx_lm"):
        check_help(where, [str(VENV_BIN / program), *args])
    elif program in ("python", "python3"):
        assert args and args[0].startswith("bench/"), f"{where}: only bench scripts have a rule"
        assert (ROOT / args[0]).is_file(), f"{where}: no such script"
        check_help(where, [sys.executable, *args])
    elif program == "make":
        makefile = (ROOT / "Makefile").read_text()
        for target in (a for a in args if "=" not in a and not a.startswith("-")):
            assert re.search(rf"^{re.escape(target)}:", makefile, re.M), (
                f"{where}: no target {target!r} in the Makefile")
    elif program == "pip":
        from importlib.metadata import distribution

        for package in (a for a in args[1:] if not a.startswith("-")):
            distribution(re.split(r"[=<>\[]", package)[0])
    elif program == "curl":
        if "-d" in args:
            json.loads(args[args.index("-d") + 1])
    else:
        assert program in NOT_CHECKED, (
            f"{where}: no rule for {program!r}; add one to tests/test_docs.py or a directive")


def check_help(where: str, argv: list[str]) -> None:
    """The command's own --help answers, and names every --flag the docs use."""
    result = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, f"{where}: --help failed: {result.stderr[-2000:]}"
    for flag in (a.split("=")[0] for a in argv[1:] if a.startswith("--")):
        assert flag in result.stdout, f"{where}: {flag} is not in its --help"


def check_lorascope(where: str, args: list[str], parse_only: bool, run: dict, capsys) -> None:
    from lorascope.cli import build_parser, main

    if args == ["--help"] or args[-1:] == ["--help"]:
        parse_only = False
    else:
        try:
            parsed = build_parser().parse_args(args)
        except SystemExit as exit:
            pytest.fail(f"{where}: the CLI refuses it (exit {exit.code}): "
                        f"{capsys.readouterr().err}")
        known_model = check_config(where, parsed)
        if parse_only or not (parsed.command in CHEAP or
                              (parsed.command == "plan" and known_model)):
            return
        if parsed.command == "gc" and parsed.yes:
            home = Path(os.environ["LORASCOPE_HOME"])
            copy = home.parent / f"{home.name}-gc-copy"
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(home, copy, symlinks=True)
            os.environ["LORASCOPE_HOME"] = str(copy)
    capsys.readouterr()
    try:
        code = main(args)
    except SystemExit as exit:  # --help
        code = exit.code
    output = capsys.readouterr()
    assert code == 0, f"{where}: exit {code}: {output.err[-2000:]}"


def check_config(where: str, parsed) -> bool:
    """Load the config a command names (with its overrides); True when the planner knows its
    model without a download."""
    from lorascope.config import load_config
    from lorascope.experiments import check_values
    from lorascope.training.planner import KNOWN_CONFIGS

    path = getattr(parsed, "config", None) or getattr(parsed, "target", None)
    if not path or not path.startswith("configs/"):
        return False
    assert (ROOT / path).is_file(), f"{where}: no {path} in the project"
    config = load_config(ROOT / path, getattr(parsed, "overrides", None) or [])
    if parsed.command == "sweep":
        check_values(str(ROOT / path), parsed.parameter, [yaml.safe_load(v)
                                                           for v in parsed.values])
    return config.model.source in KNOWN_CONFIGS


# ---------------------------------------------------------------- figures quoted from the demo


def findings_checker():
    sys.path.insert(0, str(ROOT / "bench"))
    import check_findings

    return check_findings


def findings_block(value: float, tolerance: float) -> str:
    return ("```yaml findings\n- figure: training loss at the last step\n"
            "  sql: select loss from train_metrics where split = 'train' "
            "order by step desc limit 1\n"
            f"  value: {value}\n  tolerance: {tolerance}\n```\n")


def last_train_loss(run: dict) -> float:
    return warehouse.query(warehouse_path(run["home"]), "select loss from train_metrics where "
                           "split = 'train' order by step desc limit 1")[1][0][0]


def test_a_quoted_figure_within_its_tolerance_passes(tiny_run: dict) -> None:
    checker = findings_checker()
    (figure,) = checker.read_figures(findings_block(round(last_train_loss(tiny_run), 2), 0.01))
    assert checker.check_figure(warehouse_path(tiny_run["home"]), figure).ok


def test_a_quoted_figure_off_by_more_than_its_tolerance_fails(tiny_run: dict) -> None:
    checker = findings_checker()
    (figure,) = checker.read_figures(findings_block(last_train_loss(tiny_run) + 0.5, 0.1))
    check = checker.check_figure(warehouse_path(tiny_run["home"]), figure)
    assert not check.ok and "off by" in check.problem


@pytest.mark.parametrize("path", DOCS, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_quoted_figure_has_a_query_that_runs(path: Path, tiny_run: dict) -> None:
    """The values are checked against the demo's warehouse (bench/check_findings.py after
    `make demo`); here, that each figure's query still runs on the current schema."""
    for figure in findings_checker().read_figures(path.read_text()):
        warehouse.query(warehouse_path(tiny_run["home"]), figure.sql)


# ---------------------------------------------------------------- the schema in docs/pipeline.md


def documented_schema(markdown: str) -> set[str]:
    """Names in backticks in the first column of the tables under `## The warehouse`."""
    section = markdown.split("## The warehouse", 1)[1].split("\n## ", 1)[0]
    return {name for line in section.splitlines() if line.startswith("| `")
            for name in re.findall(r"`(\w+)`", line.split("|")[1])}


def test_the_pipeline_page_names_every_table_and_view_and_no_other(tiny_run: dict) -> None:
    _, rows = warehouse.query(warehouse_path(tiny_run["home"]),
                              "select table_name from information_schema.tables")
    actual = {name for (name,) in rows}
    documented = documented_schema((ROOT / "docs" / "pipeline.md").read_text())
    assert actual - documented == set(), "add these to docs/pipeline.md's schema"
    assert documented - actual == set(), "docs/pipeline.md names these, the warehouse has not"
