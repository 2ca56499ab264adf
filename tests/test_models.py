"""Model sources: what each command fetches from the Hub, and QLoRA's quantize-once cache.

The Hub here is a real HTTP server on 127.0.0.1 (started by the test, nothing else is reached)
that answers huggingface_hub as huggingface.co would, for one repository holding tiny-mistral,
and records every path asked of it. The commands run in fresh processes with `HF_ENDPOINT`
pointing at it, so the download calls are the real ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from lorascope.config import ModelConfig, parse_config
from lorascope.models.loader import load_model, quantized_base, quantized_base_path
from lorascope.training.planner import dims_from_config, quantize_peak_bytes

ROOT = Path(__file__).resolve().parent.parent
REPO = "lorascope-test/tiny-mistral"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".gguf")


class FakeHub(ThreadingHTTPServer):
    """huggingface.co's API shape for one model repo: revision info, tree listing, resolve."""

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), HubHandler)
        self.files = files
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class HubHandler(BaseHTTPRequestHandler):
    server: FakeHub

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
        self.answer(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self.answer(body=True)

    def answer(self, body: bool) -> None:
        self.server.requests.append(f"{self.command} {self.path}")
        path = self.path.split("?")[0]
        files = self.server.files
        if path.startswith(f"/api/models/{REPO}/revision/"):
            payload = json.dumps({"id": REPO, "modelId": REPO, "sha": COMMIT, "private": False,
                                  "siblings": [{"rfilename": name} for name in files]})
            return self.send(payload.encode(), "application/json", body)
        if path.startswith(f"/api/models/{REPO}/tree/"):
            payload = json.dumps([
                {"type": "file", "path": name, "size": len(data),
                 "oid": hashlib.sha1(data).hexdigest()} for name, data in files.items()])
            return self.send(payload.encode(), "application/json", body)
        prefix = f"/{REPO}/resolve/"
        if path.startswith(prefix):
            name = path[len(prefix):].split("/", 1)[1]
            if name in files:
                return self.send(files[name], "application/octet-stream", body, name)
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def send(self, data: bytes, kind: str, body: bool, name: str | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        if name is not None:
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def fake_hub(tiny_mistral_dir: Path) -> Iterator[FakeHub]:
    files = {path.name: path.read_bytes() for path in sorted(tiny_mistral_dir.iterdir())}
    files["pytorch_model.bin"] = bytes(1 << 20)  # a second copy of the weights, never wanted
    server = FakeHub(files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def run_cli(args: list[str], hub: FakeHub, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_DISABLE_XET": "1", "LORASCOPE_HOME": str(tmp_path / "home"),
           "NO_PROXY": "127.0.0.1", "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_OFFLINE", None)
    return subprocess.run([sys.executable, "-m", "lorascope.cli", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


def hub_config(tmp_path: Path) -> Path:
    rows = [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                          {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]}
            for i in range(40)]
    data = tmp_path / "chats.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = tmp_path / "hub.yaml"
    config.write_text(yaml.safe_dump({
        "name": "hub", "model": {"source": REPO, "quantize_bits": 4},
        "data": {"source": str(data), "max_seq_length": 64},
        "train": {"batch_size": 2, "iters": 10, "save_every": 10, "steps_per_report": 10},
    }))
    return config


def downloaded(hub: FakeHub) -> list[str]:
    """Names of the files asked for (HEAD or GET) under /{repo}/resolve/{revision}/."""
    return [r.split()[1].split("?")[0].rsplit("/", 1)[1]
            for r in hub.requests if "/resolve/" in r]


def test_plan_on_a_hub_id_fetches_config_and_tokenizer_but_no_weights(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    fake_hub.requests.clear()
    done = run_cli(["plan", str(hub_config(tmp_path)), "--hardware", "m4-max"], fake_hub,
                   tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "steps per epoch   16" in done.stdout  # the data was tokenized: a tokenizer came
    fetched = downloaded(fake_hub)
    assert "config.json" in fetched and "tokenizer.json" in fetched
    assert not [name for name in fetched if name.endswith(WEIGHT_SUFFIXES)], fake_hub.requests


def test_validate_on_a_hub_id_fetches_config_and_tokenizer_but_no_weights(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    fake_hub.requests.clear()
    done = run_cli(["validate", str(hub_config(tmp_path))], fake_hub, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    fetched = downloaded(fake_hub)
    assert "tokenizer.json" in fetched
    assert not [name for name in fetched if name.endswith(WEIGHT_SUFFIXES)], fake_hub.requests


def test_a_run_fetches_the_weights_of_a_hub_model(fake_hub: FakeHub, tmp_path: Path) -> None:
    fake_hub.requests.clear()
    script = (f"from lorascope.models.loader import resolve_model; "
              f"print(resolve_model({REPO!r}))")
    env = {**os.environ, "HF_ENDPOINT": fake_hub.url, "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_DISABLE_XET": "1", "NO_PROXY": "127.0.0.1", "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_OFFLINE", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = Path(done.stdout.strip().splitlines()[-1])
    assert (folder / "model.safetensors").is_file()
    assert "model.safetensors" in downloaded(fake_hub)
    assert "pytorch_model.bin" not in downloaded(fake_hub)  # a duplicate of the weights


# tiny-mistral's linear layers take 64 (hidden, q_proj/o_proj width) or 192 (intermediate)
# inputs: all divisible by the group size 64, so every one of them is quantized.
QLORA = ModelConfig(source="tiny-mistral", quantize_bits=4, quantize_group_size=64)


def test_qlora_quantizes_the_base_once_into_the_models_folder(
    tiny_mistral_dir: Path, tmp_path: Path
) -> None:
    import mlx.nn as nn

    model, _ = load_model(tiny_mistral_dir, QLORA, home=tmp_path)
    cached = quantized_base_path(tiny_mistral_dir, 4, 64, tmp_path)
    assert cached.parent == tmp_path / "models"
    assert json.loads((cached / "config.json").read_text())["quantization"] == {
        "group_size": 64, "bits": 4, "mode": "affine"}
    written = (cached / "model.safetensors").stat().st_mtime_ns
    again, _ = load_model(tiny_mistral_dir, QLORA, home=tmp_path)
    assert (cached / "model.safetensors").stat().st_mtime_ns == written  # read, not rewritten
    layers = [m for _, m in again.named_modules() if isinstance(m, nn.QuantizedLinear)]
    assert len(layers) == 2 * 7 + 1  # every block's 7 projections and the LM head


def test_adapters_trained_on_the_quantized_base_load_in_plain_mlx_lm(
    tiny_mistral_dir: Path, tmp_path: Path
) -> None:
    import mlx.core as mx
    from mlx_lm import load

    from lorascope.paths import RunPaths
    from lorascope.training.trainer import train_adapters

    config = parse_config({
        "model": QLORA.model_dump(), "lora": {"rank": 4, "num_layers": -1},
        "data": {"max_seq_length": 64},
        "train": {"iters": 4, "batch_size": 2, "steps_per_report": 2, "save_every": 4,
                  "steps_per_eval": 100, "val_batches": 1, "learning_rate": 1e-2},
    })
    model, tokenizer = load_model(tiny_mistral_dir, config.model, home=tmp_path)
    chats = [[{"role": "user", "content": f"count to {i}"},
              {"role": "assistant", "content": " ".join(str(j) for j in range(i))}]
             for i in range(3, 11)]
    paths = RunPaths(tmp_path / "run")
    train_adapters(model, tokenizer, chats, chats[:2], config, tiny_mistral_dir, paths, "test",
                   "data", log=lambda _: None)

    cached = quantized_base(tiny_mistral_dir, 4, 64, tmp_path)
    plain, _ = load(str(cached), adapter_path=str(paths.adapters))
    ours, _ = load_model(tiny_mistral_dir, config.model, paths.adapters, home=tmp_path)
    base, _ = load(str(cached))
    tokens = mx.array([[1, 415, 2936, 9060, 285, 1142]])
    assert mx.array_equal(plain(tokens), ours(tokens))
    assert not mx.allclose(plain(tokens), base(tokens))  # the adapters change the output


QUANTIZE_PEAK = """
import sys
from pathlib import Path
import mlx.core as mx
from lorascope.models.loader import quantized_base
mx.reset_peak_memory()
quantized_base(Path(sys.argv[1]), 4, 64, Path(sys.argv[2]))
print(mx.get_peak_memory())
"""


def test_the_planner_predicts_the_peak_memory_of_quantizing_once(
    tiny_mistral_dir: Path, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", QUANTIZE_PEAK, str(tiny_mistral_dir), str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    measured = int(done.stdout.strip().splitlines()[-1])
    dims = dims_from_config(json.loads((tiny_mistral_dir / "config.json").read_text()))
    predicted = quantize_peak_bytes(dims, 4, 64)
    print(f"predicted {predicted / 1e6:.2f} MB, measured {measured / 1e6:.2f} MB")
    assert abs(predicted / measured - 1) <= 0.15
