"""Pretrained backbones as users have them on disk, through `gp train --workers 0` and `gp predict`:
replica checkpoints in each family's real layout (tests/fixtures/backbones), written by the tests, no
network. And what fails before anything starts: one line naming the key and the directory, exit 2."""

import gzip
import os
from pathlib import Path

import pytest
import torch
import transformers.pytorch_utils

from gp_distributed.cli import main
from gp_distributed.config import load_config
from gp_distributed.data.tokenize import tokenizer_for
from gp_distributed.errors import ConfigError
from gp_distributed.model.adapters import BERT_TARGETS
from gp_distributed.model.backbone import build_backbone
from gp_distributed.model.pretrained import (
    _find_pruneable_heads_and_indices,
    install_transformers4_shims,
)
from gp_distributed.model.validate import check_backbone
from gp_distributed.synthetic.generator import make_synthetic

from ..conftest import DEMO_DIR, tiny_training_overrides
from ..fixtures.backbones import replicas

os.environ["HF_HUB_OFFLINE"] = "1"  # a replica that tried the Hub would fail, not download


@pytest.fixture(scope="module")
def dna_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A small synthetic DNA store (MGI-style labels, GAF GO) and the files it came from."""
    root = tmp_path_factory.mktemp("dna")
    data = make_synthetic(root / "raw", n_genes=60, seed=5)
    store = root / "dna.zarr"
    args = ["ingest", "--quiet", "--alphabet", "dna", "--labels-format", "mgi", "--go-format", "gaf",
            "--min-genes", "3", "--out", str(store), "ingest.min_concept_genes=2", "ingest.genes_per_shard=16",
            "--fasta", str(data.fasta), "--id-map", str(data.id_map), "--labels", str(data.labels),
            "--ontology", str(data.mp_obo), "--go", str(data.gaf), "--go-ontology", str(data.go_obo)]
    assert main(args) == 0
    return store, data


@pytest.fixture(scope="module")
def replica_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("replicas")


def _replica(root: Path, family: str) -> Path:
    directory = root / family
    if not directory.exists():
        getattr(replicas, f"write_{family}")(directory)
    return directory


def _train_and_predict(store: Path, backbone: Path, tmp_path: Path, fasta: Path, extra: list[str],
                       predict_args: list[str] = ()) -> tuple[Path, list[str]]:
    overrides = tiny_training_overrides(store, tmp_path / "runs", "real", 2) + [
        "model.backbone_preset=null", f"model.backbone_path={backbone}", "model.go_branch.num_layers=0", *extra]
    assert main(["train", "--workers", "0", *overrides]) == 0
    checkpoint = max((tmp_path / "runs" / "real").glob("checkpoint_*"))
    out = tmp_path / "predictions.tsv"
    assert main(["predict", "--quiet", "--model", str(checkpoint), "--store", str(store), "--fasta", str(fasta),
                 "--out", str(out), "--min-probability", "0", *predict_args]) == 0
    return checkpoint, out.read_text().splitlines()


def _genes_scored(rows: list[str]) -> set[str]:
    assert rows[0] == "gene\tterm\tname\tprobability"
    return {row.split("\t")[0] for row in rows[1:]}


def test_esm2_trains_and_predicts(demo_store: Path, replica_dir: Path, tmp_path: Path) -> None:
    fasta = tmp_path / "few.fasta"
    with gzip.open(DEMO_DIR / "proteins.fasta.gz", "rt") as handle:
        records = handle.read().split(">")[1:4]
    fasta.write_text("".join(">" + record for record in records))
    _, rows = _train_and_predict(demo_store, _replica(replica_dir, "esm2"), tmp_path, fasta,
                                 [], ["--id-map", str(DEMO_DIR / "gene_ids.tsv")])
    assert len(_genes_scored(rows)) >= 1


@pytest.mark.parametrize(("family", "extra"), [
    ("nt_v1", ["data.max_seq_len_tokens=64"]),
    ("nt_v2", ["model.trust_remote_code=true"]),
    ("generator", ["model.trust_remote_code=true"]),
    ("bert", []),
])
def test_dna_backbone_trains_and_predicts(dna_data, replica_dir: Path, tmp_path: Path, family: str,
                                          extra: list[str]) -> None:
    store, data = dna_data
    _, rows = _train_and_predict(store, _replica(replica_dir, family), tmp_path, data.fasta, extra,
                                 ["--id-map", str(data.id_map)])
    assert len(_genes_scored(rows)) == len(data.sequences)


def _config(backbone: Path, *overrides: str):
    return load_config(None, ["model.backbone_preset=null", f"model.backbone_path={backbone}", *overrides])


def test_window_past_the_position_table_fails_before_training(dna_data, replica_dir: Path, tmp_path: Path,
                                                              capsys) -> None:
    store, _ = dna_data
    backbone = _replica(replica_dir, "nt_v1")  # 66 positions, ids from padding_idx + 1: 64 tokens
    capsys.readouterr()  # writing the replica prints progress bars
    overrides = tiny_training_overrides(store, tmp_path / "runs", "long", 2) + [
        "model.backbone_preset=null", f"model.backbone_path={backbone}", "data.max_seq_len_tokens=65"]
    assert main(["train", "--workers", "0", *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "data.max_seq_len_tokens" in err and str(backbone) in err and "64 positions" in err
    assert not (tmp_path / "runs").exists()  # nothing started, nothing written


def test_nt_v2_without_its_modeling_code_is_refused_by_its_weights(replica_dir: Path) -> None:
    backbone = _replica(replica_dir, "nt_v2")
    config = _config(backbone, "model.trust_remote_code_tokenizer=true")
    tokenizer = tokenizer_for(config.model, "dna", 6)
    with pytest.raises(ConfigError, match=r"model.trust_remote_code_model: .*intermediate.dense"):
        check_backbone(config, tokenizer, training=True)


def test_nt_v2_remote_code_gets_eager_attention_and_sdpa_is_refused(replica_dir: Path) -> None:
    backbone = _replica(replica_dir, "nt_v2")
    config = _config(backbone, "model.trust_remote_code=true")
    tokenizer = tokenizer_for(config.model, "dna", 6)
    checked = check_backbone(config, tokenizer, training=True)
    assert (checked.remote_code, checked.attn_implementation, checked.lora_targets) == (True, "eager", 8)
    with pytest.raises(ConfigError, match="model.attn_implementation: .*no SDPA support"):
        check_backbone(_config(backbone, "model.trust_remote_code=true", "model.attn_implementation=sdpa"),
                       tokenizer, training=True)
    long = _config(backbone, "model.trust_remote_code=true", "data.max_seq_len_tokens=2048")
    [warning] = check_backbone(long, tokenizer, training=True).warnings
    # 8 windows x 4 heads x 2048^2 x 4 bytes = 0.50 GiB of scores per layer
    assert "eager attention" in warning and "0.50 GiB" in warning


def test_generator_loads_with_the_native_llama_class_and_keeps_bf16_for_bf16_runs(replica_dir: Path) -> None:
    backbone = _replica(replica_dir, "generator")  # its modeling_generator.py raises if imported
    config = _config(backbone, "model.trust_remote_code=true")
    tokenizer = tokenizer_for(config.model, "dna", 6)
    assert type(tokenizer).__name__ == "DNAKmerTokenizer"
    module, hidden, kind = build_backbone(config.model, tokenizer)
    assert (type(module).__name__, hidden, kind) == ("LlamaModel", 32, "causal")
    assert module.embed_tokens.weight.dtype == torch.float32  # fp32 runs load fp32
    bf16_run = _config(backbone, "model.trust_remote_code=true", "scaling.use_gpu=true")
    assert check_backbone(bf16_run, tokenizer, training=True).dtype == torch.bfloat16
    asked = _config(backbone, "model.trust_remote_code=true", "model.trust_remote_code_model=true")
    with pytest.raises(ConfigError, match="model.trust_remote_code_model: .*modeling_generator"):
        check_backbone(asked, tokenizer, training=True)


def test_remote_tokenizer_needs_its_own_trust_and_old_style_code_is_one_line(replica_dir: Path,
                                                                            tmp_path: Path) -> None:
    backbone = _replica(replica_dir, "generator")
    with pytest.raises(ConfigError, match="model.trust_remote_code_tokenizer"):
        tokenizer_for(_config(backbone).model, "dna", 6)
    old = tmp_path / "old"
    old.mkdir()
    for file in backbone.iterdir():
        (old / file.name).write_bytes(file.read_bytes())
    code = (old / "tokenization_dna.py").read_text().replace(
        "        self.k = k\n", "        self.k = k\n        self.unk_token = unk_token  # transformers 4 habit\n")
    (old / "tokenization_dna.py").write_text(code)
    with pytest.raises(ConfigError, match=r"before calling super\(\).__init__\(\)"):
        tokenizer_for(_config(old, "model.trust_remote_code_tokenizer=true").model, "dna", 6)


def test_lora_regex_matching_nothing_names_the_key(replica_dir: Path) -> None:
    backbone = _replica(replica_dir, "bert")
    config = _config(backbone, r"model.lora.target_modules=encoder\.layer\.\d+\.nothing")
    with pytest.raises(ConfigError, match="model.lora.target_modules: .* matches no linear layer"):
        check_backbone(config, tokenizer_for(config.model, "dna", 6), training=True)


def test_bert_default_targets_cover_dnabert2_fused_attention() -> None:
    import re

    names = ["encoder.layer.0.attention.self.Wqkv", "encoder.layer.11.attention.output.dense",
             "encoder.layer.0.attention.self.query", "encoder.layer.0.mlp.gated_layers", "pooler.dense"]
    assert [bool(re.fullmatch(BERT_TARGETS, name)) for name in names] == [True, True, True, False, False]


def test_transformers4_shim_restores_the_removed_helper() -> None:
    install_transformers4_shims()
    helper = transformers.pytorch_utils.find_pruneable_heads_and_indices
    heads, index = helper([0, 2], n_heads=3, head_size=2, already_pruned_heads=set())
    assert heads == {0, 2} and index.tolist() == [2, 3]
    # With head 1 already pruned, head 2 is the second remaining one.
    heads, index = _find_pruneable_heads_and_indices([2], 3, 2, {1})
    assert heads == {2} and index.tolist() == [0, 1, 4, 5]


def test_missing_config_json_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    with pytest.raises(ConfigError, match="model.backbone_path: .*no config.json"):
        config = _config(tmp_path / "weights")
        check_backbone(config, tokenizer_for(config.model, "dna", 6), training=True)
