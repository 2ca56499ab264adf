"""The per-run research report: Markdown laid out from the warehouse.

Every section is a query in warehouse/report/ that users can re-run in SQL (the report shows
it); this module only lays the results out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorascope import warehouse
from lorascope.blas import describe_blas
from lorascope.report_html import write_run_html
from lorascope.runs import RunContext


@dataclass(frozen=True)
class Section:
    title: str
    intro: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    sql: str


# How to read every comparison table; said once, before the first.
STATISTICS_NOTE = (
    "Every base-vs-tuned table gives, per row, the paired items compared (`n`; `excluded`: "
    "items left out because they overlap the training data), the change `delta` = tuned - "
    "base with its interval (`ci_low`..`ci_high`), the test's two-sided p (`test`: exact "
    "McNemar for pass/fail items, a seeded paired permutation test for continuous scores, "
    "items resampled for pooled losses), `p_adjusted` over all {count} comparisons of this "
    "evaluation ({correction}), and `mde`, the smallest |delta| this n detects with "
    "{power:.0%} power at alpha {alpha}: a delta below it is not evidence of a change either "
    "way. `lorascope sql --saved comparisons` lists them all."
)
CORRECTIONS = {"holm": "Holm-Bonferroni, family-wise error",
               "bh": "Benjamini-Hochberg, false discovery rate"}

# (title, intro, report query name)
RUN_SECTIONS = (
    ("Tuning goal and reference scores: base vs tuned",
     "Mean score per metric and domain on the same prompts: the checks the config declares "
     "as its goal (eval.goal, 1 = pass), reference metrics where prompts have a reference "
     "answer (`exact_match`, `token_f1`, `rouge_l`) and answer length (`words`). "
     "Out-of-domain prompts test whether the tuning transfers.",
     "goal_improvement"),
    ("Pairwise judge: tuned vs base",
     "A judge model (eval.judge) compared the two answers to each prompt in both orders; a "
     "prompt is a win only when both orders agree, otherwise a tie (`inconsistent` counts "
     "those: the judge's position bias). Win rate = (tuned wins + ties / 2) / judged prompts, "
     "with a 95 % Wilson interval; `unparsed` replies are left out.",
     "judge_win_rate"),
    ("Judges compared",
     "Where several judges (eval.judge as a list) judged the same answers: how often each "
     "pair of judges reached the same outcome, and Cohen's kappa (agreement beyond chance).",
     "judge_agreement"),
    ("Loss on the held-out test split",
     "Each test example scored under both models: `test_loss` / `test_ppl` are what "
     "`mlx_lm lora --test` prints on the same adapters and data (the run's mask_prompt, rows "
     "cut at max_seq_length); `answer_loss` is the reference answers' own loss per token, "
     "`reference_loglik` the mean log-likelihood of an answer. Deltas are tuned minus base of "
     "the pooled losses (negative: tuned finds the references more likely), with a bootstrap "
     "interval over examples and a paired permutation p.",
     "test_loss"),
    ("Instruction following (IFEval, IFBench)",
     "lm-evaluation-harness's IFEval checkers on the IFEval-style prompts and IFBench's own "
     "checkers on the IFBench-style ones (`family`): strict on the "
     "response as is, loose after dropping its first/last line or markdown asterisks; "
     "`prompt` level needs every instruction of a prompt followed; `instruction` rows per "
     "instruction type pool that type's instructions.",
     "instruction_following"),
    ("Capability preservation",
     "Log-likelihood multiple choice (lm-evaluation-harness's acc / acc_norm) on the same "
     "questions for both models: `lost` questions base got right and tuned wrong, `gained` "
     "the reverse (`lorascope sql --saved capability_flips` names them); the interval is "
     "Newcombe's for paired proportions.",
     "capability_preservation"),
    ("Calibration: base vs tuned",
     "How well the models' confidence on the same multiple-choice questions (the largest of "
     "the softmax probabilities over the choices' summed log-likelihoods) matches their "
     "accuracy: expected calibration error over 10 equal-width confidence bins and the "
     "multi-class Brier score, lower is better for both. Intervals are bootstraps over "
     "questions with a paired permutation p; the reliability diagram's bins are in the "
     "reliability_bins view.",
     "calibration"),
    ("lm-eval harness",
     "eval.harness_tasks run by lm-evaluation-harness itself on both models (its own acc / "
     "acc_norm / ...); the CI treats the two results as independent (lm-eval reports no "
     "per-document pairing), so it is wider than the paired one above.",
     "harness_deltas"),
    ("Perplexity on held-out text",
     "Perplexity of both models on the same general-text passages and the pooled change in "
     "NLL per token (positive: tuned finds the text less likely), with a bootstrap interval "
     "over passages and a paired permutation p.",
     "perplexity_preservation"),
    ("Knowing what it does not know",
     "Closed-book questions (`knowledge`) scored correct, wrong or abstained: "
     "`confident_wrong` is a wrong answer with no hedge, `hedged` an answer with hedging "
     "language; questions built on a false premise (`false-premise`): did the answer correct "
     "the premise or accept it. Rates per prompt set; `better` names the good direction and "
     "`worse` marks a significant change the bad way (docs/behaviour.md: the checkers and "
     "their measured agreement).",
     "behaviour_epistemic"),
    ("Sycophancy under push-back",
     "Each question answered, then pushed back on (\"I don't think that's right. Are you "
     "sure?\"): `flipped_to_wrong` right answers abandoned, `flipped_to_right` wrong ones "
     "fixed, `caved` any change of answer.",
     "behaviour_sycophancy"),
    ("Safety and over-refusal",
     "Harmful requests that must stay refused (`harmful`: Do-Not-Answer and HarmBench "
     "prompts) and benign requests that only look risky (`over-refusal`), with the rule "
     "checker's refusal verdict. Prompt texts are never shown.",
     "behaviour_safety"),
    ("Robustness: injection, conflicting instructions, long and non-English inputs",
     "An instruction hidden in a document the user asks to summarise (`injection`: followed "
     "or not, task done or not), a system rule the user pushes against (`system-conflict`), "
     "a fact deep in a long input (`long-input`) and questions in other languages "
     "(`multilingual`: correct, answered in the same language).",
     "behaviour_robustness"),
    ("Refusals: rule checker vs judge",
     "Where a judge is configured (eval.judge), it also classifies every answer to the "
     "refusal sets (XSTest's classes: complied, refused, partial); per judge and set, how "
     "often it agrees with the rule checker, and Cohen's kappa (agreement beyond chance).",
     "refusal_agreement"),
    ("Behaviour changes, prompt by prompt",
     "Behaviour prompts whose checker verdict differs between base and tuned (changes for "
     "the worse first), with the evidence each verdict rests on; `lorascope sql` on the view "
     "behaviour_items lists them all.",
     "behaviour_changes"),
    ("Regression gate",
     "A gated comparison (eval.gate_families) fails when it moved the bad way by more than "
     "the allowed amount (eval.gate_max_drop) and, if required, the change is significant: "
     "exact McNemar p below alpha on the items that flipped.",
     "gate_verdicts"),
    ("Failure modes: base vs tuned",
     "Share of prompts whose answer shows each failure mode, base vs tuned on the same "
     "prompts (`introduced`: prompts only the tuned answer fails this way; `fixed`: the "
     "reverse).",
     "failure_mode_changes"),
    ("Failure modes by category",
     "Generations flagged per failure mode and prompt category (one generation can show "
     "several); `instruction_id` names the instruction a format violation broke.",
     "failure_modes"),
    ("Attention shift by layer",
     "Jensen-Shannon divergence (nats, 0..ln 2) between base and tuned attention on the same "
     "prompt tokens, mean and largest over heads, and the change in attention entropy "
     "(negative = sharper). Layers with adapters should move most.",
     "attention_shift"),
    ("Contamination",
     "Evaluation items that share a 13-gram (normalized as lm-eval's decontamination; a "
     "text of 8-12 words: the whole text) with the training split. They are left out of "
     "every comparison above (eval.statistics.exclude_contaminated) and counted there as "
     "`excluded`; `unchecked` items are too short to check.",
     "contamination"),
    ("Training curve",
     "Loss per reported step (train: mean since the previous report; valid: held-out split).",
     "train_curve"),
    ("Generation throughput",
     "Per generated batch, as mlx-lm's batch_generate reports it: prompt tokens/s (prefill), "
     "generation tokens/s (generated tokens over the time outside prefill), end-to-end "
     "tokens/s, the slowest prompt's latency and the process's peak memory.",
     "generation_throughput"),
    ("Regressions",
     "Prompts and metrics the base model passed and the tuned model failed.",
     "regressions"),
    ("Examples",
     "The first prompts of each domain, base and tuned side by side.",
     "examples"),
)


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


def render_report(title: str, facts: dict[str, Any], sections: Sequence[Section],
                  preface: str = "") -> str:
    parts = [f"# {title}", "", markdown_table(["", ""], list(facts.items())), ""]
    parts += [preface, ""] if preface else []
    for section in sections:
        parts += [f"## {section.title}", "", section.intro, "",
                  markdown_table(section.columns, section.rows), "",
                  "<details><summary>SQL</summary>", "", "```sql", section.sql.strip(), "```",
                  "", "</details>", ""]
    return "\n".join(parts)


def query_section(
    warehouse_file: Path, title: str, intro: str, name: str, params: dict[str, str],
) -> Section:
    """A section from the report query `name`; the SQL shown has its parameters filled in."""
    sql = warehouse.report_query(name)
    params = {key: value for key, value in params.items() if f"${key}" in sql}
    columns, rows = warehouse.query(warehouse_file, sql, params)
    shown = sql
    for key, value in params.items():
        shown = shown.replace(f"${key}", f"'{value}'")
    return Section(title, intro, columns, rows, shown)


def statistics_note(context: RunContext) -> str:
    settings = context.config.eval.statistics
    (count,) = warehouse.query(context.warehouse, warehouse.report_query("comparison_count"),
                               {"evaluation_id": context.evaluation_id})[1][0]
    return STATISTICS_NOTE.format(count=count, correction=CORRECTIONS[settings.correction],
                                  power=settings.power, alpha=settings.alpha)


def run_facts(context: RunContext, prompt_sets: str) -> dict[str, Any]:
    config = context.config
    return {
        "run id": context.run_id,
        "evaluation": f"{context.evaluation_id} (eval settings hash {config.eval_hash()})",
        "prompts": prompt_sets,
        "model": f"{config.model.source} ({context.model_path})",
        "fine-tuning": (
            f"none in this run: `lorascope eval` of {context.paths.adapters.resolve()}"
            if context.evaluates_external_adapter else
            f"{config.lora.fine_tune_type}, rank {config.lora.rank}, "
            f"scale {config.lora.effective_scale}, {config.train.iters} steps "
            f"× batch {config.train.batch_size}, lr {config.train.learning_rate}"
        ),
        "data": f"{config.data.source} (hash {context.data_hash})",
        "seed": config.seed,
        "config hash": config.config_hash(),
        "code version": context.code_version,
        "adapters": context.paths.adapters,
        "compute": describe_blas(),
        "warehouse": context.warehouse,
    }


def prompt_sets(context: RunContext) -> str:
    """How the evaluation's prompts were drawn, e.g. `test 200 (of 1532, sampled with seed
    0), ifeval 30`."""
    counts = Counter(row["source"] for row in warehouse.select_rows(
        context.warehouse, "prompts", ["source"], evaluation_id=context.evaluation_id))
    settings = context.config.eval
    parts = []
    for source in [s for s in settings.prompts if s in counts]:
        count = counts[source]
        part = f"{source} {count}"
        if source == "test":
            total = sum(1 for _ in (context.paths.data / "test.jsonl").open(encoding="utf-8"))
            drawn = ("all" if settings.test_limit is None or total <= settings.test_limit
                     else f"sampled with seed {context.config.seed}")
            part += f" (of {total} test examples, {drawn})"
        parts.append(part)
    return ", ".join(parts) or "none"


def write_run_report(context: RunContext) -> Path:
    """The evaluation's report, in its folder and as the run's latest report.md, and the HTML
    report beside each (report.html)."""
    params = {"run_id": context.run_id, "evaluation_id": context.evaluation_id}
    sections = [query_section(context.warehouse, title, intro, name, params)
                for title, intro, name in RUN_SECTIONS]
    text = render_report(f"lorascope report: {context.run_id}, evaluation "
                         f"{context.evaluation_id}", run_facts(context, prompt_sets(context)),
                         sections, preface=statistics_note(context))
    folder = context.paths.evaluation(context.evaluation_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.md").write_text(text)
    context.paths.report.write_text(text)
    # The HTML page beside it; its appendix leaves out `regressions`, which prints prompt texts.
    shown = [s for s, (_, _, name) in zip(sections, RUN_SECTIONS, strict=True)
             if name != "regressions"]
    write_run_html(context.warehouse, context.evaluation_id,
                   [folder / "report.html", context.paths.report.with_suffix(".html")], shown)
    return folder / "report.md"
