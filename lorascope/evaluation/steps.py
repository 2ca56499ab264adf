"""The evaluation steps of a run, base and tuned alike: generate answers to the eval prompts,
score them, the reference answers' loss on the test split, capability preservation and
lm-eval tasks, each landing its rows in the warehouse under the evaluation's id. Work already
stored for the evaluation is skipped, so a resumed evaluation picks up where it stopped."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from lorascope import warehouse
from lorascope.config import GoalCheck
from lorascope.data.builtin import resolve_eval_prompts
from lorascope.data.records import Record
from lorascope.data.sources import load_splits
from lorascope.evaluation.behaviour_rows import behaviour_rows, behaviour_set, followup_prompts
from lorascope.evaluation.capability import (
    PERPLEXITY_CORPORA,
    load_task,
    passage_nll,
    score_items,
)
from lorascope.evaluation.generation import generate_answers
from lorascope.evaluation.heldout_loss import example_losses, loss_examples
from lorascope.evaluation.heldout_loss import summary as test_loss_summary
from lorascope.evaluation.prompt_sets import load_prompt_sets
from lorascope.evaluation.prompts import EvalPrompt, sample, test_example_id
from lorascope.evaluation.reuse import reuse_rows
from lorascope.evaluation.scoring import score_generation
from lorascope.models.loader import load_model
from lorascope.runs import RunContext, utc_now

VARIANTS = ("base", "tuned")
# The eval settings an answer depends on (with the adapters, the code and the run's seed):
# evaluations that agree on them share their generations.
GENERATION_SETTINGS = ("prompts", "test_limit", "max_tokens", "temperature", "batch_size")


def load_variant(context: RunContext, variant: str) -> tuple[Any, Any]:
    """The base model, or the base with the run's adapters."""
    adapters = context.paths.adapters if variant == "tuned" else None
    return load_model(context.model_path, context.config.model, adapter_path=adapters,
                      home=context.home)


def evaluation_key(context: RunContext) -> dict[str, str]:
    """The columns that tie a row to the evaluation (and its run)."""
    return {"evaluation_id": context.evaluation_id, "run_id": context.run_id}


def test_examples(context: RunContext) -> list[Record]:
    """The run's held-out test split, sampled to eval.test_limit with the run's seed."""
    splits = load_splits(context.paths.data)
    if "test" not in splits:
        raise ValueError(
            f"{context.paths.data}: no test split to evaluate on (eval.prompts names 'test', or "
            "eval.test_loss is on): give the data a test split or set data.test_fraction > 0, "
            "or name other prompt sets in eval.prompts and set eval.test_loss: false")
    return sample(splits["test"], context.config.eval.test_limit, context.config.seed)


def run_prompts(context: RunContext) -> list[EvalPrompt]:
    """The evaluation's prompts (the sets eval.prompts names), recorded in `prompts`."""
    settings = context.config.eval
    prompts = load_prompt_sets(settings.prompts, lambda: test_examples(context),
                               lambda source: resolve_eval_prompts(source, context.home),
                               settings.behaviour_limit, context.config.seed)
    warehouse.write_rows(context.warehouse, "prompts", [
        {**evaluation_key(context), "prompt_id": p.prompt_id, "source": p.source,
         "domain": p.domain, "category": p.category, "messages": p.messages,
         "reference": p.reference, "instructions": p.instructions or None,
         "behaviour_family": (found := behaviour_set(p)) and found.family,
         "harmful": bool(found and found.harmful)}
        for p in prompts
    ])
    return prompts


def stored_values(context: RunContext, table: str, column: str, **equals: Any) -> set:
    """Distinct `column` values of the evaluation's rows in `table` whose columns equal
    `equals`."""
    rows = warehouse.select_rows(context.warehouse, table, [column],
                                 evaluation_id=context.evaluation_id, **equals)
    return {row[column] for row in rows}


def generate_variant(
    context: RunContext, prompts: list[EvalPrompt], variant: str,
    log: Callable[[str], None] = print,
) -> int:
    """Generate the variant's answers for every prompt it has none for yet (an earlier
    evaluation's answers to the same prompts, from the same settings, are copied); then the
    follow-up turns of sets that have one (sycophancy's push-back), after the variant's own
    first answers."""
    generated = generate_prompts(context, prompts, variant, log)
    if not any((found := behaviour_set(p)) and found.followup for p in prompts):
        return generated
    answers = {row["prompt_id"]: row["output_text"] for row in warehouse.select_rows(
        context.warehouse, "generations", ["prompt_id", "output_text"],
        evaluation_id=context.evaluation_id, variant=variant)}
    second = followup_prompts(prompts, answers)
    return generated + generate_prompts(context, second, variant, log)


def generate_prompts(
    context: RunContext, prompts: list[EvalPrompt], variant: str,
    log: Callable[[str], None] = print,
) -> int:
    wanted = {p.prompt_id for p in prompts}
    reuse_rows(context, "generations", GENERATION_SETTINGS, ("prompt_id",),
               lambda row: row["prompt_id"] in wanted, log=log, variant=variant)
    done = stored_values(context, "generations", "prompt_id", variant=variant) & wanted
    if len(done) >= len(prompts):
        log(f"{variant}: all {len(prompts)} generations already in the warehouse")
        return 0
    model, tokenizer = load_variant(context, variant)

    def land(batch: list[dict[str, Any]]) -> None:
        warehouse.write_rows(context.warehouse, "generations", [
            {**evaluation_key(context), "variant": variant, "created_at": utc_now(), **row}
            for row in batch
        ])
        first = batch[0]
        log(f"{variant}: {len(batch)} generations landed (prompt "
            f"{first['batch_prompt_tokens_per_second']:.1f} tok/s, generation "
            f"{first['batch_generation_tokens_per_second']:.1f} tok/s, end to end "
            f"{first['batch_tokens_per_second']:.1f} tok/s)")

    return generate_answers(model, tokenizer, prompts, context.config.eval,
                            context.config.seed, on_rows=land, skip_ids=done)


def score_rows(
    key: dict[str, str], prompts: dict[str, EvalPrompt],
    generations: list[tuple[str, str, str, str]], goal: Sequence[GoalCheck] = (),
) -> dict[str, list[dict[str, Any]]]:
    """Warehouse rows (scores, instruction_results, generation_failures, behaviour_results)
    for generations given as (variant, prompt_id, output_text, finish_reason); `key` ties them
    to the evaluation. Behaviour prompts (and their follow-ups) are scored by their sets'
    checkers only."""
    tables: dict[str, list[dict[str, Any]]] = {
        "scores": [], "instruction_results": [], "generation_failures": [],
        "behaviour_results": behaviour_rows(key, prompts, {
            (variant, prompt_id): output for variant, prompt_id, output, _ in generations}),
    }
    for variant, prompt_id, output, finish_reason in generations:
        if prompt_id not in prompts or behaviour_set(prompts[prompt_id]):
            continue
        result = score_generation(prompts[prompt_id], output, finish_reason, goal)
        row = {**key, "variant": variant, "prompt_id": prompt_id}
        tables["scores"] += [{**row, "metric": m, "value": v} for m, v in result.scores.items()]
        tables["instruction_results"] += [
            {**row, "instruction_index": i, "instruction_id": r.instruction_id,
             "strict": r.strict, "loose": r.loose}
            for i, r in enumerate(result.instructions)
        ]
        tables["generation_failures"] += [
            {**row, "mode": f.mode, "instruction_id": f.instruction_id, "evidence": f.evidence}
            for f in result.failures
        ]
    return tables


def score_run(context: RunContext, prompts: list[EvalPrompt]) -> int:
    """Score every generation of the evaluation, replacing earlier scores (re-scoring is
    idempotent)."""
    generations = [tuple(row.values()) for row in warehouse.select_rows(
        context.warehouse, "generations", ["variant", "prompt_id", "output_text", "finish_reason"],
        evaluation_id=context.evaluation_id)]
    tables = score_rows(evaluation_key(context), {p.prompt_id: p for p in prompts},
                        generations, context.config.eval.goal)
    for table, rows in tables.items():
        warehouse.replace_rows(context.warehouse, table, rows,
                               evaluation_id=context.evaluation_id)
    return len(tables["scores"])


def test_loss_variant(context: RunContext, variant: str, log: Callable[[str], None] = print) -> int:
    """Per test example under one variant, into `test_losses`: what `mlx_lm lora --test` sums
    (tokens, nll: the run's mask_prompt and max_seq_length) and its reference answer's NLL
    (answer_tokens, answer_nll). Examples already stored with both are skipped."""
    examples = test_examples(context)
    # The example ids number the sampled test split, the same for the same test_limit.
    reuse_rows(context, "test_losses", ("test_limit",), ("example_id",),
               lambda row: row["nll"] is not None, log=log, variant=variant)
    stored = warehouse.select_rows(context.warehouse, "test_losses", ["example_id", "nll"],
                                   evaluation_id=context.evaluation_id, variant=variant)
    done = {row["example_id"] for row in stored if row["nll"] is not None}
    todo = [(test_example_id(i), record) for i, record in enumerate(examples)
            if test_example_id(i) not in done]
    if not todo:
        log(f"{variant} test loss: all {len(examples)} examples already in the warehouse")
        return 0
    model, tokenizer = load_variant(context, variant)
    train = context.config.train
    losses = example_losses(
        model, loss_examples([record for _, record in todo], tokenizer, train.mask_prompt),
        context.config.data.max_seq_length, train.batch_size)
    rows = [{**evaluation_key(context), "variant": variant, "example_id": example_id, **row}
            for (example_id, _), row in zip(todo, losses, strict=True)]
    warehouse.write_rows(context.warehouse, "test_losses", rows)
    log(f"{variant}: {test_loss_summary(rows)}")
    return len(rows)


def capability_variant(
    context: RunContext, variant: str, log: Callable[[str], None] = print
) -> None:
    """Multiple-choice accuracy and held-out perplexity of one variant, into the warehouse."""
    settings = context.config.eval
    key = {**evaluation_key(context), "variant": variant}
    loaded: tuple[Any, Any] | None = None
    for name in settings.capability_tasks:
        task_items = load_task(name, settings.capability_limit)
        wanted = {i.item_id for i in task_items}
        reuse_rows(context, "capability_items", (), ("item_id",),
                   lambda row, wanted=wanted: row["item_id"] in wanted, log=log,
                   variant=variant, task=name)
        done = stored_values(context, "capability_items", "item_id", variant=variant, task=name)
        items = [i for i in task_items if i.item_id not in done]
        if not items:
            log(f"{variant} {name}: all items already in the warehouse")
            continue
        model, tokenizer = loaded = loaded or load_variant(context, variant)
        rows = score_items(model, tokenizer, items)
        warehouse.write_rows(context.warehouse, "capability_items",
                             [{**key, "task": name, **row} for row in rows])
        accuracy = sum(r["correct"] for r in rows) / len(rows)
        log(f"{variant} {name}: acc {accuracy:.3f} on {len(rows)} items")
    for corpus in settings.perplexity_corpora if settings.perplexity_limit else []:
        corpus_passages = PERPLEXITY_CORPORA[corpus](settings.perplexity_limit)
        wanted = {p[0] for p in corpus_passages}
        reuse_rows(context, "perplexity_items", (), ("item_id",),
                   lambda row, wanted=wanted: row["item_id"] in wanted, log=log,
                   variant=variant, corpus=corpus)
        done = stored_values(context, "perplexity_items", "item_id", variant=variant,
                             corpus=corpus)
        passages = [p for p in corpus_passages if p[0] not in done]
        if not passages:
            log(f"{variant} {corpus}: all passages already in the warehouse")
            continue
        model, tokenizer = loaded = loaded or load_variant(context, variant)
        rows = passage_nll(model, tokenizer, passages)
        warehouse.write_rows(context.warehouse, "perplexity_items",
                             [{**key, "corpus": corpus, **row} for row in rows])
        log(f"{variant} {corpus}: {sum(r['tokens'] for r in rows)} tokens scored")


def harness_variant(context: RunContext, variant: str, log: Callable[[str], None] = print) -> int:
    """eval.harness_tasks run by lm-evaluation-harness itself on one variant: lm-eval's
    results into `harness_results`, its per-document results into the run folder
    (lm_eval/<variant>/<task>.jsonl). Tasks already stored for the run are not run again."""
    from lorascope.evaluation.harness import run_tasks  # imports lm-eval, which takes seconds

    settings = context.config.eval
    stored = stored_values(context, "harness_results", "task", variant=variant)
    tasks = [name for name in settings.harness_tasks if name not in stored]
    if not tasks:
        log(f"{variant} lm-eval: all tasks already in the warehouse")
        return 0
    model, tokenizer = load_variant(context, variant)
    result = run_tasks(model, tokenizer, tasks, settings.harness_limit,
                       settings.harness_include_path, settings.batch_size)
    folder = context.paths.evaluation(context.evaluation_id) / "lm_eval" / variant
    folder.mkdir(parents=True, exist_ok=True)
    for name in {document["task"] for document in result.samples}:
        (folder / f"{name}.jsonl").write_text("".join(
            json.dumps(document) + "\n" for document in result.samples
            if document["task"] == name
        ))
    warehouse.write_rows(context.warehouse, "harness_results",
                         [{**evaluation_key(context), "variant": variant, **row}
                          for row in result.rows])
    for row in result.rows:
        stderr = "" if row["stderr"] is None else f" ± {row['stderr']:.3f}"
        log(f"{variant} lm-eval {row['task']} {row['metric']}: {row['value']:.3f}{stderr} "
            f"(n {row['n']})")
    return len(result.rows)


def judge_run(context: RunContext, prompts: list[EvalPrompt],
              log: Callable[[str], None] = print) -> int:
    """Base vs tuned answers judged pairwise into `judgments` by each judge of eval.judge (one
    or a list), one judge after another; prompts a judge already judged with the same prompt
    version are skipped, so an interrupted judging resumes. A judge that fails does not stop
    the next: their errors are raised together at the end, every verdict written kept."""
    from lorascope.evaluation.judge import (
        JudgeEndpoint,
        JudgeError,
        in_reference_category,
        judge_pairs,
        make_pairs,
    )
    from lorascope.evaluation.mtbench import mtbench_judge_references
    from lorascope.evaluation.refusal_judge import classify_refusals, refusal_items

    settings = context.config.eval.judge
    assert settings is not None
    outputs: dict[str, dict[str, str]] = {"base": {}, "tuned": {}}
    for row in warehouse.select_rows(context.warehouse, "generations",
                                     ["variant", "prompt_id", "output_text"],
                                     evaluation_id=context.evaluation_id):
        outputs[row["variant"]][row["prompt_id"]] = row["output_text"]
    mtbench = {p.prompt_id for p in prompts if p.source == "mtbench"}
    references = ({prompt_id: answer for prompt_id, answer in mtbench_judge_references().items()
                   if prompt_id in mtbench} if mtbench else {})
    # Answers to the refusal sets (harmful, over-refusal): each judge also classifies them,
    # beside the rule checker (the view refusal_agreement compares the two).
    refusal = refusal_items(prompts, outputs)
    judged, errors = 0, []
    for judge in settings if isinstance(settings, list) else [settings]:
        chosen = [p for p in prompts
                  if judge.prompt_sets is None or p.source in judge.prompt_sets]
        pairs = make_pairs(chosen, outputs["base"], outputs["tuned"],
                           judge.reference_categories, references)
        with_reference = {pair.prompt_id for pair in pairs if pair.reference}
        unreferenced = [p.prompt_id for p in chosen if p.prompt_id not in with_reference
                        and in_reference_category(p, judge.reference_categories)]
        if unreferenced:
            log(f"judge {judge.model}: {len(unreferenced)} prompts of a reference category "
                f"have no reference answer and are judged with pair-v2 ({unreferenced[0]}, ...)")
        # Verdicts an earlier evaluation's judge of the same model gave on the same answers
        # (the same generation settings: the same answers) are this judge's too.
        reuse_rows(context, "judgments", GENERATION_SETTINGS,
                   ("prompt_id", "judge_model", "judge_prompt_version", "judge_order"),
                   lambda row, ids={p.prompt_id for p in chosen}: row["prompt_id"] in ids,
                   log=log, judge_model=judge.model)
        endpoint = JudgeEndpoint(**judge.model_dump(exclude={"prompt_sets",
                                                             "reference_categories"}))
        if refusal:
            reuse_rows(context, "refusal_judgments", GENERATION_SETTINGS,
                       ("variant", "prompt_id", "judge_model", "judge_prompt_version"),
                       log=log, judge_model=judge.model)
        try:
            judged += judge_pairs(context.warehouse, context.evaluation_id, context.run_id,
                                  pairs, endpoint, log)
            if refusal:
                classify_refusals(context.warehouse, context.evaluation_id, context.run_id,
                                  refusal, endpoint, log)
        except JudgeError as error:
            errors.append(error)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise JudgeError(" ".join(f"({number}) {error}"
                                  for number, error in enumerate(errors, start=1)))
    return judged
