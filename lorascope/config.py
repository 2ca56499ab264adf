"""The one typed run config, loaded from YAML.

Unknown keys are errors (a typo must never train silently with a default), and numbers
written as YAML strings such as `2e-4` are coerced, because PyYAML reads them as `str`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)
from typing_extensions import TypeAliasType

from lorascope.errors import LorascopeError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Section):
    source: str = Field(
        "smollm2-135m",
        description="Built-in name (smollm2-135m, tiny-mistral), a local mlx-lm/HF folder, "
        "or a Hugging Face repo id such as mistralai/Mistral-7B-v0.1 (needs network).",
    )
    quantize_bits: Literal[4, 8] | None = Field(
        None, description="Quantize the base on load (QLoRA). None keeps the stored dtype."
    )
    quantize_group_size: int = Field(64, description="Group size for quantize_bits.")
    chat_template: str | None = Field(
        None,
        description="Jinja chat template used when the tokenizer has none (base models). "
        "None falls back to the Mistral [INST] template.",
    )


# Standard row fields that data.columns may map odd source column names to.
DATA_FIELDS = ("messages", "conversations", "prompt", "completion", "text", "instruction",
               "input", "output", "system", "label")
# Row-level rules of the instruction-data suite, by the validation frame column they check.
ROW_RULES = ("roles_valid", "roles_alternate", "empty_assistant", "empty_turn", "valid_utf8",
             "token_count", "leaks_into_eval")


class DataConfig(_Section):
    source: str = Field(
        "builtin:sciq-format",
        description="Training data: 'builtin:NAME'; a .jsonl/.json/.parquet/.csv file; a folder "
        "of train/valid/test files or saved with datasets' save_to_disk; or 'hf:OWNER/NAME' "
        "(Hugging Face Hub, needs network). A source without a valid split is split here.",
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Standard field -> the source's column name, e.g. {instruction: question, "
        "output: answer, label: category}. Fields: " + ", ".join(DATA_FIELDS) + ".",
    )
    valid_fraction: float = Field(0.1, ge=0, lt=1, description="Share split off as valid.")
    test_fraction: float = Field(0.1, ge=0, lt=1, description="Share split off as test.")
    split_seed: int = Field(0, description="Seed of the train/valid/test split.")
    dedup: bool = Field(True, description="Drop exact duplicates (normalized text).")
    near_duplicate_threshold: float | None = Field(
        0.9, gt=0, le=1,
        description="Drop rows whose word-3-gram Jaccard similarity to a kept row is at least "
        "this; null turns near-duplicate removal off. Needs dedup.",
    )
    max_seq_length: int = Field(512, gt=8, description="Longest tokenized example allowed.")
    over_length: Literal["fail", "drop", "truncate"] = Field(
        "fail",
        description="Rows longer than max_seq_length: 'fail' validation, 'drop' them, or "
        "'truncate' them at max_seq_length tokens as mlx-lm does (dropped and truncated rows "
        "are counted in the validation report).",
    )
    mostly: float = Field(
        1.0, ge=0, le=1, description="Fraction of rows that must pass each row-level rule."
    )
    mostly_by_rule: dict[str, float] = Field(
        default_factory=dict,
        description="Per-rule override of mostly, keyed by " + ", ".join(ROW_RULES) + ".",
    )
    max_duplicate_fraction: float = Field(
        0.01, ge=0, le=1,
        description="Largest share of rows per split that may repeat another row (after dedup)."
    )
    max_label_fraction: float | None = Field(
        None, gt=0, le=1,
        description="Class/domain balance: no label (see data.columns) may hold more than "
        "this share of its split. Null skips the check.",
    )

    @model_validator(mode="after")
    def _known_names(self) -> DataConfig:
        unknown = sorted(set(self.columns) - set(DATA_FIELDS))
        if unknown:
            raise ValueError(f"data.columns: unknown field(s) {unknown}; known: {DATA_FIELDS}")
        unknown = sorted(set(self.mostly_by_rule) - set(ROW_RULES))
        if unknown:
            raise ValueError(f"data.mostly_by_rule: unknown rule(s) {unknown}; known: {ROW_RULES}")
        if any(not 0 <= value <= 1 for value in self.mostly_by_rule.values()):
            raise ValueError("data.mostly_by_rule: values must be between 0 and 1")
        if self.valid_fraction + self.test_fraction >= 1:
            raise ValueError("data.valid_fraction + data.test_fraction must be below 1")
        return self

    def mostly_for(self, rule: str) -> float:
        return self.mostly_by_rule.get(rule, self.mostly)


class LoraConfig(_Section):
    fine_tune_type: Literal["lora", "dora", "full"] = Field(
        "lora", description="lora, dora (weight-decomposed LoRA) or full fine-tuning (mlx-lm's)."
    )
    rank: int = Field(8, gt=0, description="LoRA rank r: size of the low-rank update.")
    scale: float | None = Field(
        None, description="mlx-lm's multiplier on the LoRA update. Give scale or alpha."
    )
    alpha: float | None = Field(
        None, description="PEFT-style alpha; scale = alpha / rank. Give scale or alpha."
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA input.")
    num_layers: int = Field(-1, description="Last N transformer blocks to adapt; -1 = all.")
    # Not called `keys` (mlx-lm's name): a pydantic model with a `keys` attribute looks like a
    # mapping to Prefect, which then fails to walk the task parameters.
    target_modules: list[str] | None = Field(
        None,
        description="Module paths to adapt (PEFT's name; mlx-lm's `keys`), e.g. "
        "[self_attn.q_proj, self_attn.v_proj]; None = all linear layers.",
    )

    @model_validator(mode="after")
    def _scale_or_alpha(self) -> LoraConfig:
        if self.scale is not None and self.alpha is not None:
            raise ValueError("give either lora.scale or lora.alpha, not both")
        return self

    @property
    def effective_scale(self) -> float:
        if self.alpha is not None:
            return self.alpha / self.rank
        return 20.0 if self.scale is None else self.scale

    def mlx_lm_parameters(self) -> dict[str, Any]:
        """The `lora_parameters` block exactly as mlx-lm's adapter_config.json carries it."""
        return {
            "rank": self.rank,
            "scale": self.effective_scale,
            "dropout": self.dropout,
            "keys": self.target_modules,
        }


class TrainConfig(_Section):
    iters: int = Field(60, gt=0, description="Optimizer steps to train for.")
    batch_size: int = Field(4, gt=0, description="Examples per micro-batch.")
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate.")
    warmup_steps: int = Field(
        0, ge=0, description="Linear warmup from 0 to learning_rate over this many updates."
    )
    warmup_init: float = Field(
        0.0, ge=0, description="Learning rate the warmup starts from (mlx-lm's warmup_init)."
    )
    lr_schedule: Literal["constant", "cosine", "cosine_decay"] = Field(
        "cosine",
        description="After warmup: constant; cosine decay to min_learning_rate at the last "
        "update; or cosine_decay, mlx-lm's lr_schedule (cosine over decay_steps, joined to the "
        "warmup one update later, as mlx-lm's build_schedule joins them).",
    )
    decay_steps: int | None = Field(
        None, gt=0,
        description="Updates the cosine decays over after warmup; None = until the last update.",
    )
    min_learning_rate: float | None = Field(
        None, ge=0,
        description="Where the cosine ends; None = 10 % of learning_rate for cosine, 0 for "
        "cosine_decay (mlx-lm's default end).",
    )
    optimizer: Literal["adam", "adamw"] = Field("adamw", description="MLX optimizer.")
    weight_decay: float = Field(0.0, ge=0, description="Decoupled weight decay (adamw).")
    betas: tuple[float, float] = Field(
        (0.9, 0.999), description="Adam's moment decay rates (MLX's default)."
    )
    eps: float = Field(1e-8, gt=0, description="Adam's epsilon (MLX's default).")
    bias_correction: bool = Field(
        False, description="Adam bias correction; MLX's default is off, PyTorch's on."
    )
    grad_accumulation_steps: int = Field(
        1, gt=0, description="Micro-batches per optimizer update (effective batch multiplier)."
    )
    grad_checkpoint: bool = Field(
        False, description="Recompute activations in the backward pass: less memory, ~1/3 slower."
    )
    mask_prompt: bool = Field(True, description="Train on assistant tokens only.")
    pad_to_multiple: int = Field(
        8, gt=0, description="Batches are padded to 1 + a multiple of this many tokens "
        "(mlx-lm pads to 1 + a multiple of 32). Smaller computes less padding but gives more "
        "batch shapes, each compiled once; the losses are the same up to float rounding. 8 "
        "trained the demo 1.20x faster than 32 (bench/train_throughput.py --pad-multiples).",
    )
    pack: bool = Field(
        False, description="Pack several examples into each row (rows as wide as the "
        "longest example), each attending only to itself, with its own loss unchanged "
        "(Llama/Mistral models). A step then trains on every example its batch_size rows "
        "hold, so iters "
        "means fewer, larger steps: a different training, part of the run id. Not with ranks "
        "> 1. See docs/training.md, 'Batching'.",
    )
    steps_per_report: int = Field(10, gt=0, description="Steps between train-loss reports.")
    steps_per_eval: int = Field(50, gt=0, description="Steps between validation-loss reports.")
    val_batches: int = Field(4, description="-1 evaluates the whole validation split.")
    save_every: int = Field(20, gt=0, description="Checkpoint interval in steps.")
    keep_checkpoints: int = Field(3, gt=0, description="How many recent checkpoints to keep.")
    ranks: int = Field(
        1, gt=0, description="Processes that train the run together, data-parallel with "
        "mlx.distributed (started with mlx.launch, ring backend): each takes batch_size/ranks "
        "rows of every global batch; data order, checkpoints and adapters are those of one "
        "process (up to float summation order). 1 trains in one process.",
    )
    hostfile: str | None = Field(
        None, description="mlx.launch's JSON hostfile listing the machines the ranks run on "
        "(one rank per host, as many hosts as train.ranks); None runs every rank on this "
        "machine. Each host needs the same checkout and the run folder at the same path.",
    )

    @model_validator(mode="after")
    def _batch_divides_over_ranks(self) -> TrainConfig:
        if self.pack and self.ranks > 1:
            raise ValueError("train.pack works in one process: set train.ranks: 1 or "
                             "train.pack: false")
        if self.batch_size % self.ranks:
            raise ValueError(
                f"train.batch_size ({self.batch_size}) must be divisible by train.ranks "
                f"({self.ranks}): each rank trains on batch_size/ranks rows of every batch"
            )
        return self

    @model_validator(mode="after")
    def _checkpoints_on_report_boundaries(self) -> TrainConfig:
        # Checkpoints are taken when the trainer reports, so the loss accumulated since the
        # last report is never split across a resume.
        if self.save_every % self.steps_per_report:
            raise ValueError(
                f"train.save_every ({self.save_every}) must be a multiple of "
                f"train.steps_per_report ({self.steps_per_report})"
            )
        # A checkpoint between the micro-batches of one update would drop accumulated grads.
        if self.save_every % self.grad_accumulation_steps:
            raise ValueError(
                f"train.save_every ({self.save_every}) must be a multiple of "
                f"train.grad_accumulation_steps ({self.grad_accumulation_steps})"
            )
        return self


# Built-in prompt sets for eval.prompts, besides 'test', 'builtin:NAME' and files.
PROMPT_SETS = ("ifeval", "ifbench", "mtbench")
# Behaviour prompt sets for eval.prompts (lorascope.evaluation.behaviour), each scored by its
# own checker into a behaviour family.
BEHAVIOUR_SETS = ("knowledge", "false-premise", "sycophancy", "harmful", "over-refusal",
                  "injection", "system-conflict", "long-input", "multilingual")
# The families of comparisons the regression gate can guard (eval.gate_families).
GATE_FAMILIES = ("capability", "epistemic", "sycophancy", "safety", "robustness")


class JudgeConfig(_Section):
    """A pairwise judge over an OpenAI-compatible endpoint (eval.judge)."""

    url: str = Field(description="Base URL ending in /v1, e.g. http://127.0.0.1:8080/v1 "
                     "(mlx_lm.server), http://127.0.0.1:11434/v1 (Ollama), a hosted API.")
    model: str = Field(description="The judge model's name as the endpoint expects it.")
    api_key_env: str | None = Field(
        None, description="Name of the environment variable holding the API key; None sends "
        "none (local servers). The key itself never goes in a config.",
    )
    prompt_sets: list[str] | None = Field(
        None, description="Which eval.prompts sets to judge (e.g. [mtbench]); None = all.",
    )
    reference_categories: list[str] = Field(
        # FastChat's NEED_REF_CATS (a test compares them)
        default_factory=lambda: ["math", "reasoning", "coding", "arena-hard-200"],
        description="Prompt categories judged against a reference answer with MT-Bench's "
        "pair-math-v1 prompt (a category's set prefix is ignored: mtbench:math is math); "
        "MT-Bench questions get MT-Bench's judge references, other prompts their own "
        "`reference`; one without a reference is judged with pair-v2. [] = never.",
    )
    max_tokens: int = Field(1024, gt=0, description="The judge's reply budget.")
    timeout_seconds: float = Field(120.0, gt=0, description="Per request.")
    max_retries: int = Field(2, ge=0, description="Retries of transient errors, with backoff.")


def _distinct_judge_models(judges: list[JudgeConfig]) -> list[JudgeConfig]:
    models = [judge.model for judge in judges]
    duplicate = next((model for model in models if models.count(model) > 1), None)
    if duplicate is not None:
        raise ValueError(
            f"two judges have the model {duplicate!r}: verdicts are stored per judge model, so "
            "each judge needs its own (mlx_lm.server also answers to the --model path as "
            "model name)"
        )
    return judges


# One judge (a mapping) or several (a list), told apart before validating so that an error
# names only the form that was given: eval.judge.JudgeConfig.<key> or eval.judge.list.<n>.<key>.
Judges = TypeAliasType("Judges", Annotated[
    Annotated[JudgeConfig, Tag("JudgeConfig")]
    | Annotated[list[JudgeConfig], Field(min_length=1), AfterValidator(_distinct_judge_models),
                Tag("list")],
    Discriminator(lambda value: "list" if isinstance(value, list) else "JudgeConfig"),
])


class GoalCheck(_Section):
    """One check of the declared tuning goal (eval.goal)."""

    name: str = Field(description="Metric name of the check (a score, and the failure's id).")
    regex: str | None = Field(
        None, description="Python regex the answer must match (DOTALL; see match)."
    )
    match: Literal["start", "search", "full"] = Field(
        "start", description="regex at the answer's start (re.match), anywhere, or the whole."
    )
    reference_in_group: str | None = Field(
        None, description="A named group of regex that must contain the reference answer "
        "(normalized as SQuAD does).",
    )
    contains_reference: bool = Field(
        False, description="The reference answer appears anywhere in the answer (normalized)."
    )
    valid_json: bool = Field(
        False, description="The answer parses as JSON (inside a ```json fence, if any)."
    )
    json_schema: dict[str, Any] | None = Field(
        None, description="A JSON Schema the answer's JSON must validate against."
    )
    instructions: list[dict[str, Any]] = Field(
        default_factory=list,
        description="IFEval instruction ids (IFBench ids prefixed 'ifbench:') with kwargs, e.g. "
        "[{id: change_case:english_lowercase, kwargs: {}}]; all must pass (strict).",
    )
    reference_metric: Literal["exact_match", "token_f1", "rouge_l"] | None = Field(
        None, description="A reference metric that must reach `min` (prompts with a reference)."
    )
    min: float | None = Field(None, description="Threshold for reference_metric.")
    prompt_sets: list[str] | None = Field(
        None, description="Apply only to prompts from these eval.prompts entries, e.g. "
        "[builtin:sciq-format] (a goal per domain when several domains are evaluated); "
        "None = prompts from every set.",
    )

    @property
    def needs_reference(self) -> bool:
        """Checks against the reference answer score only prompts that have one, and a miss
        is a wrong answer rather than a format violation."""
        return bool(self.contains_reference or self.reference_in_group
                    or self.reference_metric)

    @model_validator(mode="after")
    def _one_kind(self) -> GoalCheck:
        kinds = [kind for kind, given in (
            ("regex", self.regex is not None), ("contains_reference", self.contains_reference),
            ("valid_json", self.valid_json), ("json_schema", self.json_schema is not None),
            ("instructions", bool(self.instructions)),
            ("reference_metric", self.reference_metric is not None)) if given]
        if len(kinds) != 1:
            raise ValueError(f"goal check {self.name!r}: give exactly one of regex, "
                             "contains_reference, valid_json, json_schema, instructions, "
                             f"reference_metric (got {kinds or 'none'})")
        if self.regex is not None:
            try:
                groups = re.compile(self.regex).groupindex
            except re.error as error:
                raise ValueError(
                    f"goal check {self.name!r}: regex does not compile: {error}") from None
            if self.reference_in_group and self.reference_in_group not in groups:
                raise ValueError(f"goal check {self.name!r}: regex has no group "
                                 f"(?P<{self.reference_in_group}>...)")
        elif self.reference_in_group:
            raise ValueError(f"goal check {self.name!r}: reference_in_group needs a regex")
        if self.json_schema is not None:
            import jsonschema

            try:
                jsonschema.validators.validator_for(self.json_schema).check_schema(
                    self.json_schema)
            except jsonschema.SchemaError as error:
                raise ValueError(f"goal check {self.name!r}: json_schema is not a valid "
                                 f"schema: {error.message}") from None
        if self.instructions:
            from lorascope.evaluation.ifbench import validate_instructions

            validate_instructions(self.instructions, f"goal check {self.name!r}")
        if (self.reference_metric is None) != (self.min is None):
            raise ValueError(f"goal check {self.name!r}: reference_metric and min go together")
        return self


class StatisticsConfig(_Section):
    alpha: float = Field(
        0.05, gt=0, lt=1, description="Significance level of every base-vs-tuned test; "
        "intervals are at 1 - alpha.")
    power: float = Field(
        0.8, gt=0, lt=1, description="Power at which the minimum detectable effect (mde) of "
        "each comparison is stated.")
    correction: Literal["holm", "bh"] = Field(
        "holm", description="Multiple-comparison correction of p over all comparisons of an "
        "evaluation: 'holm' (family-wise error, Holm-Bonferroni) or 'bh' (false discovery "
        "rate, Benjamini-Hochberg).")
    mid_p: bool = Field(
        False, description="McNemar's mid-p instead of the exact (conservative) p for paired "
        "pass/fail comparisons.")
    resamples: int = Field(
        10_000, ge=100, description="Bootstrap and permutation resamples for continuous "
        "comparisons (seeded with the run's seed: the same run gives the same numbers).")
    exclude_contaminated: bool = Field(
        True, description="Leave items whose text overlaps the training data (13-gram "
        "contamination check) out of every comparison; they are counted as excluded.")


class EvalConfig(_Section):
    max_tokens: int = Field(64, gt=0, description="New tokens per generation.")
    batch_size: int = Field(32, gt=0, description="Prompts generated together.")
    temperature: float = Field(0.0, ge=0, description="0 = greedy.")
    capability_tasks: list[str] = Field(
        default_factory=lambda: ["arc_easy"],
        description="Log-likelihood multiple-choice tasks run on base and tuned.",
    )
    capability_limit: int = Field(100, gt=0, description="Questions per capability task.")
    prompts: list[str] = Field(
        default_factory=lambda: ["test"],
        description="Prompt sets generated from by base and tuned: 'test' (the run's held-out "
        "test split, its answers the references), " + ", ".join(f"'{n}'" for n in PROMPT_SETS)
        + " (built-in sets), the behaviour sets " + ", ".join(f"'{n}'" for n in BEHAVIOUR_SETS)
        + ", 'builtin:NAME' (a built-in dataset's eval prompts) or a JSONL "
        "file of {id, domain, category, messages, reference, instructions} rows.",
    )
    behaviour_limit: int = Field(
        50, gt=0, description="Prompts drawn (seeded with the run's seed) from each behaviour "
        "set named in eval.prompts; fewer if the set is smaller.",
    )
    test_limit: int | None = Field(
        200, gt=0, description="Largest number of test-split examples evaluated (prompts and "
        "test loss); a larger split is sampled with the run's seed. None = all.",
    )
    test_loss: bool = Field(
        True, description="Score every evaluated test example's reference answer under base "
        "and tuned: per-example loss, perplexity and log-likelihood (mlx_lm.lora --test's "
        "loss, paired).",
    )
    judge: Judges | None = Field(
        None, description="Open-ended quality: a judge model compares base and tuned answers "
        "to the same prompt, in both orders (position bias cancels), ties allowed; a list of "
        "judges (distinct models) judges the same answers side by side, one judge after "
        "another; None skips it. Keys per judge: url, model, api_key_env, prompt_sets, "
        "reference_categories, max_tokens, timeout_seconds, max_retries.",
    )
    goal: list[GoalCheck] = Field(
        default_factory=list,
        description="The checks that define 'the tuning worked', applied to every prompt "
        "without instructions of its own (reference checks: to those with a reference); each "
        "is a score (1 pass, 0 fail), and a failed format check a format_violation named "
        "after it. Keys per check: name plus one of regex "
        "(with match and reference_in_group), contains_reference, valid_json, json_schema, "
        "instructions (IFEval/IFBench ids), reference_metric with min; optionally "
        "prompt_sets (score only prompts of these eval.prompts entries).",
    )
    perplexity_corpora: list[str] = Field(
        default_factory=lambda: ["wikipedia_boolq"],
        description="Held-out text scored for perplexity on base and tuned.",
    )
    perplexity_limit: int = Field(32, ge=0, description="Passages per perplexity corpus.")
    attention_prompts: int = Field(
        8, ge=0, description="Prompts (spread over domains) whose attention maps are compared "
        "base vs tuned; 0 skips the attention analysis."
    )
    attention_max_tokens: int = Field(
        256, gt=1, description="Prompt tokens kept per attention comparison (maps grow as n²)."
    )
    gate: Literal["fail", "mark", "off"] = Field(
        "mark",
        description="Regression gate: 'fail' fails the flow, 'mark' records the verdict in "
        "the warehouse and report only, 'off' skips it.",
    )
    gate_families: list[Literal[GATE_FAMILIES]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["capability"],
        description="Families of comparisons the gate guards: " + ", ".join(GATE_FAMILIES)
        + " (capability: accuracy per task; the others: each behaviour metric with a good "
        "direction, per prompt set).",
    )
    gate_max_drop: float = Field(
        0.05, ge=0, le=1, description="Largest change for the worse (tuned - base, in the "
        "metric's bad direction) a gated comparison may show: an accuracy drop, a fall in "
        "refusals of harmful requests, a rise in injections followed, ..."
    )
    gate_require_ci: bool = Field(
        True, description="Fail a comparison only if the change is also significant: exact "
        "McNemar test on the paired items, p < eval.statistics.alpha."
    )
    statistics: StatisticsConfig = Field(
        default_factory=StatisticsConfig,
        description="How every base-vs-tuned comparison is tested: level, power, correction.")
    harness_tasks: list[str] = Field(
        default_factory=list,
        description="lm-eval task names run through lm-evaluation-harness itself on base and "
        "tuned: offline lorascope_arc_easy, lorascope_arc_challenge, lorascope_piqa, "
        "lorascope_boolq, or any lm-eval task (those need the Hub). Empty skips lm-eval.",
    )
    harness_limit: int | None = Field(
        None, gt=0, description="Documents per lm-eval task (the first ones); None = all."
    )
    harness_include_path: str | None = Field(
        None, description="A folder of your own lm-eval task YAMLs, for eval.harness_tasks."
    )

    @model_validator(mode="after")
    def _known_tasks(self) -> EvalConfig:
        from lorascope.evaluation.capability import PERPLEXITY_CORPORA, TASKS

        for key, names, known in (("capability_tasks", self.capability_tasks, TASKS),
                                  ("perplexity_corpora", self.perplexity_corpora,
                                   PERPLEXITY_CORPORA)):
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ValueError(f"eval.{key}: unknown {unknown}; known: {', '.join(known)}")
        return self

    @model_validator(mode="after")
    def _goal_prompt_sets(self) -> EvalConfig:
        for check in self.goal:
            unknown = [s for s in check.prompt_sets or [] if s not in self.prompts]
            if unknown:
                raise ValueError(f"eval.goal {check.name!r}: prompt_sets {unknown} are not "
                                 f"in eval.prompts {self.prompts}: the check would score "
                                 "nothing")
        return self

    @model_validator(mode="after")
    def _harness_settings(self) -> EvalConfig:
        from lorascope.evaluation.harness_tasks import PREFIX, offline_task_names

        repeated = sorted({n for n in self.harness_tasks if self.harness_tasks.count(n) > 1})
        if repeated:
            raise ValueError(f"eval.harness_tasks: {repeated} listed more than once")
        folder = self.harness_include_path
        if folder is not None and not Path(folder).expanduser().is_dir():
            raise ValueError(f"eval.harness_include_path: {folder} is not a folder")
        # Other names are checked against lm-eval's task index when the tasks run: building
        # it takes some 15 s.
        unknown = [n for n in self.harness_tasks
                   if n.startswith(PREFIX) and n not in offline_task_names()]
        if unknown and folder is None:
            raise ValueError(f"eval.harness_tasks: no offline task {unknown}; offline tasks: "
                             f"{', '.join(offline_task_names())}")
        return self


class RunConfig(_Section):
    name: str = Field(
        "run", description="Human name; the run id adds a hash of the config (same config, "
        "same run: running it again resumes it)."
    )
    seed: int = Field(0, description="Seed of training (init, data order, dropout) and sampling.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="The base model.")
    data: DataConfig = Field(default_factory=DataConfig,
                             description="Training data, its preparation and validation rules.")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="The adapters.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="The training loop.")
    eval: EvalConfig = Field(default_factory=EvalConfig,
                             description="Evaluation of base vs tuned.")

    def config_hash(self) -> str:
        """Of the whole config (recorded with the run)."""
        return _hash(self.model_dump(mode="json"))

    def training_hash(self) -> str:
        """Of everything that changes the adapters (all but eval): the run id's hash, so
        changing only eval settings re-evaluates the same run instead of retraining."""
        # How many processes train (train.ranks, train.hostfile) and how wide batches are
        # padded do not change what is trained: a run keeps its id, and resumes, across them.
        # train.pack does; off (as before it existed) it leaves the id as it was.
        same = {"ranks": True, "hostfile": True, "pad_to_multiple": True}
        return _hash(self.model_dump(mode="json", exclude={
            "eval": True, "train": same if self.train.pack else {**same, "pack": True}}))

    def eval_hash(self) -> str:
        """Of the evaluation settings: an evaluation of a run is named after it."""
        return _hash(self.eval.model_dump(mode="json"))


def _hash(values: dict[str, Any]) -> str:
    canonical = json.dumps(values, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class ConfigError(LorascopeError, ValueError):
    """A config file that cannot be used, with the file and key named."""

    exit_code = 2


def nearest_key(loc: tuple[Any, ...]) -> str | None:
    """The valid key closest to the unknown one at `loc` (a typo's likely intent)."""
    model: type[BaseModel] = RunConfig
    for part in loc[:-1]:
        annotation = model.model_fields.get(str(part))
        if annotation is None or not (isinstance(annotation.annotation, type)
                                      and issubclass(annotation.annotation, BaseModel)):
            return None
        model = annotation.annotation
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.5)
    return ".".join([*map(str, loc[:-1]), close[0]]) if close else None


def _describe(error: ValidationError, origin: str) -> str:
    lines = [f"{origin}: invalid config"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            nearest = nearest_key(item["loc"])
            message = "unknown key" + (f"; did you mean {nearest}?" if nearest else "")
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)


def parse_config(
    data: dict[str, Any], origin: str = "<config>", key_names: dict[str, str] | None = None
) -> RunConfig:
    """`key_names`: lorascope key -> how to name it in errors (an mlx-lm config's own key)."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as error:
        message = _describe(error, origin)
        for ours, theirs in (key_names or {}).items():
            message = message.replace(f"\n  {ours}:", f"\n  {theirs} ({ours}):")
        raise ConfigError(message) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Load a YAML run config; `overrides` are `section.key=value` strings from the CLI.

    mlx-lm's own LoRA config format (flat keys, `mlx_lm lora -c FILE`) is detected and
    translated first (lorascope/mlx_lm_config.py); there an override may also name a flat
    mlx-lm key (`iters=20`). Keys lorascope does not use are logged as warnings.
    """
    from lorascope import mlx_lm_config

    path = Path(path)
    try:
        text = path.read_text()
        data = yaml.safe_load(text) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    overrides = list(overrides or [])
    key_names = None
    if mlx_lm_config.is_mlx_lm_config(data):
        flat = [o for o in overrides if o.partition("=")[0].strip() in mlx_lm_config.MLX_LM_KEYS]
        for override in flat:
            apply_override(data, override)
        overrides = [o for o in overrides if o not in flat]
        lines = mlx_lm_config.key_lines(text)
        try:
            translation = mlx_lm_config.translate(data, name=path.stem)
        except mlx_lm_config.MlxLmConfigError as error:
            key = str(error).split(":", 1)[0].split(".", 1)[0]
            where = f"{path}:{lines[key]}" if key in lines else str(path)
            raise ConfigError(f"{where}: {error}") from None
        for warning in translation.warnings:
            key = warning.split(":", 1)[0]
            logging.getLogger(__name__).warning(
                "%s: %s", f"{path}:{lines[key]}" if key in lines else path, warning)
        data = translation.config
        key_names = {ours: f"{theirs} (line {lines[theirs.split('.')[0]]})"
                     if theirs.split(".")[0] in lines else theirs
                     for ours, theirs in translation.sources.items()}
    for override in overrides:
        apply_override(data, override)
    return parse_config(data, str(path), key_names)


def apply_override(data: dict[str, Any], override: str) -> None:
    key, sep, raw = override.partition("=")
    if not sep:
        raise ConfigError(f"override {override!r}: expected key=value, e.g. train.iters=20")
    *parents, leaf = key.strip().split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {override!r}: {part} is not a section")
    node[leaf] = yaml.safe_load(raw)


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def _type_name(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "")
    return getattr(annotation, "__name__", None) if isinstance(annotation, type) else text


def _default(field: Any) -> Any:
    value = field.get_default(call_default_factory=True)
    return json.dumps(value) if not isinstance(value, BaseModel) else None


def explain_config(section: str | None = None) -> str:
    """Every config field as `key  type  default` with its help below, like mlx-lm's
    argument help; one section's fields when `section` names it."""
    sections = {name: field.annotation for name, field in RunConfig.model_fields.items()
                if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)}
    if section is not None and section not in sections:
        raise ConfigError(f"no config section {section!r}; sections: {', '.join(sections)}")
    lines = []
    groups = [("", RunConfig)] + [(f"{name}.", model) for name, model in sections.items()]
    for prefix, model in groups:
        if section is not None and prefix != f"{section}.":
            continue
        title = prefix.rstrip(".") or "top level"
        lines.append(f"{title}:" + (f" {RunConfig.model_fields[title].description}"
                                     if title in RunConfig.model_fields else ""))
        for name, field in model.model_fields.items():
            if prefix == "" and name in sections:
                continue
            lines.append(f"  {prefix}{name}  ({_type_name(field.annotation)}, "
                         f"default {_default(field)})")
            lines.append(f"      {field.description}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
