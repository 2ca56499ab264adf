"""The typed run config: shipped YAMLs load, mistakes are named, overrides apply."""

from __future__ import annotations

from pathlib import Path

import pytest

from lorascope.config import ConfigError, load_config, parse_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def test_demo_config_is_the_offline_smollm2_run() -> None:
    config = load_config(CONFIGS / "demo.yaml")
    assert config.model.source == "smollm2-135m"
    assert config.model.quantize_bits is None
    assert config.data.source.startswith("builtin:")
    assert config.lora.effective_scale == pytest.approx(2.0)  # alpha 16 / rank 8


def test_mistral_config_is_4bit_qlora_on_the_hub_model() -> None:
    config = load_config(CONFIGS / "mistral-7b-qlora.yaml")
    assert config.model.source == "mistralai/Mistral-7B-v0.1"
    assert config.model.quantize_bits == 4
    assert config.train.grad_checkpoint
    assert config.lora.effective_scale == pytest.approx(config.lora.alpha / config.lora.rank)


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_every_shipped_config_starts_with_the_command_that_runs_it(name: str) -> None:
    first_line = (CONFIGS / name).read_text().splitlines()[0]
    assert first_line == f"# lorascope run configs/{name}"


def test_unknown_key_is_an_error_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  itres: 10\n")
    with pytest.raises(ConfigError,
                       match=r"train\.itres: unknown key; did you mean train\.iters\?"):
        load_config(path)


def test_every_config_field_has_help_and_config_explain_lists_it() -> None:
    from pydantic import BaseModel

    from lorascope.config import RunConfig, explain_config

    text = explain_config()
    for name, field in RunConfig.model_fields.items():
        assert field.description, name
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            for key, sub in section.model_fields.items():
                assert sub.description, f"{name}.{key} has no help text"
                assert f"  {name}.{key}  (" in text
                assert sub.description in text
        else:
            assert f"  {name}  (" in text


def test_config_explain_of_one_section_shows_only_it() -> None:
    from lorascope.config import explain_config

    text = explain_config("lora")
    assert text.startswith("lora: ") and "  lora.rank  (int, default 8)" in text
    assert "train." not in text
    with pytest.raises(ConfigError, match="no config section 'lroa'"):
        explain_config("lroa")


def test_yaml_scientific_notation_string_becomes_a_float(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  learning_rate: 2e-4\n")  # PyYAML reads this as a string
    assert load_config(path).train.learning_rate == pytest.approx(2e-4)


def test_overrides_from_the_command_line_win_over_the_file() -> None:
    config = load_config(CONFIGS / "demo.yaml", ["train.iters=7", "lora.rank=4", "seed=3"])
    assert (config.train.iters, config.lora.rank, config.seed) == (7, 4, 3)


def test_malformed_override_says_what_form_it_needs() -> None:
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(CONFIGS / "demo.yaml", ["train.iters"])


def test_scale_and_alpha_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="either lora.scale or lora.alpha"):
        parse_config({"lora": {"scale": 2.0, "alpha": 16}})


def test_checkpoint_interval_must_fall_on_report_steps() -> None:
    with pytest.raises(ConfigError, match=r"save_every \(15\) must be a multiple"):
        parse_config({"train": {"save_every": 15, "steps_per_report": 10}})


def test_config_hash_changes_with_any_value_and_not_with_key_order() -> None:
    a = parse_config({"seed": 1, "train": {"iters": 5, "batch_size": 2}})
    b = parse_config({"train": {"batch_size": 2, "iters": 5}, "seed": 1})
    c = parse_config({"seed": 2, "train": {"iters": 5, "batch_size": 2}})
    assert a.config_hash() == b.config_hash() != c.config_hash()


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_the_number_of_training_processes_and_the_padding_do_not_change_the_run_id():
    from lorascope.runs import run_id_for

    one = parse_config({"train": {"batch_size": 4}})
    two = parse_config({"train": {"batch_size": 4, "ranks": 2, "pad_to_multiple": 8}})
    other = parse_config({"train": {"batch_size": 8}})
    assert run_id_for(one) == run_id_for(two) != run_id_for(other)


def test_a_goal_scoped_to_a_prompt_set_the_run_does_not_evaluate_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"prompt_sets \['builtin:sciq'\] are not in"):
        parse_config({"eval": {"prompts": ["test"], "goal": [
            {"name": "format", "regex": "^A", "prompt_sets": ["builtin:sciq"]}]}})


def test_the_gate_guards_only_known_families() -> None:
    with pytest.raises(ConfigError, match="gate_families"):
        parse_config({"eval": {"gate_families": ["saftey"]}})
    assert parse_config({"eval": {"gate_families": ["safety"]}}).eval.gate_families == ["safety"]
