from pathlib import Path

import gguf
import numpy as np
import pytest
from safetensors.numpy import load_file

from lorascope.models.chat import prompt_tokens
from lorascope.models.gguf_convert import (
    convert_gguf_to_mlx,
    smollm2_gguf_path,
    unpermute_rope_rows,
)

HIDDEN, HEADS, KV_HEADS, VOCAB = 8, 2, 1, 4
TINY_TOKENS = ["<|endoftext|>", "a", "b", "ab"]


def llama_cpp_permute(weight: np.ndarray, n_head: int) -> np.ndarray:
    """`LlamaModel.permute` from llama.cpp's convert_hf_to_gguf.py, the layout we undo."""
    return (
        weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def tiny_hf_weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    head_dim = HIDDEN // HEADS
    shapes = {
        "model.embed_tokens.weight": (VOCAB, HIDDEN),
        "model.norm.weight": (HIDDEN,),
        "model.layers.0.input_layernorm.weight": (HIDDEN,),
        "model.layers.0.post_attention_layernorm.weight": (HIDDEN,),
        "model.layers.0.self_attn.q_proj.weight": (HIDDEN, HIDDEN),
        "model.layers.0.self_attn.k_proj.weight": (KV_HEADS * head_dim, HIDDEN),
        "model.layers.0.self_attn.v_proj.weight": (KV_HEADS * head_dim, HIDDEN),
        "model.layers.0.self_attn.o_proj.weight": (HIDDEN, HIDDEN),
        "model.layers.0.mlp.gate_proj.weight": (16, HIDDEN),
        "model.layers.0.mlp.up_proj.weight": (16, HIDDEN),
        "model.layers.0.mlp.down_proj.weight": (HIDDEN, 16),
    }
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}


def write_tiny_llama_gguf(path: Path, hf: dict[str, np.ndarray], head_count: int = HEADS) -> Path:
    """A real one-layer llama GGUF (float32), laid out as llama.cpp's converter writes it."""
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(1)
    writer.add_context_length(64)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(16)
    writer.add_head_count(head_count)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(TINY_TOKENS)
    writer.add_token_merges(["a b"])
    writer.add_token_types([3, 1, 1, 1])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(0)
    layer = "model.layers.0"
    gguf_names = {
        "token_embd.weight": hf["model.embed_tokens.weight"],
        "output_norm.weight": hf["model.norm.weight"],
        "blk.0.attn_norm.weight": hf[f"{layer}.input_layernorm.weight"],
        "blk.0.ffn_norm.weight": hf[f"{layer}.post_attention_layernorm.weight"],
        "blk.0.attn_q.weight": llama_cpp_permute(hf[f"{layer}.self_attn.q_proj.weight"], HEADS),
        "blk.0.attn_k.weight": llama_cpp_permute(hf[f"{layer}.self_attn.k_proj.weight"], KV_HEADS),
        "blk.0.attn_v.weight": hf[f"{layer}.self_attn.v_proj.weight"],
        "blk.0.attn_output.weight": hf[f"{layer}.self_attn.o_proj.weight"],
        "blk.0.ffn_gate.weight": hf[f"{layer}.mlp.gate_proj.weight"],
        "blk.0.ffn_up.weight": hf[f"{layer}.mlp.up_proj.weight"],
        "blk.0.ffn_down.weight": hf[f"{layer}.mlp.down_proj.weight"],
    }
    for name, tensor in gguf_names.items():
        writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_unpermute_rope_rows_inverts_llama_cpp_permute():
    weight = np.arange(12 * 5, dtype=np.float32).reshape(12, 5)
    assert np.array_equal(unpermute_rope_rows(llama_cpp_permute(weight, 3), 3), weight)


def test_tiny_llama_gguf_converts_back_to_the_hugging_face_weights(tmp_path):
    hf = tiny_hf_weights()
    gguf_path = write_tiny_llama_gguf(tmp_path / "tiny.gguf", hf)

    out = convert_gguf_to_mlx(gguf_path, tmp_path / "tiny")

    converted = load_file(out / "model.safetensors")
    assert converted.keys() == hf.keys()
    for name, weight in hf.items():
        assert np.array_equal(converted[name], weight), name


def test_non_gguf_file_fails_clearly_and_leaves_no_out_dir(tmp_path):
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_text("this is not a model\n")
    out = tmp_path / "converted"

    with pytest.raises(ValueError, match="is not a valid GGUF file"):
        convert_gguf_to_mlx(not_gguf, out)

    assert not out.exists()


def test_failure_while_writing_leaves_neither_out_dir_nor_partial(tmp_path):
    # 3 heads cannot split 8 query rows, which is only found while the weights are written.
    gguf_path = write_tiny_llama_gguf(tmp_path / "bad.gguf", tiny_hf_weights(), head_count=3)
    out = tmp_path / "converted"

    with pytest.raises(ValueError, match="blk.0.attn_q.weight"):
        convert_gguf_to_mlx(gguf_path, out)

    assert sorted(path.name for path in tmp_path.iterdir()) == ["bad.gguf"]


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """The packaged SmolLM2 GGUF converted once and loaded with mlx-lm."""
    from mlx_lm import load

    out = convert_gguf_to_mlx(smollm2_gguf_path(), tmp_path_factory.mktemp("models") / "smollm2")
    return load(str(out), return_config=True)


@pytest.mark.slow
def test_smollm2_config_has_the_gguf_hyper_parameters(smollm2):
    _, _, config = smollm2
    assert config["model_type"] == "llama"
    assert config["num_hidden_layers"] == 30
    assert config["hidden_size"] == 576
    assert config["num_attention_heads"] == 9
    assert config["num_key_value_heads"] == 3
    assert config["vocab_size"] == 49152
    assert config["tie_word_embeddings"] is True


@pytest.mark.slow
def test_smollm2_tokenizer_uses_the_gguf_vocabulary(smollm2):
    _, tokenizer, _ = smollm2
    tokens = gguf.GGUFReader(smollm2_gguf_path()).fields["tokenizer.ggml.tokens"].contents()

    ids = tokenizer.encode("Hello world 2024")

    # The "smollm" pre-tokenizer cuts every digit apart.
    assert [tokens[i] for i in ids] == ["Hello", "Ġworld", "Ġ", "2", "0", "2", "4"]
    assert tokenizer.decode(ids) == "Hello world 2024"


@pytest.mark.slow
def test_smollm2_answers_a_chat_question_sensibly(smollm2):
    from mlx_lm import generate

    model, tokenizer, _ = smollm2
    prompt = prompt_tokens(
        tokenizer, [{"role": "user", "content": "What is the capital of France?"}]
    )

    answer = generate(model, tokenizer, prompt, max_tokens=12)  # greedy by default

    assert "Paris" in answer
