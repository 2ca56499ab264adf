"""mlx-lm's own LoRA config (`mlx_lm lora -c lora_config.yaml`), read as a lorascope run config.

mlx-lm's format is flat (`model: PATH`, `iters: 1000`, `lora_parameters: {rank, scale, ...}`);
lorascope's is nested by section. `translate` maps one onto the other with mlx-lm's defaults
(mlx_lm/lora.py: CONFIG_DEFAULTS) where a key is absent and mlx-lm's meaning where the two
differ: 16 adapted layers, learning rate 1e-5 with no schedule, loss on the whole sequence
(mask_prompt false), the `adam` optimizer, long rows truncated rather than refused. Keys that
mean nothing to lorascope are accepted with a warning; keys whose absence would change what is
trained (a DPO mode, a start adapter, sliced Hub splits) are refused with a ConfigError that
names the file, line and key. docs/mlx-lm.md has the key-by-key table.

Settings only lorascope has (run name, evaluation) go under a `lorascope:` key in lorascope's
own nested format; mlx-lm ignores keys it does not know, so one file runs in both tools.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Every key mlx-lm 0.32 reads from a LoRA config: CONFIG_DEFAULTS and build_parser in
# mlx_lm/lora.py, the feature names create_dataset reads (tuner/datasets.py), `hf_dataset`,
# and `wandb` (older versions' name for report_to). tests/test_mlx_lm_config.py checks this
# list against the installed mlx-lm. `lorascope` is ours.
CONFIG_DEFAULTS: dict[str, Any] = {
    "model": "Qwen/Qwen3-0.6b",
    "train": False,
    "fine_tune_type": "lora",
    "optimizer": "adam",
    "optimizer_config": {},
    "data": "mlx-community/WikiSQL",
    "seed": 0,
    "num_layers": 16,
    "batch_size": 4,
    "iters": 1000,
    "val_batches": 25,
    "learning_rate": 1e-5,
    "steps_per_report": 10,
    "steps_per_eval": 200,
    "resume_adapter_file": None,
    "adapter_path": "adapters",
    "save_every": 100,
    "test": False,
    "test_batches": 500,
    "max_seq_length": 2048,
    "config": None,
    "grad_checkpoint": False,
    "grad_accumulation_steps": 1,
    "clear_cache_threshold": 0,
    "lr_schedule": None,
    "lora_parameters": {"rank": 8, "dropout": 0.0, "scale": 20.0},
    "mask_prompt": False,
    "report_to": None,
    "project_name": None,
    "trust_remote_code": False,
}
FEATURE_KEYS = {"prompt_feature": "prompt", "completion_feature": "completion",
                "text_feature": "text", "chat_feature": "messages"}
# Keys of other mlx-lm versions than 0.32, with the value that selects what lorascope does:
# accepted with it (and ignored), refused with any other. `training_mode` came with mlx-lm's
# preference and RL training (the example config of its GRPO branch sets `training_mode:
# "normal"`; the other modes train on rewards or preference pairs, which lorascope does not).
DEFAULT_ONLY_KEYS = {"training_mode": "normal"}
MLX_LM_KEYS = (*CONFIG_DEFAULTS, *FEATURE_KEYS, *DEFAULT_ONLY_KEYS, "hf_dataset", "wandb",
               "lorascope")
# Keys only mlx-lm's format has; `model`, `data`, `train` and `seed` exist in both.
FLAT_ONLY_KEYS = frozenset(MLX_LM_KEYS) - {"model", "data", "train", "seed", "lorascope"}

# Flat key -> (lorascope section, key): the ones that carry over as they are.
DIRECT = {
    "fine_tune_type": ("lora", "fine_tune_type"),
    "num_layers": ("lora", "num_layers"),
    "batch_size": ("train", "batch_size"),
    "iters": ("train", "iters"),
    "val_batches": ("train", "val_batches"),
    "learning_rate": ("train", "learning_rate"),
    "steps_per_report": ("train", "steps_per_report"),
    "steps_per_eval": ("train", "steps_per_eval"),
    "grad_checkpoint": ("train", "grad_checkpoint"),
    "grad_accumulation_steps": ("train", "grad_accumulation_steps"),
    "mask_prompt": ("train", "mask_prompt"),
    "max_seq_length": ("data", "max_seq_length"),
}
LORA_PARAMETERS = {"rank": "rank", "scale": "scale", "dropout": "dropout",
                   "keys": "target_modules"}
OPTIMIZERS = ("adam", "adamw")
ADAM_SETTINGS = {"betas", "eps", "bias_correction"}
MLX_ADAMW_WEIGHT_DECAY = 0.01  # mlx.optimizers.AdamW's default, which mlx-lm leaves in place
HF_SPLITS = {"train_split": ("train",), "valid_split": ("validation", "valid"),
             "test_split": ("test",)}
HF_KEYS = {"path", "name", *HF_SPLITS, *FEATURE_KEYS, "config"}
IGNORED = {
    "adapter_path": "lorascope writes the adapters to its run folder, runs/<id>/adapters/ "
    "(mlx-lm's layout; `lorascope run` prints where)",
    "report_to": "lorascope records metrics in its warehouse (train_metrics) and Prefect",
    "project_name": "lorascope records metrics in its warehouse (train_metrics) and Prefect",
    "wandb": "lorascope records metrics in its warehouse (train_metrics) and Prefect",
    "clear_cache_threshold": "MLX's cache is left to MLX",
    "trust_remote_code": "lorascope loads models without remote code",
}


class MlxLmConfigError(ValueError):
    """A key mlx-lm accepts that lorascope cannot honour; config.load_config names the file."""


@dataclass
class Translation:
    """lorascope's nested config, the warnings about keys it does not use, and for each of
    its keys the mlx-lm key it came from (to name that key in validation errors)."""

    config: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)


def is_mlx_lm_config(data: dict[str, Any]) -> bool:
    """True for mlx-lm's flat format: `model`/`data` as a string, `train` as a boolean, or a
    key only mlx-lm has, without lorascope's sections."""
    if isinstance(data.get("model"), str) or isinstance(data.get("data"), str):
        return True
    if isinstance(data.get("train"), bool):
        return True
    sections = {"lora", "eval", "name"} | {k for k in ("model", "data", "train")
                                           if isinstance(data.get(k), dict)}
    return bool(FLAT_ONLY_KEYS & set(data)) and not sections & set(data)


def key_lines(text: str) -> dict[str, int]:
    """The line of each top-level key of a YAML mapping (errors name it)."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {key.value: key.start_mark.line + 1 for key, _ in node.value
            if isinstance(key, yaml.ScalarNode)}


def nearest_mlx_lm_key(key: str) -> str | None:
    close = difflib.get_close_matches(key, MLX_LM_KEYS, n=1, cutoff=0.5)
    return close[0] if close else None


def _number(value: Any, key: str) -> float:
    # PyYAML reads 1e-5 as a string (mlx-lm adds a float resolver to its loader for this).
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MlxLmConfigError(f"{key}: expected a number, got {value!r}") from None


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MlxLmConfigError(f"{key}: expected a mapping, got {value!r}")
    return value


def _unknown(keys: set[str], known: set[str] | tuple[str, ...], where: str) -> None:
    for key in sorted(keys - set(known)):
        close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.5)
        hint = f"; did you mean {where}{close[0]}?" if close else ""
        raise MlxLmConfigError(f"{where}{key}: unknown mlx-lm key{hint}")


def translate(
    flat: dict[str, Any], name: str = "run", is_local: Callable[[str], bool] | None = None
) -> Translation:
    """lorascope's nested config for mlx-lm's flat one, with mlx-lm's defaults.

    `name` becomes the run name (load_config passes the file's stem); `is_local(path)` says
    whether `data` is a local folder (else a Hub dataset, as mlx-lm decides it), by default
    whether that path exists.
    """
    is_local = is_local or (lambda path: Path(path).expanduser().exists())
    unknown = sorted(set(flat) - set(MLX_LM_KEYS))
    if unknown:
        key = unknown[0]
        close = nearest_mlx_lm_key(key)
        raise MlxLmConfigError(f"{key}: unknown mlx-lm key" + (
            f"; did you mean {close}?" if close else
            "; lorascope's own settings go under `lorascope:` in lorascope's nested format"))
    for key, default in DEFAULT_ONLY_KEYS.items():
        if flat.get(key) not in (None, default):
            raise MlxLmConfigError(
                f"{key}: {flat[key]!r} is not supported by lorascope, which trains supervised "
                f"only (mlx-lm's {key}: {default}); remove the key or set it to {default}")
    given = {**CONFIG_DEFAULTS, **{k: v for k, v in flat.items() if v is not None}}
    out = Translation({"name": name, "seed": int(given["seed"]),
                       "model": {"source": str(given["model"])},
                       "data": {"over_length": "truncate", "source": ""},
                       "lora": {}, "train": {"lr_schedule": "constant"}})
    config = out.config
    if given["train"] is False and "train" in flat:
        raise MlxLmConfigError("train: false (test only) has no lorascope equivalent: "
                               "`lorascope run` trains; `lorascope eval` evaluates adapters")
    for key, (section, target) in DIRECT.items():
        config[section][target] = given[key]
        out.sources[f"{section}.{target}"] = key
    out.sources |= {"seed": "seed", "model.source": "model"}
    _lora_parameters(given, config["lora"], out)
    _optimizer(given, config["train"], out)
    _schedule(given.get("lr_schedule"), config["train"], out)
    _save_every(given, config["train"], out)
    _data(given, config["data"], is_local, out)
    if given["resume_adapter_file"] is not None:
        raise MlxLmConfigError(
            "resume_adapter_file: lorascope does not start training from given adapter "
            "weights; it resumes its own runs exactly (run the same config again, or "
            "`lorascope resume RUN_ID`). Remove the key or set it to null")
    for key, why in IGNORED.items():
        value = flat.get(key)
        if value not in (None, False, 0):
            out.warnings.append(f"{key}: {value!r} is not used: {why}")
    if flat.get("test"):
        # mlx-lm's test loss is lorascope's eval.test_loss, base and tuned, on at most
        # test_batches batches of the test split.
        batches = int(given["test_batches"])
        config["eval"] = {"test_loss": True,
                          "test_limit": None if batches < 0 else batches * config["train"].get(
                              "batch_size", CONFIG_DEFAULTS["batch_size"])}
        out.sources |= {"eval.test_loss": "test", "eval.test_limit": "test_batches"}
    _merge(config, _mapping(flat.get("lorascope"), "lorascope"))
    return out


def _lora_parameters(given: dict[str, Any], lora: dict[str, Any], out: Translation) -> None:
    # mlx-lm uses a given block as it is; missing keys take its defaults here rather than fail.
    block = {**CONFIG_DEFAULTS["lora_parameters"],
             **_mapping(given["lora_parameters"], "lora_parameters")}
    _unknown(set(block), tuple(LORA_PARAMETERS), "lora_parameters.")
    for key, target in LORA_PARAMETERS.items():
        if key in block:
            lora[target] = block[key]
            out.sources[f"lora.{target}"] = f"lora_parameters.{key}"
    lora["scale"] = _number(lora["scale"], "lora_parameters.scale")


def _optimizer(given: dict[str, Any], train: dict[str, Any], out: Translation) -> None:
    name = str(given["optimizer"]).lower()
    if name not in OPTIMIZERS:
        raise MlxLmConfigError(f"optimizer: {name!r} is not supported by lorascope; use "
                               f"{' or '.join(OPTIMIZERS)}")
    train["optimizer"] = name
    out.sources["train.optimizer"] = "optimizer"
    settings = _mapping(_mapping(given["optimizer_config"], "optimizer_config").get(name),
                        f"optimizer_config.{name}")
    known = ADAM_SETTINGS | ({"weight_decay"} if name == "adamw" else set())
    _unknown(set(settings), tuple(sorted(known)), f"optimizer_config.{name}.")
    where = f"optimizer_config.{name}"
    if name == "adamw":
        train["weight_decay"] = _number(settings.get("weight_decay", MLX_ADAMW_WEIGHT_DECAY),
                                        f"{where}.weight_decay")
    if "betas" in settings:
        train["betas"] = [_number(b, f"{where}.betas") for b in settings["betas"]]
    if "eps" in settings:
        train["eps"] = _number(settings["eps"], f"{where}.eps")
    if "bias_correction" in settings:
        train["bias_correction"] = settings["bias_correction"]
    out.sources |= {f"train.{k}": f"{where}.{k}" for k in settings}


def _schedule(schedule: Any, train: dict[str, Any], out: Translation) -> None:
    """mlx-lm's lr_schedule {name, arguments, warmup, warmup_init}: built by mlx-lm's own
    build_schedule in training, for the one schedule lorascope supports, cosine_decay."""
    if schedule is None:
        return
    schedule = _mapping(schedule, "lr_schedule")
    _unknown(set(schedule), ("name", "arguments", "warmup", "warmup_init"), "lr_schedule.")
    if schedule.get("name") != "cosine_decay":
        raise MlxLmConfigError(f"lr_schedule.name: {schedule.get('name')!r} is not supported "
                               "by lorascope; use cosine_decay (or no lr_schedule)")
    arguments = schedule.get("arguments")
    if not isinstance(arguments, list) or not 2 <= len(arguments) <= 3:
        raise MlxLmConfigError("lr_schedule.arguments: expected [initial_lr, decay_steps] or "
                               "[initial_lr, decay_steps, end_lr] (mlx's cosine_decay)")
    numbers = [_number(a, "lr_schedule.arguments") for a in arguments]
    # mlx-lm's schedule starts from arguments[0] and ignores learning_rate.
    train |= {"lr_schedule": "cosine_decay", "learning_rate": numbers[0],
              "decay_steps": int(numbers[1]),
              "min_learning_rate": numbers[2] if len(numbers) == 3 else 0.0,
              "warmup_steps": int(schedule.get("warmup") or 0),
              "warmup_init": _number(schedule.get("warmup_init") or 0.0,
                                     "lr_schedule.warmup_init")}
    out.sources |= {"train.lr_schedule": "lr_schedule.name",
                    "train.learning_rate": "lr_schedule.arguments",
                    "train.decay_steps": "lr_schedule.arguments",
                    "train.min_learning_rate": "lr_schedule.arguments",
                    "train.warmup_steps": "lr_schedule.warmup",
                    "train.warmup_init": "lr_schedule.warmup_init"}


def _save_every(given: dict[str, Any], train: dict[str, Any], out: Translation) -> None:
    # lorascope checkpoints only on report and update boundaries (a checkpoint must never
    # split a reported loss average or an accumulated gradient): round up to one.
    save_every = int(given["save_every"])
    unit = math.lcm(max(int(given["steps_per_report"]), 1),
                    max(int(given["grad_accumulation_steps"]), 1))
    rounded = max(math.ceil(save_every / unit), 1) * unit
    if rounded != save_every:
        out.warnings.append(f"save_every: {save_every} checkpoints at {rounded}, the next "
                            f"multiple of steps_per_report and grad_accumulation_steps")
    train["save_every"] = rounded
    out.sources["train.save_every"] = "save_every"


def _data(given: dict[str, Any], data: dict[str, Any], is_local: Callable[[str], bool],
          out: Translation) -> None:
    features = {key: given[key] for key in FEATURE_KEYS if key in given}
    hf = given.get("hf_dataset")
    if hf:
        if isinstance(hf, list):
            if len(hf) != 1:
                raise MlxLmConfigError("hf_dataset: lorascope trains on one dataset; give one "
                                       "entry (or concatenate the datasets into one folder)")
            hf = hf[0]
        hf = _mapping(hf, "hf_dataset")
        _unknown(set(hf), tuple(sorted(HF_KEYS)), "hf_dataset.")
        path = hf.get("path") or hf.get("name")
        if not path:
            raise MlxLmConfigError("hf_dataset.path: missing; the Hub dataset to train on")
        if hf.get("config"):
            raise MlxLmConfigError("hf_dataset.config: dataset configurations are not "
                                   "supported; save the dataset with save_to_disk and give "
                                   "its folder as data")
        for key, names in HF_SPLITS.items():
            if key in hf and hf[key] not in names:
                raise MlxLmConfigError(
                    f"hf_dataset.{key}: {hf[key]!r}: lorascope reads the dataset's own splits "
                    f"({'/'.join(names)}) or splits train itself (data.valid_fraction, "
                    "data.test_fraction); remove the key, or save the split you want with "
                    "save_to_disk")
        features |= {key: hf[key] for key in FEATURE_KEYS if key in hf}
        data["source"] = f"hf:{path}"
        out.sources["data.source"] = "hf_dataset.path"
    else:
        source = str(given["data"])
        data["source"] = source if is_local(source) else f"hf:{source}"
        out.sources["data.source"] = "data"
    columns = {FEATURE_KEYS[key]: value for key, value in features.items()
               if value != FEATURE_KEYS[key]}
    if columns:
        data["columns"] = columns
        out.sources["data.columns"] = ", ".join(sorted(features))


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
