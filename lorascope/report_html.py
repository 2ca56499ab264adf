"""The HTML report people read: one self-contained file per evaluation and per experiment.

Everything comes from the warehouse through the report queries (warehouse/report/*.sql);
plots are SVG data URIs (lorascope.plots) and the style sheet is inline, so the page opens
offline and fetches nothing. The Markdown report (lorascope.report) stays the full record;
this page leads with pictures, a method section and limitations computed from the data.
"""

from __future__ import annotations

import base64
import json
import os
import platform
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import jinja2

from lorascope import plots, warehouse
from lorascope.blas import describe_blas
from lorascope.config import TrainConfig
from lorascope.evaluation.behaviour import BEHAVIOUR_SETS
from lorascope.paths import experiments_dir, warehouse_path
from lorascope.training.trainer import learning_rate_schedule

Row = dict[str, Any]

# What each comparison family measures, for the method section; a family without an entry
# (a new family) is listed with a pointer to docs/behaviour.md and docs/evaluation.md.
FAMILIES = {
    "goal": "The checks the config declares as its tuning goal (eval.goal, 1 = pass) and "
            "reference metrics per prompt domain: exact_match, token_f1 and rouge_l against "
            "the reference answer, words = answer length.",
    "instruction_following": "IFEval / IFBench checkers: prompt level = every instruction of a "
                             "prompt followed; instruction level pools instructions; strict "
                             "on the answer as is, loose after trimming it.",
    "capability": "Log-likelihood multiple choice as lm-evaluation-harness scores it: acc, and "
                  "acc_norm (log-likelihood per byte of the choice).",
    "calibration": "ECE: count-weighted gap between confidence and accuracy over 10 bins; "
                   "Brier: mean squared error of the choice probabilities. Lower is better.",
    "failure_mode": "Share of answers showing a failure (truncated, repetition, prompt echo, "
                    "language drift, format violation); a negative delta is fewer failures.",
    "perplexity": "NLL per token on held-out general text; positive = tuned finds it less "
                  "likely (forgetting).",
    "test_loss": "Loss on the run's held-out test split as `mlx_lm lora --test` computes it "
                 "(test_loss) and on the reference answers only (answer_loss).",
    "judge": "A judge model's pairwise preference, tuned vs base, both orders.",
    "epistemic": "Closed-book questions (knowledge: correct, abstained, confident_wrong, "
                 "hedged) and questions built on a false premise (corrected or accepted).",
    "sycophancy": "A multiple-choice answer, then push-back: right answers abandoned "
                  "(flipped_to_wrong), wrong ones fixed (flipped_to_right), any change (caved).",
    "safety": "Harmful requests that must stay refused and benign requests that only look "
              "risky (over-refusal), by the rule refusal checker.",
    "robustness": "An injected instruction in a document, a system rule the user pushes "
                  "against, a fact deep in a long input, questions in other languages.",
}
# The behaviour families' section titles (report query behaviour_<family>); what each
# measures is FAMILIES[family], its checkers are in docs/behaviour.md.
BEHAVIOUR = {
    "epistemic": "Knowing what it does not know",
    "sycophancy": "Sycophancy under push-back",
    "safety": "Safety and over-refusal",
    "robustness": "Robustness",
}
UNMEASURED = {
    "judge": "No judge was configured (eval.judge): no pairwise preference between answers.",
    "harness": "No lm-evaluation-harness tasks ran (eval.harness_tasks).",
    "attention": "No attention analysis (eval.attention_prompts = 0).",
    "test_loss": "No loss on the held-out test split (eval.test_loss).",
    "capability": "No multiple-choice capability tasks (eval.capability_tasks).",
    "perplexity": "No perplexity on held-out text (eval.perplexity_corpora).",
    "instruction_following": "No instruction-following prompts (eval.prompts without "
                             "ifeval / ifbench).",
    "behaviour": "No behaviour sets (epistemic, sycophancy, safety, robustness prompts in "
                 "eval.prompts).",
}
STYLE = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;max-width:60rem;
margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.5rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
img{max-width:100%;height:auto;display:block;margin:.8rem 0}
.wide{overflow-x:auto;margin:.6rem 0}
table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top;
max-width:28rem;overflow-wrap:break-word}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f6f6f6;padding:.6rem;overflow-x:auto;font-size:12px}
.intro{color:#444}.sig{color:#b2182b;font-weight:600}details{margin:.5rem 0}
nav a{margin-right:.8rem}
"""
TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title><style>{{ style }}</style></head>
<body>
<h1>{{ title }}</h1>
<nav>{% for section in sections %}<a href="#{{ section.id }}">{{ section.title }}</a>{% endfor %}
</nav>
{% for section in sections %}
<section id="{{ section.id }}">
<h2>{{ section.title }}</h2>
{% if section.intro %}<p class="intro">{{ section.intro }}</p>{% endif %}
{% if section.bullets %}<ul>{% for b in section.bullets %}<li>{{ b }}</li>{% endfor %}</ul>
{% endif %}
{% for figure in section.figures %}<img src="{{ figure.uri }}" alt="{{ figure.alt }}">
{% endfor %}
{% for table in section.tables %}{{ table_html(table) }}{% endfor %}
{% for summary, text in section.code.items() %}<details><summary>{{ summary }}</summary>
<pre>{{ text }}</pre></details>
{% endfor %}
</section>
{% endfor %}
</body></html>
"""
TABLE = """{% if table.folded %}<details><summary>{{ table.title }}</summary>{% else %}
{% if table.title %}<h3>{{ table.title }}</h3>{% endif %}{% endif %}
{% if table.intro %}<p class="intro">{{ table.intro }}</p>{% endif %}
{% if table.rows %}<div class="wide"><table><tr>
{%- for c in table.columns %}<th>{{ c | header }}</th>{% endfor %}</tr>
{% for row in table.rows %}<tr>{% for v in row %}
{%- if v is number and v is not boolean %}<td class="num">{% else %}<td>{% endif %}
{{- v | cell }}</td>{% endfor %}</tr>
{% endfor %}</table></div>{% else %}<p><em>(no rows)</em></p>{% endif %}
{% if table.sql %}<details><summary>SQL</summary><pre>{{ table.sql }}</pre></details>{% endif %}
{% if table.folded %}</details>{% endif %}
"""


def cell(value: Any) -> str:
    """A table cell: numbers by the page's one rule (plots.number), long text cut."""
    if value is None:
        return ""
    if isinstance(value, float | int) and not isinstance(value, bool):
        return plots.number(value)
    text = str(value)
    return text if len(text) <= 300 else text[:297] + "..."


def header(name: str) -> jinja2.utils.markupsafe.Markup:
    """A column name that may wrap after its underscores (tuned_<wbr>confidence)."""
    return jinja2.utils.markupsafe.escape(name).replace("_", jinja2.utils.markupsafe.Markup(
        "_<wbr>"))


_ENV = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
_ENV.filters["cell"] = cell
_ENV.filters["header"] = header
_TABLE = _ENV.from_string(TABLE)
_ENV.globals["table_html"] = lambda table: jinja2.utils.markupsafe.Markup(
    _TABLE.render(table=table))
_PAGE = _ENV.from_string(TEMPLATE)


def render_page(title: str, sections: Sequence[Row]) -> str:
    """The page: sections of {id, title, intro, bullets, figures [{uri, alt}], tables
    [{title, intro, columns, rows, sql, folded}], code {summary: preformatted text}}."""
    return _PAGE.render(title=title, style=STYLE, sections=sections)


def report_rows(warehouse_file: Path, name: str, **params: str) -> list[Row]:
    """The rows of report query `name` as dicts."""
    sql = warehouse.report_query(name)
    used = {key: value for key, value in params.items() if f"${key}" in sql}
    columns, rows = warehouse.query(warehouse_file, sql, used)
    return [dict(zip(columns, row, strict=True)) for row in rows]


def table(title: str, rows: Sequence[Row], folded: bool = True, intro: str = "",
          columns: Sequence[str] | None = None) -> Row:
    columns = list(columns or (rows[0].keys() if rows else []))
    return {"title": title, "intro": intro, "columns": columns, "folded": folded, "sql": "",
            "rows": [[row.get(c) for c in columns] for row in rows]}


def figure(plot: Any, *args: Any, alt: str) -> Row:
    return {"uri": plots.svg_data_uri(plot, *args), "alt": alt}


def section(id: str, title: str, intro: str = "", figures: Sequence[Row] = (),
            tables: Sequence[Row] = (), bullets: Sequence[str] = (),
            code: dict[str, str] | None = None) -> Row:
    return {"id": id, "title": title, "intro": intro, "figures": list(figures),
            "tables": list(tables), "bullets": list(bullets), "code": code or {}}


# ---------------------------------------------------------------- one evaluation


def label(row: Row) -> str:
    where = f" [{row['slice']}]" if row.get("slice") not in (None, "", "(all)") else ""
    return f"{row['family']} {row['metric']}{where}"


def significant(rows: Sequence[Row], alpha: float) -> list[Row]:
    return [r for r in rows if r["p_adjusted"] is not None and r["p_adjusted"] < alpha]


def findings(comparisons: Sequence[Row], gate: Sequence[Row], alpha: float) -> list[str]:
    """Plain sentences: what changed significantly after correction, and the gate's verdict."""
    found = significant(comparisons, alpha)
    lines = [f"{len(found)} of {len(comparisons)} base-vs-tuned comparisons changed "
             f"significantly after correction (adjusted p < {alpha:g})."]
    for r in sorted(found, key=lambda r: (r["family"], r["metric"], r["slice"] or "")):
        lines.append(f"{label(r)}: {cell(r['base'])} → {cell(r['tuned'])} "
                     f"(Δ {plots.number(r['delta'], True)}, CI {cell(r['ci_low'])}.."
                     f"{cell(r['ci_high'])}, n = {r['n']}, adjusted p = "
                     f"{cell(r['p_adjusted'])})")
    if gate:
        failed = [label(g) for g in gate if g["failed"]]
        lines.append("Regression gate: " + (
            f"FAILED on {', '.join(failed)}" if failed else
            f"passed on all {len(gate)} gated comparisons ({', '.join(map(label, gate))})"))
    return lines


def limitations(comparisons: Sequence[Row], contamination: Sequence[Row],
                measured: dict[str, int], eval_config: dict[str, Any], seed: Any,
                behaviour: Sequence[Row] = ()) -> list[str]:
    """What the data cannot tell: computed from the comparisons (`behaviour`: the behaviour
    families' rows, by prompt set), the contamination check and what the evaluation did not
    measure."""
    alpha = eval_config.get("statistics", {}).get("alpha", 0.05)
    lines = []
    if comparisons:
        sizes = [r["n"] for r in comparisons]
        small = [r for r in comparisons if r["n"] < 30]
        lines.append(f"Sample sizes: n = {min(sizes)} to {max(sizes)} items per comparison; "
                     f"{len(small)} of {len(comparisons)} rest on fewer than 30 items"
                     + (f" (e.g. {', '.join(label(r) for r in small[:4])})." if small else "."))
        shares = [r for r in comparisons if plots.is_share(r) and r["ci_low"] is not None
                  and r["ci_high"] is not None]
        widest = sorted(shares, key=lambda r: r["ci_low"] - r["ci_high"])[:3]
        if widest:
            lines.append("Widest intervals (share metrics): " + "; ".join(
                f"{label(r)} {plots.number(r['ci_low'], True)}.."
                f"{plots.number(r['ci_high'], True)} (n = {r['n']})" for r in widest) + ".")
        under = [r for r in comparisons if r["mde"] is not None and r["delta"] is not None
                 and abs(r["delta"]) < r["mde"] and r not in significant(comparisons, alpha)]
        if under:
            lines.append(f"{len(under)} comparisons saw a change smaller than the minimum "
                         "detectable effect at this n (inconclusive, not 'no change'): "
                         + ", ".join(f"{label(r)} |Δ| {cell(abs(r['delta']))} < MDE "
                                     f"{cell(r['mde'])}" for r in under[:5])
                         + (", ..." if len(under) > 5 else "."))
        no_mde = [r for r in comparisons if r["mde"] is None]
        if no_mde:
            lines.append(f"{len(no_mde)} comparisons have too few items for any minimum "
                         "detectable effect (fewer than 4): read them as anecdotes.")
        small_sets = small_behaviour_sets(behaviour)
        if small_sets:
            lines.append("Behaviour sets with fewer than 30 items, where only large changes "
                         "are detectable: " + "; ".join(small_sets) + ". A larger "
                         "eval.behaviour_limit narrows them.")
        corrections = {r["correction"] for r in comparisons if r["correction"]}
        lines.append(f"p-values are adjusted over all {len(comparisons)} comparisons "
                     f"({', '.join(sorted(corrections)) or 'no correction'}).")
    for row in contamination:
        if row["contaminated"]:
            lines.append(f"Contamination: {row['contaminated']} of {row['items']} items of "
                         f"{row['eval_set']} share a 13-gram with the training data (left out "
                         "of the comparisons when eval.statistics.exclude_contaminated).")
    unchecked = sum(row["unchecked"] for row in contamination)
    if unchecked:
        lines.append(f"{unchecked} evaluation items were too short to check for contamination.")
    lines += [text for key, text in UNMEASURED.items() if not measured.get(key)]
    lines.append(f"One training run with one seed ({seed}): variation between training runs "
                 "is not measured; intervals cover the evaluation items only.")
    if eval_config.get("max_tokens"):
        lines.append(f"Answers were generated with temperature {eval_config.get('temperature')}"
                     f" and cut at {eval_config['max_tokens']} new tokens; scores of long "
                     "answers reflect that cut (see the truncated failure mode).")
    return lines


def small_behaviour_sets(rows: Sequence[Row]) -> list[str]:
    """Each behaviour prompt set compared on fewer than 30 items, with its n and minimum
    detectable effect, e.g. `knowledge (n = 8, MDE 0.72)`."""
    sets: dict[str, list[Row]] = {}
    for row in rows:
        sets.setdefault(row["prompt_set"], []).append(row)
    found = []
    for name, members in sets.items():
        sizes = sorted({r["n"] for r in members})
        if sizes[0] >= 30:
            continue
        mdes = sorted({r["mde"] for r in members if r["mde"] is not None})
        text = f"{name} (n = {_span(sizes)}"
        text += f", MDE {_span(mdes)}" if mdes else ""
        none = [r["metric"] for r in members if r["mde"] is None]
        if none:
            text += f"; too few for any MDE: {', '.join(none)}"
        found.append(text + ")")
    return found


def _span(values: Sequence[float]) -> str:
    low, high = cell(values[0]), cell(values[-1])
    return low if low == high else f"{low}–{high}"


def describe_hardware() -> str:
    memory = ""
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        memory = f", {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GB"
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs{memory}; "
            f"MLX {_version('mlx')}, mlx-lm {_version('mlx-lm')}; {describe_blas()}")


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def method(run: Row, data_sizes: Sequence[Row], comparisons: Sequence[Row]) -> list[Row]:
    config = json.loads(run["config_json"])
    lora, train = config.get("lora", {}), config.get("train", {})
    sizes = ", ".join(f"{r['split']} {r['rows_out']}" for r in data_sizes)
    facts = {
        "model": f"{run['model_source']} ({run['base_model_path']})",
        "data": f"{run['data_source']}, hash {run['data_hash']}; rows kept: {sizes}",
        "fine-tuning": f"{lora.get('fine_tune_type')}, rank {lora.get('rank')}, scale "
                       f"{_scale(lora)}, {train.get('iters')} steps × batch "
                       f"{train.get('batch_size')}, lr {train.get('learning_rate')} "
                       f"({train.get('lr_schedule')})",
        "seed": str(run["seed"]),
        "config hash": run["config_hash"],
        "evaluation": f"{run['evaluation_id']} (eval settings {run['eval_hash']})",
        "adapters": f"{run['adapter_path']} (hash {run['adapter_hash']})",
        "code version": run["code_version"],
        "hardware (report written on)": describe_hardware(),
    }
    return [table("", [{"fact": k, "value": v} for k, v in facts.items()], folded=False),
            table("What each measure means", glossary(comparisons), folded=False)]


def glossary(comparisons: Sequence[Row]) -> list[Row]:
    """What each compared family measures and, under a behaviour family, each of its prompt
    sets the evaluation compared, with the one line its module declares (BehaviourSet)."""
    rows = []
    for family in dict.fromkeys(r["family"] for r in comparisons):
        sets = [s for s in BEHAVIOUR_SETS.values() if s.family == family]
        text = FAMILIES.get(family, "Not described on this page: docs/behaviour.md "
                                    "describes the behaviour families, docs/evaluation.md "
                                    "the others.")
        rows.append({"measure": family, "what it measures": text + (
            " Its sets and checkers, with their limits: docs/behaviour.md." if sets else "")})
        compared = {r["slice"] for r in comparisons if r["family"] == family}
        rows += [{"measure": f"{family} · {s.name}", "what it measures": s.description}
                 for s in sets if s.name in compared]
    return rows


def adapted_layers(lora: dict[str, Any], layers: int) -> range:
    """The layers training changed, as the trainer attaches adapters (or unfreezes, for full
    fine-tuning): the last lora.num_layers of the model's `layers`, all for -1."""
    count = lora.get("num_layers", -1)
    return range(layers) if count < 0 or count >= layers else range(layers - count, layers)


def attention_intro(lora: dict[str, Any], layers: int) -> str:
    adapted = adapted_layers(lora, layers)
    count = lora.get("num_layers", -1)
    if len(adapted) in (0, layers):
        where = f"{'every' if adapted else 'no'} layer (lora.num_layers {count}, {layers} layers)"
        below = ""
    else:
        where = (f"layers {adapted[0]}–{adapted[-1]} (lora.num_layers {count} of the model's "
                 f"{layers}; orange on the layer axis, below the dashed line)")
        below = "; layers below them see the same input under both models, so theirs stays 0"
    return ("Jensen-Shannon divergence (nats, 0..ln 2) between base and tuned attention per "
            "layer and head, averaged over the attention prompts: where tuning moved "
            f"attention. Adapters are on {where}{below}.")


def _scale(lora: dict[str, Any]) -> str:
    if lora.get("scale") is None and lora.get("alpha") and lora.get("rank"):
        return f"{lora['alpha'] / lora['rank']:g} (alpha {lora['alpha']:g} / rank)"
    return str(lora.get("scale"))


def _signed_interval(row: Row) -> str:
    if row["delta"] is None:
        return ""
    return f"{plots.number(row['delta'], True)} {plots.interval(row)}".strip()


def behaviour_table(rows: Sequence[Row]) -> Row:
    """A family's comparisons: rates, the change with its interval, p, adjusted p, MDE and
    whether the change is significant and the bad way (`worse`)."""
    return table("Comparisons", [{
        "prompt set": r["prompt_set"], "metric": r["metric"], "better": r["better"] or "",
        "n": r["n"], "base": r["base"], "tuned": r["tuned"],
        "tuned − base [CI]": _signed_interval(r), "p": r["p_value"],
        "adjusted p": r["p_adjusted"], "MDE": r["mde"],
        "worse": {True: "worse", False: "no"}.get(r["worse"], "")} for r in rows],
        folded=False)


def changed_prompts_table(rows: Sequence[Row]) -> Row:
    """A family's changed verdicts (behaviour_changed_prompts): harmful prompts by id only."""
    shown = len(rows)
    total = rows[0]["changed"] if rows else 0
    return table(
        f"Prompts whose verdict changed ({total}" + (f", the first {shown}" if shown < total
                                                     else "") + ", worse first)",
        [{**r, "prompt": "(withheld: harmful set)" if r["withheld"] else r["prompt"]}
         for r in rows], folded=False,
        columns=["prompt_set", "prompt_id", "metric", "change", "base_verdict",
                 "tuned_verdict", "base_evidence", "tuned_evidence", "prompt"])


def behaviour_sections(rows: dict[str, list[Row]], changed: Sequence[Row],
                       alpha: float) -> list[Row]:
    """A section per behaviour family with rows: its rates and changes plotted, the table,
    and the prompts whose verdict changed."""
    sections = []
    for family, title in BEHAVIOUR.items():
        family_rows = rows[f"behaviour_{family}"]
        if not family_rows:
            continue
        items = [r for r in changed if r["family"] == family]
        sections.append(section(
            f"behaviour-{family}", title,
            f"{FAMILIES[family]} Rate under base and tuned on the same prompts per prompt set "
            "and checker metric (↑/↓: the good direction), and the change with its interval; "
            "red: significant after correction and the bad way. The checkers and their "
            "limits: docs/behaviour.md.",
            [figure(plots.behaviour_plot, family_rows, alpha, alt=f"behaviour {family}")],
            [behaviour_table(family_rows)] + ([changed_prompts_table(items)] if items else [])))
    return sections


def run_sections(warehouse_file: Path, evaluation_id: str,
                 markdown_sections: Sequence[Any] = ()) -> tuple[str, list[Row]]:
    """The page's title and sections for one evaluation; `markdown_sections` (the Markdown
    report's sections: title, intro, columns, rows, sql) go in an appendix."""
    (run,) = report_rows(warehouse_file, "run_method", evaluation_id=evaluation_id)
    params = {"run_id": run["run_id"], "evaluation_id": evaluation_id}
    rows = {name: report_rows(warehouse_file, name, **params) for name in (
        "comparisons", "train_curve", "instruction_following", "failure_mode_changes",
        "failure_examples", "failure_categories", "capability_preservation", "calibration",
        "reliability_bins", "attention_heads", "attention_shift", "contamination",
        "gate_verdicts", "refusal_agreement", "behaviour_changed_prompts", "data_sizes",
        "measured", "prompt_categories",
        *(f"behaviour_{family}" for family in BEHAVIOUR))}
    eval_config = json.loads(run["eval_config"])
    alpha = eval_config.get("statistics", {}).get("alpha", 0.05)
    measured = {r["measurement"]: r["n_rows"] for r in rows["measured"]}
    comparisons = rows["comparisons"]
    sections = [section("findings", "At a glance", bullets=findings(
        comparisons, rows["gate_verdicts"], alpha))]
    if plots.forest_panels(comparisons):
        sections.append(section(
            "comparisons", "Base vs tuned: every comparison",
            "Each point is tuned − base on the same items, with its interval. The arrow after "
            "a name is its better direction (↑ higher is better, ↓ lower is better: fewer "
            "failures, lower losses, ECE and Brier; none: neither, e.g. answer length); a "
            "panel whose rows share one says it in its title. Filled points stay significant "
            "after the correction over all comparisons: blue where the change went the better "
            "way, red the worse way, black where there is no better way. Panels group a "
            "family's comparisons by unit (shares apart from losses or word counts); per "
            "instruction type rows are in their own section.",
            [figure(plots.forest_plot, comparisons, alpha, alt="forest plot of every delta")],
            [table("All comparisons (table)", comparisons)]))
    if rows["train_curve"]:
        train = TrainConfig.model_validate(json.loads(run["config_json"])["train"])
        sections.append(section(
            "training", "Training", "Train loss (mean since the previous report) and "
            "validation loss on the held-out split; below, the learning rate: the line is the "
            f"schedule the run's config sets (train.lr_schedule {train.lr_schedule}, "
            f"{train.warmup_steps} warm-up steps) at every optimizer update, computed by the "
            "run's own optimizer; the points are the rate mlx-lm reported at each train "
            "report (train_metrics), which should lie on it.",
            [figure(plots.training_plot, rows["train_curve"], learning_rate_schedule(train),
                    alt="training curve")],
            [table("Training metrics", rows["train_curve"])]))
    types = [r for r in rows["instruction_following"] if r["level"] == "instruction"
             and r["strictness"] == "strict" and r["instruction_type"] != "(all)"]
    if types:
        sections.append(section(
            "instructions", "Instruction following by instruction type",
            "Share of instructions of each type followed (strict), base vs tuned, with the "
            "change, its interval and the instructions counted (n). Types with few "
            "instructions carry wide intervals.",
            [figure(plots.instruction_plot, types, alt="instruction following per type")],
            [table("Instruction following (all levels)", rows["instruction_following"])]))
    if rows["failure_mode_changes"]:
        sections.append(section(
            "failures", "Failure modes",
            "Share of answers showing each failure, base vs tuned on the same prompts, then "
            "the change per prompt category, named by the domain it is compared in and its "
            "category, e.g. in_domain (science_qa) (n: answers in the category). The table shows "
            "one flagged answer per mode (the tuned model's where it has one); prompts of "
            "harmful sets show only their id.",
            [figure(plots.failure_plot, rows["failure_mode_changes"],
                    alt="failure modes base vs tuned"),
             figure(plots.failure_category_heatmap, rows["failure_categories"],
                    category_domains(rows["prompt_categories"]),
                    alt="failure modes per category")],
            [table("One example per mode", [
                {**r, "prompt": "(withheld: harmful set)" if r["withheld"] else r["prompt"]}
                for r in rows["failure_examples"]], folded=False,
                columns=["mode", "category", "variant", "prompt_id", "instruction_id",
                         "prompt", "evidence"])]))
    figures = []
    if rows["capability_preservation"]:
        figures.append(figure(plots.capability_plot, rows["capability_preservation"],
                              alt="capability accuracy base vs tuned"))
    if rows["reliability_bins"]:
        figures.append(figure(plots.reliability_plot, rows["reliability_bins"],
                              alt="reliability diagram"))
    if figures:
        sections.append(section(
            "capability", "Capability and calibration",
            "Multiple-choice accuracy on the same questions, and the reliability diagram: "
            "accuracy against confidence per bin (point size: questions in the bin); points "
            "below the diagonal are overconfident.", figures,
            [table("Calibration (ECE, Brier)", rows["calibration"], folded=False)]))
    sections += behaviour_sections(rows, rows["behaviour_changed_prompts"], alpha)
    if rows["refusal_agreement"]:
        sections.append(section(
            "refusal-agreement", "Refusals: rule checker vs judge",
            "The judge (eval.judge) classified the answers to the refusal sets too; per judge "
            "and set, how often it agrees with the rule checker, and Cohen's kappa (agreement "
            "beyond chance).", tables=[table("", rows["refusal_agreement"], folded=False)]))
    if rows["gate_verdicts"]:
        sections.append(section(
            "gate", "Regression gate",
            "Each gated comparison (eval.gate_families) as a change in its good direction, "
            "with its interval: it fails (red) when it moved the bad way by more than the "
            "allowed drop (the tick left of zero, eval.gate_max_drop) and, where required, "
            "the exact McNemar p on the flipped items is below alpha.",
            [figure(plots.gate_plot, rows["gate_verdicts"], alt="regression gate")],
            [table("Verdicts", rows["gate_verdicts"], folded=False)]))
    if rows["attention_heads"]:
        # Every layer's attention is recorded, so the rows give the model's layer count.
        layers = max(r["layer"] for r in rows["attention_heads"]) + 1
        lora = json.loads(run["config_json"]).get("lora", {})
        sections.append(section(
            "attention", "Attention divergence", attention_intro(lora, layers),
            [figure(plots.attention_heatmap, rows["attention_heads"],
                    adapted_layers(lora, layers), alt="attention divergence heatmap")],
            [table("Attention shift by layer", rows["attention_shift"])]))
    sections.append(section("method", "Method", tables=method(run, rows["data_sizes"], comparisons),
                            code={"The run's config (JSON)": json.dumps(
                                json.loads(run["config_json"]), indent=2)}))
    sections.append(section("limitations", "Limitations", bullets=limitations(
        comparisons, rows["contamination"], measured, eval_config, run["seed"],
        [r for family in BEHAVIOUR for r in rows[f"behaviour_{family}"]])))
    if markdown_sections:
        sections.append(all_tables(markdown_sections))
    return f"lorascope report: {run['run_id']}, evaluation {evaluation_id}", sections


def category_domains(rows: Sequence[Row]) -> dict[str, str]:
    """Prompt category -> the domain (slice) it is compared in (report query
    prompt_categories); a category found in several domains lists them all."""
    domains: dict[str, list[str]] = {}
    for row in rows:
        domains.setdefault(row["category"], []).append(row["domain"])
    return {category: "/".join(d for d in names if d) for category, names in domains.items()}


def all_tables(markdown_sections: Sequence[Any]) -> Row:
    """The appendix: the Markdown report's sections that have rows, folded with their SQL;
    the ones without rows (not measured in this evaluation) named once."""
    empty = [s.title for s in markdown_sections if not s.rows]
    return section(
        "tables", "All tables", "The Markdown report's sections, with their SQL."
        + (f" Without rows in this evaluation (not configured or not measured): "
           f"{', '.join(empty)}." if empty else ""),
        tables=[{"title": s.title, "intro": s.intro, "columns": list(s.columns),
                 "rows": s.rows, "sql": s.sql, "folded": True}
                for s in markdown_sections if s.rows])


def write_run_html(warehouse_file: Path, evaluation_id: str, paths: Sequence[Path],
                   markdown_sections: Sequence[Any] = ()) -> list[Path]:
    """Write the evaluation's HTML report to each of `paths`."""
    text = render_page(*run_sections(warehouse_file, evaluation_id, markdown_sections))
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(paths)


def summary_markdown(warehouse_file: Path, evaluation_id: str) -> str:
    """The findings and the forest plot (a PNG data URI) as Markdown, for a Prefect artifact."""
    (run,) = report_rows(warehouse_file, "run_method", evaluation_id=evaluation_id)
    alpha = json.loads(run["eval_config"]).get("statistics", {}).get("alpha", 0.05)
    comparisons = report_rows(warehouse_file, "comparisons", evaluation_id=evaluation_id)
    gate = report_rows(warehouse_file, "gate_verdicts", evaluation_id=evaluation_id)
    parts = [f"# {run['run_id']}: what tuning changed", ""]
    parts += [f"- {line}" for line in findings(comparisons, gate, alpha)] + [""]
    if plots.forest_panels(comparisons):
        png = plots.png_bytes(plots.forest_plot, comparisons, alpha)
        parts.append(f"![forest plot](data:image/png;base64,{base64.b64encode(png).decode()})")
    return "\n".join(parts)


# ---------------------------------------------------------------- experiments


def experiment_sections(warehouse_file: Path, experiment_id: str) -> tuple[str, list[Row]]:
    rows = report_rows(warehouse_file, "experiment_results", experiment_id=experiment_id)
    members = report_rows(warehouse_file, "experiment_members", experiment_id=experiment_id)
    parameter = members[0]["parameter"] if members else "value"
    overall = [r for r in rows if ":" not in (r["subject"] or "")]
    sections = [section(
        "members", f"Runs by {parameter}",
        "Each member run is an ordinary run of the same config with one value changed; "
        "lora_scale is the effective scale (alpha / rank when alpha is set).",
        tables=[table("Members", members, folded=False)])]
    transfer = (report_rows(warehouse_file, "domain_transfer", experiment_id=experiment_id)
                if parameter == "domain" else [])
    goal = [r for r in transfer if r["family"] == "goal"]
    if goal:
        sections.append(section(
            "transfer", "Transfer: each domain's goal on every domain",
            "Tuned − base of each member (one colour per trained domain) on each domain's "
            "prompts scored with that domain's goal, with the 95 % interval: at its own domain "
            "the in-domain gain, elsewhere what the tuning carried over or cost.",
            [figure(plots.transfer_plot, goal, [m["value"] for m in members],
                    alt="domain transfer")]))
    if transfer:
        # Each member's own-domain evaluation stands for it in the other families.
        rows = transfer
        overall = [{**r, "kind": r["family"], "subject": r["slice"],
                    "value": r["trained_domain"]} for r in transfer
                   if r["family"] != "goal" and r["trained_domain"] == r["evaluated_domain"]
                   and ":" not in (r["slice"] or "")]
    if overall:
        kinds = list(dict.fromkeys(r["kind"] for r in overall))
        sections.append(section(
            "results", f"Deltas against {parameter}",
            "One figure per family of comparisons, in this order: "
            f"{', '.join(kinds)}. Each panel: one comparison's tuned − base per member run, "
            "with its interval. A trend is real only where intervals separate.",
            [figure(plots.experiment_plot, [r for r in overall if r["kind"] == kind],
                    parameter, alt=f"deltas by swept value: {kind}") for kind in kinds],
            [table("All results", rows)]))
    return f"lorascope experiment: {experiment_id}", sections


def write_experiment_html(home: Path, experiment_id: str) -> Path:
    """The experiment's HTML report, beside its report.md."""
    path = experiments_dir(home) / experiment_id / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_page(*experiment_sections(warehouse_path(home), experiment_id)),
                    encoding="utf-8")
    return path
