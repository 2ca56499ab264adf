"""`lorascope export RUN_ID`: a run's result as one model folder that mlx-lm serves as it is.

The run's adapters are fused into its base with mlx-lm's own pieces, as `mlx_lm.fuse` does:
each LoRA/DoRA layer's `fuse(dequantize=...)`, `dequantize_model`, `save` (and
`quantize_model`, as `mlx_lm.convert -q` does, when asked). `mlx_lm.load(folder)`,
`mlx_lm.generate --model folder` and `mlx_lm.server --model folder` then need no adapter.

The folder carries the chat template the evaluation used (lorascope installs one when the
base has none, models/chat.py) and a model card, README.md with Hugging Face front matter,
laid out from the warehouse: provenance (base, data, config, seed, code version), the latest
evaluation's results through the report's own queries (warehouse/report/*.sql, so a column a
view gains shows up here too), and licences where known. Each export is recorded in the run
folder (exports.jsonl: where, when, from which adapters).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lorascope import warehouse
from lorascope.config import ConfigError
from lorascope.models.chat import hf_tokenizer
from lorascope.models.loader import BUILTIN_MODELS, load_model, quantized_base
from lorascope.report import RUN_SECTIONS, markdown_table, query_section
from lorascope.runs import RunContext, adapter_hash, code_version, open_run, utc_now

# The evaluation's report sections the card shows, in this order.
# (Those the report does not have are left out.)
CARD_SECTIONS = ("goal_improvement", "test_loss", "capability_preservation", "gate_verdicts",
                 "failure_mode_changes", "failure_modes", "regressions")
# Licences of what lorascope builds in; anything else is read from the base's own card.
# tiny-mistral's weights are seeded random numbers; its tokenizer is mistral-common's.
BUILTIN_BASES = {"smollm2-135m": ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0"),
                 "tiny-mistral": ("tiny-mistral", "apache-2.0")}
BUILTIN_DATA_LICENCES = {
    "builtin:sciq-format": "cc-by-nc-3.0 (SciQ, allenai/sciq: non-commercial use only)",
    "builtin:commonsense-format": ("mit (CommonsenseQA, tau/commonsense_qa; its out-of-domain "
                                   "prompts are Social IQa's, whose card states no licence)"),
}
EXPORT_FOLDER = "export"  # runs/<id>/export/ unless --out says otherwise
EXPORTS_LOG = "exports.jsonl"


def export_run(
    run_id: str, home: Path, out: Path | None = None, dequantize: bool = False,
    quantize_bits: int | None = None, quantize_group_size: int = 64,
    log: Callable[[str], None] = print,
) -> Path:
    """Fuse run `run_id`'s adapters into its base and write the model folder `out` (default
    runs/<id>/export/) with its model card; returns the folder."""
    context = open_run(run_id, home)
    out = (out or context.paths.root / EXPORT_FOLDER).resolve()
    check_target(out, previous_exports(context))
    log(f"fusing {context.paths.adapters} into {context.model_path}")
    model, tokenizer, config, base = fused_model(context, dequantize, quantize_bits,
                                                 quantize_group_size)
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    save_model_folder(partial, base, model, tokenizer, config)
    evaluation = latest_evaluation(context)
    settings = {"dequantize": dequantize, "quantize_bits": quantize_bits,
                "quantize_group_size": quantize_group_size if quantize_bits else None}
    (partial / "README.md").write_text(model_card(context, evaluation, config, settings))
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, out)
    record_export(context, out, evaluation, settings)
    log(f"exported {run_id} to {out}")
    return out


def check_target(out: Path, earlier: list[dict[str, Any]]) -> None:
    """An existing folder is replaced only when it is an earlier export of this run."""
    if out.exists() and any(out.iterdir()) and str(out) not in {e["path"] for e in earlier}:
        raise FileExistsError(f"{out} exists and is not an earlier export of this run: remove "
                              "it or give another --out")


def fused_model(
    context: RunContext, dequantize: bool, quantize_bits: int | None, group_size: int,
) -> tuple[Any, Any, dict[str, Any], Path]:
    """The base with the run's adapters fused in (mlx_lm.fuse's steps), its tokenizer with
    the chat template the evaluation used, its config, and the base folder it was loaded
    from (the QLoRA copy for a quantized run)."""
    from mlx.utils import tree_unflatten
    from mlx_lm.utils import dequantize_model, quantize_model
    from mlx_lm.utils import load_config as load_model_config

    settings = context.config.model
    base = context.model_path
    if settings.quantize_bits is not None:
        base = quantized_base(base, settings.quantize_bits, settings.quantize_group_size,
                              context.home)
    config = load_model_config(base)
    if quantize_bits is not None and "quantization" in config and not dequantize:
        raise ConfigError(f"run {context.run_id}'s base is already quantized "
                          f"({config['quantization'].get('bits')} bits): add --de-quantize to "
                          "quantize the fused model again")
    model, tokenizer = load_model(context.model_path, settings,
                                  adapter_path=context.paths.adapters, home=context.home)
    fused = [(name, module.fuse(dequantize=dequantize))
             for name, module in model.named_modules() if hasattr(module, "fuse")]
    if fused:
        model.update_modules(tree_unflatten(fused))
    if dequantize:
        model = dequantize_model(model)
        config.pop("quantization", None)
        config.pop("quantization_config", None)
    if quantize_bits is not None:
        model, config = quantize_model(model, config, group_size, quantize_bits)
    return model, tokenizer, config, base


def save_model_folder(
    folder: Path, base: Path, model: Any, tokenizer: Any, config: dict[str, Any],
) -> None:
    """mlx-lm's `save` (weights, config, tokenizer, the base's generation_config.json), and
    the chat template in tokenizer_config.json as well as in the chat_template.jinja that
    transformers 5 writes: readers of the older layout look for it there."""
    from mlx_lm.utils import save

    save(folder, base, model, tokenizer, config, donate_model=False)
    template = hf_tokenizer(tokenizer).chat_template
    settings_file = folder / "tokenizer_config.json"
    settings = json.loads(settings_file.read_text())
    settings_file.write_text(json.dumps({**settings, "chat_template": template}, indent=2,
                                        ensure_ascii=False))


def latest_evaluation(context: RunContext) -> dict[str, Any] | None:
    """The run's newest completed evaluation, else its newest of any status, else None."""
    rows = warehouse.select_rows(context.warehouse, "evaluations", run_id=context.run_id)
    rows.sort(key=lambda row: (row["status"] == "completed", row["started_at"] or utc_now()))
    return rows[-1] if rows else None


def previous_exports(context: RunContext) -> list[dict[str, Any]]:
    log = context.paths.root / EXPORTS_LOG
    if not log.is_file():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def record_export(context: RunContext, out: Path, evaluation: dict[str, Any] | None,
                  settings: dict[str, Any]) -> None:
    with (context.paths.root / EXPORTS_LOG).open("a", encoding="utf-8") as log:
        log.write(json.dumps({
            "path": str(out), "exported_at": utc_now().isoformat(timespec="seconds"),
            "evaluation_id": evaluation["evaluation_id"] if evaluation else None,
            "adapter_hash": adapter_hash(context.paths.adapters),
            "code_version": code_version(), **settings,
        }) + "\n")


# ---------------------------------------------------------------- the model card


def base_identity(context: RunContext) -> tuple[str, str | None]:
    """The base's name for `base_model` (a Hub id where there is one) and its licence."""
    source = context.config.model.source
    if source in BUILTIN_MODELS:
        return BUILTIN_BASES[source]
    from huggingface_hub.repocard import metadata_load

    card = context.model_path / "README.md"
    metadata = metadata_load(card) if card.is_file() else None
    return source, (metadata or {}).get("license")


def data_licence(source: str) -> str:
    if source in BUILTIN_DATA_LICENCES:
        return BUILTIN_DATA_LICENCES[source]
    if source.startswith("hf:"):
        return f"see the dataset card of {source.removeprefix('hf:')} on the Hugging Face Hub"
    return "not recorded (a local file or folder)"


def front_matter(context: RunContext, base_model: str, licence: str | None) -> str:
    from huggingface_hub import ModelCardData

    data = context.config.data.source
    return ModelCardData(
        base_model=base_model, library_name="mlx", license=licence or "other",
        pipeline_tag="text-generation",
        tags=["mlx", context.config.lora.fine_tune_type, "lorascope", "fine-tuned"],
        datasets=[data.removeprefix("hf:")] if data.startswith("hf:") else None,
    ).to_yaml()


def provenance(context: RunContext, run: dict[str, Any], settings: dict[str, Any],
               base_model: str, base_licence: str | None) -> dict[str, Any]:
    config = context.config
    sizes = {row["split"]: row["rows_out"] for row in warehouse.select_rows(
        context.warehouse, "data_preparation", ["split", "rows_out"], run_id=context.run_id)}
    quantized = (f"{settings['quantize_bits']}-bit, group size {settings['quantize_group_size']}"
                 if settings["quantize_bits"] else
                 "de-quantized" if settings["dequantize"] else "as the base is stored")
    return {
        "run id": context.run_id,
        "base model": f"{base_model} (lorascope model.source {config.model.source})",
        "base licence": base_licence or "not recorded in the base's card",
        "fine-tuning": f"{config.lora.fine_tune_type}, rank {config.lora.rank}, scale "
                       f"{config.lora.effective_scale}, {config.train.iters} steps × batch "
                       f"{config.train.batch_size}, lr {config.train.learning_rate}",
        "data": config.data.source,
        "data hash": context.data_hash,
        "data size (rows kept)": ", ".join(f"{split} {count}" for split, count in sorted(
            sizes.items())) or "not recorded",
        "data licence": data_licence(config.data.source),
        "seed": config.seed,
        "config hash": config.config_hash(),
        "trained with": run.get("code_version") or "not recorded",
        "trained": f"{run.get('started_at')} to {run.get('finished_at')} UTC ({run.get('status')})",
        "exported with": f"lorascope {code_version()}, mlx-lm {mlx_lm_version()} "
                         f"(fuse, {quantized})",
    }


def mlx_lm_version() -> str:
    from mlx_lm import __version__

    return __version__


def evaluation_part(context: RunContext, evaluation: dict[str, Any] | None) -> list[str]:
    if evaluation is None:
        return ["Not evaluated: `lorascope eval RUN_ID` measures base vs tuned.", ""]
    evaluation_id = evaluation["evaluation_id"]
    parts = [f"Evaluation `{evaluation_id}` ({evaluation['status']}, started "
             f"{evaluation['started_at']} UTC): base vs tuned on the same prompts and items. "
             f"Each table is the report query `warehouse/report/<name>.sql` for this "
             f"evaluation; the full report is `runs/{context.run_id}/evaluations/"
             f"{evaluation_id}/report.md`.", ""]
    intros = {name: (title, intro) for title, intro, name in RUN_SECTIONS}
    params = {"run_id": context.run_id, "evaluation_id": evaluation_id}
    for name in [name for name in CARD_SECTIONS if name in intros]:
        title, intro = intros[name]
        section = query_section(context.warehouse, title, intro, name, params)
        parts += [f"### {section.title}", "", f"{section.intro} (`{name}`)", "",
                  markdown_table(section.columns, section.rows), ""]
    return parts


def model_card(context: RunContext, evaluation: dict[str, Any] | None,
               config: dict[str, Any], settings: dict[str, Any]) -> str:
    """README.md of the export: front matter, how to use it, provenance, the run's config,
    the evaluation with its intervals, failure modes and regressions, the chat template."""
    base_model, base_licence = base_identity(context)
    (run,) = warehouse.select_rows(context.warehouse, "runs", run_id=context.run_id) or [{}]
    template = context.config.model.chat_template
    parts = [
        "---", front_matter(context, base_model, base_licence).strip(), "---", "",
        f"# {context.run_id}", "",
        f"{base_model} with the {context.config.lora.fine_tune_type} adapters of lorascope run "
        f"`{context.run_id}` fused in by mlx-lm's fuse ({config.get('model_type')} "
        "architecture). It loads without adapters:", "",
        "```bash", "mlx_lm.generate --model . --prompt \"...\"",
        "mlx_lm.server --model .   # OpenAI-compatible, http://127.0.0.1:8080/v1", "```", "",
        "## Provenance", "",
        markdown_table(["", ""], list(provenance(context, run, settings, base_model,
                                                 base_licence).items())), "",
        f"The run's config (`runs/{context.run_id}/config.yaml`):", "",
        "```yaml", context.paths.config.read_text().strip(), "```", "",
        "## Evaluation", "", *evaluation_part(context, evaluation),
        "## Licence", "",
        f"Base model: {base_licence or 'not recorded; check the base model card'}. Training "
        f"data: {data_licence(context.config.data.source)}. The fused weights are derived from "
        "both: use them within the terms of each.", "",
        "## Chat template", "",
        ("The run's model.chat_template" if template else
         "The base tokenizer's own template, or lorascope's Mistral [INST] default where it has "
         "none") + ", as used in training and evaluation; saved in `tokenizer_config.json` and "
        "`chat_template.jinja`.", "",
    ]
    return "\n".join(parts)
