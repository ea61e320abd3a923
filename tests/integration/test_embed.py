"""`gp embed` end to end: a model trained in-process on the demo store (DeepSpeed, world of one), then
`gp embed` through the CLI for a store split and for a FASTA file of some of the same genes. The two
must give each gene the same vectors, and the concept activations must be `Predictor.predict`'s."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gp_distributed.cli import main
from gp_distributed.commands.train import run_training
from gp_distributed.config import load_config
from gp_distributed.data.store import GeneStore, open_store
from gp_distributed.inference.package import InputGene, Predictor

from ..conftest import tiny_training_overrides

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Trained:
    root: Path
    store_path: Path
    store: GeneStore
    checkpoint: Path
    predictor: Predictor


@pytest.fixture(scope="module")
def trained(demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("embed")
    overrides = [*tiny_training_overrides(demo_store, root / "runs", "embed", 2), "scaling.num_workers=0",
                 "train.micro_batch_size=8"]
    result = run_training(load_config(None, overrides))
    return Trained(root, demo_store, open_store(demo_store), result.checkpoint_dir,
                   Predictor.from_checkpoint(result.checkpoint_dir, demo_store))


def read_vectors(path: Path) -> tuple[pa.Table, dict[str, np.ndarray]]:
    table = pq.read_table(path)
    vectors = {name: np.stack(table.column(name).to_numpy(zero_copy_only=False))
               for name in ("sequence_vector", "fused_vector", "concept_activations")}
    return table, vectors


def test_embed_a_store_split_and_the_same_genes_from_fasta(trained: Trained) -> None:
    store, predictor = trained.store, trained.predictor
    out = trained.root / "out" / "valid.parquet"
    assert main(["embed", "--model", str(trained.checkpoint), "--store", str(trained.store_path),
                 "--split", "valid", "--out", str(out), "--quiet"]) == 0
    table, vectors = read_vectors(out)
    valid = store.split_indices("valid")
    all_ids = store.gene_ids()
    assert table.column("gene_id").to_pylist() == [all_ids[i] for i in valid]
    assert table.schema.field("sequence_vector").type == pa.list_(pa.float32(), 2 * predictor.model.hidden_size)
    assert vectors["sequence_vector"].shape == (len(valid), 2 * predictor.model.hidden_size)  # attention + mean
    assert vectors["fused_vector"].shape == (len(valid), 32)  # model.mlp_hidden_dim
    assert vectors["concept_activations"].shape == (len(valid), len(store.concept_ids))
    assert table.schema.metadata[b"gp.concept_ids"].decode() == json.dumps(list(store.concept_ids))
    assert np.isfinite(vectors["fused_vector"]).all() and vectors["fused_vector"].std(axis=0).max() > 0

    # The first five valid genes again, as new genes: FASTA plus their GO inputs as a TSV.
    records = [store.gene(int(i)) for i in valid[:5]]
    fasta, go = trained.root / "few.fasta", trained.root / "few_go.tsv"
    fasta.write_text("".join(f">{r.gene_id}\n{r.sequence.decode()}\n" for r in records))
    go.write_text("gene\tgo\n" + "".join(f"{r.gene_id}\t{store.go_input_ids[j]}\n" for r in records for j in r.go_input))
    few = trained.root / "out" / "few.parquet"
    assert main(["embed", "--model", str(trained.checkpoint), "--fasta", str(fasta), "--go", str(go),
                 "--go-format", "tsv", "--out", str(few), "--quiet"]) == 0
    few_table, few_vectors = read_vectors(few)
    assert few_table.column("gene_id").to_pylist() == [r.gene_id for r in records]
    for name, matrix in few_vectors.items():
        np.testing.assert_allclose(matrix, vectors[name][:5], rtol=0, atol=1e-5, err_msg=name)

    genes = [InputGene(r.gene_id, r.sequence, [store.go_input_ids[j] for j in r.go_input]) for r in records]
    predicted = predictor.predict(genes)
    np.testing.assert_allclose(few_vectors["concept_activations"], predicted.concept_activations, rtol=0, atol=1e-6)
    assert predicted.sequence_vectors is None  # collected only when asked


def test_embed_refuses_bad_arguments_before_any_work(trained: Trained, capsys: pytest.CaptureFixture[str]) -> None:
    out = trained.root / "refused" / "e.parquet"
    both = ["embed", "--model", str(trained.checkpoint), "--store", str(trained.store_path), "--split", "test",
            "--fasta", str(trained.root / "few.fasta"), "--out", str(out)]
    assert main(both) == 2
    assert "--split/--fasta" in capsys.readouterr().err
    (trained.root / "refused" / "a_dir").mkdir(parents=True)
    assert main(["embed", "--model", str(trained.checkpoint), "--store", str(trained.store_path), "--split", "test",
                 "--out", str(trained.root / "refused" / "a_dir")]) == 2
    assert "--out must name a file" in capsys.readouterr().err
    assert sorted(p.name for p in (trained.root / "refused").iterdir()) == ["a_dir"]  # nothing written
