"""Experiments: the pipeline once per value of one config parameter, compared in SQL.

Each value is an ordinary run, tied to the experiment in the warehouse table `experiments`;
the view `experiment_results` lines up their goal and capability deltas. With `lora.alpha`
set, scale = alpha / rank, so a rank sweep also changes the scale (PEFT's convention); with
`lora.scale` set it stays fixed (mlx-lm's). The effective rank and scale of every member are
recorded to keep that visible.

On a work pool (`lorascope sweep ... --work-pool NAME`), members run as separate flow runs
on the pool's workers, which must share this `$LORASCOPE_HOME` (docs/operations.md).

A domain experiment (`lorascope experiment domains CONFIG...`) has one member per config,
each tuned on its own domain and evaluated on every member's domain: the member's run
evaluated again with the other config's eval.prompts and eval.goal (`transfer_overrides`).
The view `domain_transfer` lines up the matrix (docs/experiments.md).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from lorascope import warehouse
from lorascope.config import ConfigError, RunConfig, load_config
from lorascope.errors import LorascopeError
from lorascope.evaluation.prompts import TEST_SPLIT
from lorascope.paths import experiments_dir, warehouse_path
from lorascope.report import Section, format_cell, query_section, render_report
from lorascope.runs import utc_now


class MemberFailed(LorascopeError):
    """A sweep member run on a work pool did not complete (or there was no pool to run on)."""


def experiment_id_for(config_name: str, config_hash: str, parameter: str, values: list) -> str:
    """Same base config, parameter and values: same experiment (re-running resumes it)."""
    digest = hashlib.sha256(json.dumps([config_hash, parameter, values]).encode()).hexdigest()
    return f"{config_name}-sweep-{parameter.rsplit('.', 1)[-1]}-{digest[:8]}"


def member_name(config_name: str, parameter: str, value: Any) -> str:
    """A readable run name per value, e.g. demo-rank16 or demo-source-my_domain."""
    leaf = parameter.rsplit(".", 1)[-1]
    if isinstance(value, int | float):
        return f"{config_name}-{leaf}{value}"
    slug = re.sub(r"[^A-Za-z0-9]+", "_", Path(str(value)).name or str(value)).strip("_")
    return f"{config_name}-{leaf}-{slug}"


def member_overrides(parameter: str, value: Any, name: str) -> list[str]:
    # JSON is YAML: the override parser reads the value back with its type.
    return [f"{parameter}={json.dumps(value)}", f"name={name}"]


def check_values(config_path: str, parameter: str, values: list[Any]) -> None:
    """Load the config with every value, so a bad parameter or value fails before any run."""
    name = load_config(config_path).name
    for value in values:
        load_config(config_path, member_overrides(parameter, value, name))


def record_member(home: Path, experiment_id: str, run_id: str, parameter: str, position: int,
                  value: Any, config_path: str, overrides: list[str]) -> None:
    config = load_config(config_path, overrides)
    warehouse.write_rows(warehouse_path(home), "experiments", [{
        "experiment_id": experiment_id, "run_id": run_id, "parameter": parameter,
        "position": position, "value": str(value), "lora_rank": config.lora.rank,
        "lora_scale": config.lora.effective_scale, "created_at": utc_now(),
    }])


def write_experiment_report(home: Path, experiment_id: str, parameter: str) -> Path:
    section = query_section(
        warehouse_path(home), f"Results by {parameter}",
        "Tuning-goal deltas (tuned - base, per domain and metric) and capability deltas "
        "(accuracy, with the paired 95 % CI) of each member run.",
        "experiment_results", {"experiment_id": experiment_id},
    )
    text = render_report(f"lorascope experiment: {experiment_id}",
                         {"experiment": experiment_id, "parameter": parameter}, [section])
    path = experiments_dir(home) / experiment_id / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


DOMAIN = "domain"  # the experiments.parameter of a domain experiment's members


def load_domain_configs(config_paths: list[str]) -> list[RunConfig]:
    """The member configs of a domain experiment, checked before any run: two or more, with
    distinct names, each naming eval prompts another run can be evaluated on."""
    if len(config_paths) < 2:
        raise ConfigError("a domain experiment needs two or more configs, one per domain, "
                          "e.g. configs/demo.yaml configs/demo-commonsense.yaml")
    configs = [load_config(path) for path in config_paths]
    names = [config.name for config in configs]
    for path, config in zip(config_paths, configs, strict=True):
        if names.count(config.name) > 1:
            raise ConfigError(f"{path}: name {config.name!r} is another member's too; each "
                              "domain's config needs its own name (it names the domain)")
        if TEST_SPLIT in config.eval.prompts:
            raise ConfigError(
                f"{path}: eval.prompts names {TEST_SPLIT!r}, each run's own test split, on "
                "which another domain's run cannot be evaluated; name the domain's prompts "
                "(builtin:NAME or a JSONL file) instead")
    return configs


def domain_experiment_id(configs: list[RunConfig]) -> str:
    """Same member configs (training and eval settings): same experiment (re-running
    resumes it)."""
    digest = hashlib.sha256(json.dumps(
        [[config.config_hash(), config.eval_hash()] for config in configs]).encode()).hexdigest()
    return f"domains-{'-'.join(config.name for config in configs)}-{digest[:8]}"


def transfer_overrides(evaluated: RunConfig) -> list[str]:
    """eval overrides that evaluate a run on the domain of config `evaluated`: its prompt
    sets and its goal (every other eval setting stays the run's own, so capability and the
    other prompt-independent work is reused from the run's own evaluation)."""
    goal = [check.model_dump(mode="json", exclude_defaults=True)
            for check in evaluated.eval.goal]
    return [f"eval.prompts={json.dumps(evaluated.eval.prompts)}",
            f"eval.goal={json.dumps(goal)}"]


def interval_cell(delta: float | None, low: float | None, high: float | None) -> str:
    if delta is None:
        return ""
    if low is None or high is None:
        return f"{delta:+.3f}"
    return f"{delta:+.3f} [{low:+.3f}, {high:+.3f}]"


def transfer_matrix(
    rows: list[dict[str, Any]], keys: tuple[str, ...], domains: list[str],
    bold_diagonal: bool = True,
) -> tuple[list[str], list[list[str]]]:
    """Rows of the domain_transfer report query pivoted: one row per value of `keys`, one
    column per trained domain, each cell the delta with its CI (bold on the diagonal)."""
    cells: dict[tuple, dict[str, str]] = {}
    for row in rows:
        cell = interval_cell(row["delta"], row["ci_low"], row["ci_high"])
        if cell and bold_diagonal and row["trained_domain"] == row["evaluated_domain"]:
            cell = f"**{cell}**"
        cells.setdefault(tuple(row[k] for k in keys), {})[row["trained_domain"]] = cell
    columns = [*keys, *(f"tuned on {domain}" for domain in domains)]
    return columns, [[*(format_cell(v) for v in key), *(by.get(d, "") for d in domains)]
                     for key, by in cells.items()]


def write_domain_report(home: Path, experiment_id: str, domains: list[str]) -> Path:
    """The domain experiment's report: the goal matrix (trained x evaluated domain), the
    other comparisons of each member's own evaluation, and every comparison in full."""
    full = query_section(
        warehouse_path(home), "Every comparison",
        "Each trained domain on each evaluated domain: the paired items (n), base and tuned, "
        "the delta with its 95 % CI, the p-value adjusted over its evaluation and the "
        "minimum detectable effect (mde).",
        "domain_transfer", {"experiment_id": experiment_id},
    )
    rows = [dict(zip(full.columns, row, strict=True)) for row in full.rows]
    goal = [row for row in rows if row["family"] == "goal"]
    own = [row for row in rows
           if row["family"] != "goal" and row["trained_domain"] == row["evaluated_domain"]]
    sections = [
        Section("Transfer matrix: each domain's goal",
                "Tuned - base on each evaluated domain's prompts, scored with that domain's "
                "goal (slice in_domain: its held-out questions; out_of_domain: its transfer "
                "set), with the 95 % CI. In bold the diagonal, the gain in the domain a run "
                "was tuned on; the other columns the gain or loss a run's tuning brought to "
                "a domain it never saw.",
                *transfer_matrix(goal, ("evaluated_domain", "slice", "metric"), domains),
                full.sql),
        Section("Capability and the other families",
                "Each tuned run's own evaluation: capability, calibration, test loss, "
                "instruction following, failure modes and behaviour families, tuned - base "
                "with the 95 % CI.",
                *transfer_matrix(own, ("family", "slice", "metric"), domains, False),
                full.sql),
        full,
    ]
    text = render_report(f"lorascope domain experiment: {experiment_id}",
                         {"experiment": experiment_id, "domains": ", ".join(domains),
                          "query": "lorascope sql --saved domain_transfer"}, sections)
    path = experiments_dir(home) / experiment_id / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
