"""The resume contract through the CLI: `gp train --workers 0` resuming a tiny run refuses each forbidden
change in one line (exit 2, nothing written) before anything is converted, loaded or started, and resumes
with allowed ones; `gp evaluate` and `gp predict` refuse a store with other vocabularies in one line."""

import shutil
from pathlib import Path

import pytest

from gp_distributed import checkpoint as ckpt
from gp_distributed.cli import main
from gp_distributed.commands.train import run_training
from gp_distributed.config import load_config
from gp_distributed.synthetic.generator import make_synthetic

from ..conftest import DEMO_DIR, REPO_ROOT, tiny_training_overrides

pytestmark = pytest.mark.integration

RUN = "contract"


@pytest.fixture(scope="module")
def trained_run(demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny in-process run (2 steps, world size 1) shared by every case: its run directory."""
    storage = tmp_path_factory.mktemp("trained")
    run_training(load_config(None, [*tiny_training_overrides(demo_store, storage, RUN, 2), "scaling.num_workers=0"]))
    return ckpt.run_directory(storage, RUN)


@pytest.fixture(scope="module")
def other_vocabulary_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo data ingested with another min_genes: the same genes' proteins, other phenotype terms."""
    out = tmp_path_factory.mktemp("other") / "store.zarr"
    assert main(["ingest", "--quiet", "--config", str(REPO_ROOT / "configs" / "demo.yaml"), "--out", str(out),
                 "--min-genes", "30", *(f"ingest.{role}={DEMO_DIR / name}" for role, name in (
                     ("fasta", "proteins.fasta.gz"), ("id_map", "gene_ids.tsv"), ("labels", "genes_to_phenotype.txt.gz"),
                     ("ontology", "hp.obo.gz"), ("go", "gene2go.gz"), ("go_ontology", "go-basic.obo.gz"),
                     ("exclusive_pairs", "hpo_opposite_pairs.tsv")))]) == 0
    return out


@pytest.fixture(scope="module")
def dna_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another dataset altogether: synthetic mouse genes, DNA."""
    data = make_synthetic(tmp_path_factory.mktemp("synthetic"), n_genes=120, seed=3)
    out = data.fasta.parent / "dna.zarr"
    assert main(["ingest", "--quiet", "--alphabet", "dna", "--labels-format", "mgi", "--go-format", "gaf",
                 "--min-genes", "3", "--out", str(out), "--fasta", str(data.fasta), "--id-map", str(data.id_map),
                 "--labels", str(data.labels), "--ontology", str(data.mp_obo), "--go", str(data.gaf),
                 "--go-ontology", str(data.go_obo), "ingest.min_concept_genes=2"]) == 0
    return out


def _copy(trained_run: Path, tmp_path: Path) -> Path:
    """A private copy of the trained run (each case may resume or change it); returns its storage path."""
    shutil.copytree(trained_run, tmp_path / "runs" / RUN)
    return tmp_path / "runs"


def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns) for p in directory.rglob("*")}


def _gp_train(store: Path, storage: Path, max_steps: int, *extra: str) -> int:
    return main(["train", "--workers", "0", *tiny_training_overrides(store, storage, RUN, max_steps), *extra])


@pytest.mark.parametrize("override, change", [
    ("model.lora.rank=4", "model.lora.rank 8 -> 4"),
    ("model.lora.alpha=8", "model.lora.alpha 16.0 -> 8.0"),
    ("model.lora.target_modules=query", "model.lora.target_modules null -> query"),
    ("model.go_branch.num_layers=2", "model.go_branch.num_layers 1 -> 2"),
    ("model.mlp_hidden_dim=64", "model.mlp_hidden_dim 32 -> 64"),
    ("model.pooling=mean", "model.pooling attention+mean -> mean"),
    ("data.kmer_size=4", "data.kmer_size 6 -> 4"),
    ("data.max_seq_len_tokens=128", "data.max_seq_len_tokens 64 -> 128"),
    ("loss.kind=bce", "loss.kind contrastive -> bce"),
    ("loss.lambda_concept=0.1", "loss.lambda_concept 0.5 -> 0.1"),
    ("train.seed=7", "train.seed 0 -> 7"),
    ("train.learning_rate=0.01", "train.learning_rate 0.001 -> 0.01"),
    ("train.zero_stage=1", "train.zero_stage 2 -> 1"),
])
def test_a_forbidden_change_stops_in_one_line_and_writes_nothing(override: str, change: str, trained_run: Path,
                                                                 demo_store: Path, tmp_path: Path, capsys) -> None:
    storage = _copy(trained_run, tmp_path)
    before = _snapshot(storage)
    # More steps (allowed) beside the forbidden change: only the forbidden one is named.
    assert _gp_train(demo_store, storage, 3, override, "train.ckpt_every=1") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"gp train: error: {storage / RUN}: cannot resume checkpoint_00000002")
    assert f": {change}." in err and "train.max_steps" not in err
    assert f"train.run_name={RUN}-2" in err
    assert _snapshot(storage) == before


def test_a_store_with_other_vocabularies_stops_resume(trained_run: Path, demo_store: Path,
                                                      other_vocabulary_store: Path, tmp_path: Path, capsys) -> None:
    storage = _copy(trained_run, tmp_path)
    before = _snapshot(storage)
    assert _gp_train(other_vocabulary_store, storage, 2) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert (f"store {other_vocabulary_store} is not the dataset it was trained on ({demo_store}): "
            f"other phenotype terms") in err
    assert _snapshot(storage) == before


def test_another_store_and_backbone_fail_before_anything_starts(trained_run: Path, dna_store: Path, tmp_path: Path,
                                                               capsys, monkeypatch) -> None:
    """The issue's scenario: a tiny-protein run resumed on a DNA store with the tiny-dna preset went on to a
    universal checkpoint conversion and failed there. Now nothing past the check may run."""
    import gp_distributed.commands.train as train_command
    from gp_distributed.train import engine

    def must_not_run(*args, **kwargs):
        raise AssertionError("training started despite a forbidden resume")

    monkeypatch.setattr(train_command, "launch_training", must_not_run)
    monkeypatch.setattr(engine, "convert_to_universal", must_not_run)
    storage = _copy(trained_run, tmp_path)
    before = _snapshot(storage)
    assert _gp_train(dna_store, storage, 2, "model.backbone_preset=tiny-dna") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "model.backbone_preset tiny-protein -> tiny-dna" in err
    assert f"store {dna_store} is not the dataset it was trained on" in err and "alphabet protein -> dna" in err
    assert _snapshot(storage) == before


def test_allowed_changes_resume_with_one_notice(trained_run: Path, demo_store: Path, tmp_path: Path, capsys) -> None:
    """More steps, another evaluation cadence and the same store at another path: resumed from step 2."""
    storage = _copy(trained_run, tmp_path)
    moved_store = shutil.copytree(demo_store, tmp_path / "moved.zarr")
    assert _gp_train(moved_store, storage, 3, "train.eval_every=2", "train.ckpt_every=1") == 0
    out = capsys.readouterr().out
    notices = [line for line in out.splitlines() if line.startswith("resuming ")]
    assert len(notices) == 1
    assert "train.max_steps 2 -> 3" in notices[0] and "train.eval_every 1000 -> 2" in notices[0]
    assert f"data.store {demo_store} -> {moved_store}" in notices[0]
    assert "resumed from checkpoint_00000002 at step 2" in out
    latest = ckpt.latest_complete_checkpoint(storage / RUN)
    assert latest.name == "checkpoint_00000003"
    assert ckpt.read_meta(latest).store_fingerprint == ckpt.read_meta(trained_run / "checkpoint_00000002").store_fingerprint


def test_evaluate_and_predict_refuse_a_store_with_other_vocabularies(trained_run: Path, other_vocabulary_store: Path,
                                                                    dna_store: Path, demo_store: Path, tmp_path: Path,
                                                                    capsys) -> None:
    checkpoint = trained_run / "checkpoint_00000002"
    assert main(["evaluate", "--quiet", "--checkpoint", str(checkpoint), "--store", str(other_vocabulary_store)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(other_vocabulary_store) in err and str(demo_store) in err
    assert "other phenotype terms" in err
    out = tmp_path / "predictions.tsv"
    assert main(["predict", "--quiet", "--model", str(trained_run), "--store", str(dna_store), "--fasta",
                 str(DEMO_DIR / "proteins.fasta.gz"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(dna_store) in err and str(demo_store) in err and "alphabet protein -> dna" in err
    assert not out.exists()
