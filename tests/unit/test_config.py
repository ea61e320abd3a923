"""The config tree is the schema: every shipped YAML parses, and bad input names its key path."""

from pathlib import Path

import pytest

from gp_distributed.config import (
    GPConfig,
    global_batch_size,
    load_config,
    parse_override,
    resolved_precision,
)
from gp_distributed.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_parses(path: Path) -> None:
    assert isinstance(load_config(path), GPConfig)


def test_shipped_configs_exist() -> None:
    assert (REPO / "configs" / "demo.yaml").is_file()


def test_defaults_are_valid() -> None:
    config = load_config()
    assert config.ingest.min_genes == 11
    assert config.ingest.go_evidence_exclude == ("IMP", "IGI")


def test_override_types_values_like_yaml() -> None:
    config = load_config(None, ["train.max_steps=50", "train.learning_rate=3e-4", "model.go_branch.enabled=false"])
    assert config.train.max_steps == 50
    assert config.train.learning_rate == pytest.approx(3e-4)
    assert config.model.go_branch.enabled is False


def test_unknown_key_names_its_path(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  max_stpes: 3\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: train\.max_stpes: unknown key"):
        load_config(path)


def test_wrong_type_names_its_path() -> None:
    with pytest.raises(ConfigError, match=r"train\.micro_batch_size"):
        load_config(None, ["train.micro_batch_size=many"])


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  max_steps: 3\n  lr: [1,\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: invalid YAML"):
        load_config(path)


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["ingest.split.valid_fraction=0.6", "ingest.split.test_fraction=0.5"], "ingest.split"),
        (["model.backbone_path=/x"], "model"),  # preset and path both set
        (["train.precision=bf16"], ""),  # bf16 without a GPU
        (["train.warmup_steps=500", "train.max_steps=100"], "train"),
        (["ingest.frequency_bin_edges=[10, 5]"], "ingest"),
    ],
)
def test_contradictions_fail_before_start(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(None, overrides)
    assert key in str(error.value)
    assert "\n" not in str(error.value)


def test_override_needs_equals() -> None:
    with pytest.raises(ConfigError, match="expected key.sub=value"):
        parse_override("train.max_steps")


def test_override_into_scalar_fails() -> None:
    with pytest.raises(ConfigError, match="not a section"):
        load_config(None, ["train.max_steps=3", "train.max_steps.x=1"])
    with pytest.raises(ConfigError, match=r"train\.max_steps: Input should be a valid integer"):
        load_config(None, ["train.max_steps.x=1"])


def test_derived_values() -> None:
    config = load_config(None, ["train.micro_batch_size=4", "train.grad_accum_steps=3"])
    assert global_batch_size(config, world_size=2) == 24
    assert global_batch_size(config, world_size=0) == 12  # in-process debugging counts as one worker
    assert resolved_precision(config) == "fp32"
    gpu = load_config(None, ["scaling.use_gpu=true"])
    assert resolved_precision(gpu) == "bf16"
