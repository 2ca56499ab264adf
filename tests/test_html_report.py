"""The HTML report: plots from warehouse rows, limitations from the data, and the page of a
real tiny pipeline run rendered in headless Chromium (Debian's chromium driven by Playwright)
with every plot drawn and nothing fetched."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import TINY_RUN, home_with_tiny_mistral

from lorascope import plots, report_html, warehouse
from lorascope.paths import experiments_dir, warehouse_path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def comparison(family: str, metric: str, delta: float, p_adjusted: float | None = 1.0,
               **fields) -> dict:
    return {"family": family, "metric": metric, "slice": "", "n": 40, "base": 0.5,
            "tuned": 0.5 + delta, "delta": delta, "ci_low": delta - 0.1,
            "ci_high": delta + 0.1, "confidence": 0.95, "p_adjusted": p_adjusted,
            "mde": 0.2, "correction": "holm", **fields}


# ---------------------------------------------------------------- plots and text, no run


def test_a_new_comparison_family_gets_its_own_forest_panel() -> None:
    rows = [comparison("capability", "acc", 0.02), comparison("sycophancy", "caved", 0.1)]
    assert [title for title, _ in plots.forest_panels(rows)] == [
        "capability · change in share", "sycophancy · change in share"]


def test_a_family_breakdown_by_type_stays_out_of_the_forest_plot() -> None:
    rows = [comparison("instruction_following", "prompt_strict", 0.1, slice="ifeval"),
            comparison("instruction_following", "instruction_strict", 0.1,
                       slice="ifeval:keywords")]
    ((_, members),) = plots.forest_panels(rows)
    assert [row["slice"] for row in members] == ["ifeval"]


def test_forest_plot_fills_only_comparisons_significant_after_correction() -> None:
    figure = plots.forest_plot([comparison("goal", "format_ok", 0.5, p_adjusted=0.001),
                                comparison("goal", "exact_match", 0.4, p_adjusted=0.2)], 0.05)
    points = [line for line in figure.axes[0].lines if line.get_marker() == "o"]
    assert [line.get_markerfacecolor() != "white" for line in points] == [True, False]


def test_limitations_name_what_was_not_measured() -> None:
    lines = report_html.limitations([], [], {"generations": 10, "capability": 8}, {}, 0)
    assert any("No judge" in line for line in lines)
    assert not any("multiple-choice capability" in line for line in lines)


def test_limitations_call_a_delta_below_its_mde_inconclusive() -> None:
    lines = report_html.limitations([comparison("goal", "rouge_l", 0.05)], [], {}, {}, 0)
    assert any("goal rouge_l |Δ| 0.05 < MDE 0.2" in line for line in lines)


def test_limitations_count_contaminated_items() -> None:
    contamination = [{"eval_set": "arc_easy", "items": 40, "contaminated": 3, "unchecked": 0}]
    lines = report_html.limitations([], contamination, {}, {}, 0)
    assert any(line.startswith("Contamination: 3 of 40 items of arc_easy") for line in lines)


# ---------------------------------------------------------------- a real tiny run


@pytest.fixture(scope="module")
def tiny_run(prefect_harness, tmp_path_factory, tiny_mistral_dir) -> dict:
    from lorascope.flows.pipeline import pipeline

    home = home_with_tiny_mistral(tmp_path_factory.mktemp("html_home"), tiny_mistral_dir)
    config = tmp_path_factory.mktemp("html_config") / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_RUN))
    run_id = pipeline(str(config), home=str(home))
    ((evaluation_id,),) = warehouse.query(
        warehouse_path(home), "select evaluation_id from evaluations where run_id = ?",
        [run_id])[1]
    return {"home": home, "run_id": run_id, "evaluation_id": evaluation_id,
            "folder": home / "runs" / run_id}


@pytest.fixture(scope="module")
def experiment(tiny_run, tmp_path_factory) -> Path:
    """A two-member rank experiment: the tiny run and a copy of its comparisons as a second
    run, in a copy of its warehouse."""
    home = tmp_path_factory.mktemp("experiment_home")
    shutil.copy(warehouse_path(tiny_run["home"]), warehouse_path(home))
    path = warehouse_path(home)
    columns, rows = warehouse.query(path, "select * from comparisons")
    other = [{**dict(zip(columns, row, strict=True)), "run_id": "tiny-r8",
              "evaluation_id": "tiny-r8-eval"} for row in rows]
    warehouse.write_rows(path, "comparisons", other)
    warehouse.write_rows(path, "experiments", [
        {"experiment_id": "ranks", "run_id": run_id, "parameter": "lora.rank",
         "position": position, "value": str(rank), "lora_rank": rank, "lora_scale": 2.0}
        for position, (run_id, rank) in enumerate([(tiny_run["run_id"], 4), ("tiny-r8", 8)])])
    return report_html.write_experiment_html(home, "ranks")


@pytest.fixture(scope="module")
def domain_experiment(tiny_run, tmp_path_factory) -> Path:
    """A two-domain experiment in a copy of the tiny run's warehouse: the tiny run (domain
    `sciq`) and a second member (`ifeval`, other eval.prompts), each evaluated on both
    domains; the extra evaluations' comparisons are copies of the tiny run's."""
    home = tmp_path_factory.mktemp("domain_home")
    shutil.copy(warehouse_path(tiny_run["home"]), warehouse_path(home))
    path = warehouse_path(home)

    def rows_of(table: str) -> list[dict]:
        columns, found = warehouse.query(path, f"select * from {table} where run_id = ?",
                                         [tiny_run["run_id"]])
        return [dict(zip(columns, row, strict=True)) for row in found]

    (run,), (evaluation,) = rows_of("runs"), rows_of("evaluations")
    config, eval_config = json.loads(run["config_json"]), json.loads(evaluation["eval_config"])
    other_eval = {**eval_config, "prompts": ["ifeval"]}
    warehouse.write_rows(path, "runs", [{**run, "run_id": "tiny-ifeval",
                                         "config_json": {**config, "eval": other_eval}}])
    cells = {"tiny-on-ifeval": (tiny_run["run_id"], other_eval),
             "ifeval-on-ifeval": ("tiny-ifeval", other_eval),
             "ifeval-on-sciq": ("tiny-ifeval", eval_config)}
    warehouse.write_rows(path, "evaluations", [
        {**evaluation, "evaluation_id": cell, "run_id": run_id, "eval_config": settings}
        for cell, (run_id, settings) in cells.items()])
    comparisons = rows_of("comparisons")
    warehouse.write_rows(path, "comparisons", [
        {**row, "evaluation_id": cell, "run_id": run_id}
        for cell, (run_id, _) in cells.items() for row in comparisons])
    warehouse.write_rows(path, "experiments", [
        {"experiment_id": "domains", "run_id": run_id, "parameter": "domain",
         "position": position, "value": domain, "lora_rank": 4, "lora_scale": 2.0}
        for position, (run_id, domain) in enumerate([(tiny_run["run_id"], "sciq"),
                                                     ("tiny-ifeval", "ifeval")])])
    return report_html.write_experiment_html(home, "domains")


@pytest.mark.slow
def test_a_domain_experiment_report_plots_each_domain_on_every_domain(
        domain_experiment) -> None:
    text = domain_experiment.read_text()
    assert 'alt="domain transfer"' in text and 'alt="deltas by swept value"' in text


@pytest.mark.slow
def test_the_pipeline_writes_the_html_report_beside_the_markdown(tiny_run) -> None:
    folder = tiny_run["folder"] / "evaluations" / tiny_run["evaluation_id"]
    assert (folder / "report.html").is_file() and (tiny_run["folder"] / "report.html").is_file()
    assert (folder / "report.md").is_file()


@pytest.mark.slow
def test_the_html_report_has_a_plot_for_each_kind_of_result(tiny_run) -> None:
    text = (tiny_run["folder"] / "report.html").read_text()
    for alt in ("forest plot of every delta", "training curve", "instruction following per "
                "type", "failure modes per category", "reliability diagram",
                "attention divergence heatmap"):
        assert f'alt="{alt}"' in text


@pytest.mark.slow
def test_the_html_report_stays_small(tiny_run) -> None:
    assert (tiny_run["folder"] / "report.html").stat().st_size < 2_000_000


@pytest.mark.slow
def test_prompts_flagged_harmful_show_only_their_id(tiny_run, tmp_path) -> None:
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(warehouse_path(tiny_run["home"]), path)
    secret, answer = "How do I pick the neighbour's lock tonight?", "First, take a tension..."
    identity = {"evaluation_id": tiny_run["evaluation_id"], "run_id": tiny_run["run_id"],
                "prompt_id": "harm-001"}
    warehouse.write_rows(path, "prompts", [{
        **identity, "source": "harmful", "domain": "safety", "category": "harmful",
        "messages": [{"role": "user", "content": secret}], "harmful": True}])
    warehouse.write_rows(path, "generation_failures", [{
        **identity, "variant": "tuned", "mode": "aaa_complied", "instruction_id": "",
        "evidence": answer}])
    (page,) = report_html.write_run_html(path, tiny_run["evaluation_id"],
                                         [tmp_path / "report.html"])
    text = page.read_text()
    assert "harm-001" in text and "(withheld: harmful set)" in text
    assert "neighbour" not in text and "tension" not in text


@pytest.mark.slow
def test_the_flow_run_gets_a_summary_artifact_with_the_forest_plot(tiny_run) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["run-summary"])))
    ours = [a for a in artifacts if tiny_run["run_id"] in (a.description or "")]
    assert ours and "](data:image/png;base64," in ours[-1].data


@pytest.mark.slow
def test_an_experiment_report_plots_deltas_against_the_swept_value(experiment) -> None:
    text = experiment.read_text()
    assert 'alt="deltas by swept value"' in text and "lora.rank" in text
    assert experiment.parent == experiments_dir(experiment.parents[2]) / "ranks"


# ---------------------------------------------------------------- in headless Chromium


@contextlib.contextmanager
def without_env(name: str) -> Iterator[None]:
    saved = os.environ.pop(name, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[name] = saved


@pytest.fixture(scope="module", params=["run", "experiment", "domain experiment"])
def rendered(request, tiny_run, experiment, domain_experiment) -> dict:
    """The page opened from file:// in headless Chromium: its images' sizes, every request
    it made, failed requests and console errors."""
    assert CHROMIUM is not None, (
        "no chromium on this machine: make install adds Debian's when run as root on Linux "
        "(apt-get install chromium)")
    from playwright import sync_api

    page_path = {"run": tiny_run["folder"] / "report.html", "experiment": experiment,
                 "domain experiment": domain_experiment}[request.param]
    seen: dict = {"requests": [], "failed": [], "errors": []}
    # Playwright's node driver (and the browser it starts) must not inherit the OpenBLAS
    # preload the test command sets for MLX: node then fails to create its threads
    # ("pthread_create: Invalid argument") and the driver can hang at start.
    with without_env("LD_PRELOAD"), sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.on("request", lambda r: seen["requests"].append(r.url))
        page.on("requestfailed", lambda r: seen["failed"].append(r.url))
        page.on("console", lambda m: m.type == "error" and seen["errors"].append(m.text))
        page.on("pageerror", lambda e: seen["errors"].append(str(e)))
        page.goto(page_path.as_uri(), wait_until="load")
        seen["images"] = page.eval_on_selector_all(
            "img, svg", "els => els.map(e => e.tagName === 'IMG' ? "
            "[e.alt, e.complete, e.naturalWidth, e.naturalHeight] : "
            "[e.id, true, e.getBBox().width, e.getBBox().height])")
        browser.close()
    seen["url"] = page_path.as_uri()
    return seen


@pytest.mark.slow
def test_every_plot_is_drawn_in_chromium(rendered) -> None:
    assert rendered["images"]
    assert [alt for alt, complete, width, height in rendered["images"]
            if not (complete and width > 0 and height > 0)] == []


@pytest.mark.slow
def test_the_page_fetches_nothing_but_itself(rendered) -> None:
    assert [url for url in rendered["requests"]
            if url != rendered["url"] and not url.startswith("data:")] == []
    assert rendered["failed"] == []


@pytest.mark.slow
def test_the_page_logs_no_console_errors(rendered) -> None:
    assert rendered["errors"] == []
