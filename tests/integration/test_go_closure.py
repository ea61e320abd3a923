"""GO inputs closed under is_a/part_of at ingest (true-path rule on the input side), and new genes'
GO sets closed the same way at prediction time."""

from pathlib import Path

import numpy as np
import pytest

from gp_distributed.config import load_config
from gp_distributed.data.store import open_store
from gp_distributed.ingest.pipeline import run_ingest

from ..conftest import REPO_ROOT

pytestmark = pytest.mark.integration


def test_store_go_inputs_are_closed_under_the_stored_parents(demo_store: Path) -> None:
    store = open_store(demo_store)
    vocab = store.attrs["go_input_vocab"]
    assert vocab["closed"] and len(vocab["parents"]) == len(vocab["ids"])
    for gene in range(0, store.n_genes, 25):
        terms = set(store.ragged("go_input", gene).tolist())
        assert all(set(vocab["parents"][t]) <= terms for t in terms)


def test_closure_can_be_turned_off(demo_store: Path, tmp_path: Path) -> None:
    config = load_config(REPO_ROOT / "configs" / "demo.yaml",
                         ["ingest.go_input_closure=false"], {"ingest.out": tmp_path / "direct.zarr"})
    inputs = {name: REPO_ROOT / getattr(config.ingest, name) for name in (
        "fasta", "id_map", "labels", "ontology", "go", "go_ontology", "exclusive_pairs")}
    run_ingest(config.ingest.model_copy(update=inputs), show_progress=False)
    direct, closed = open_store(tmp_path / "direct.zarr"), open_store(demo_store)
    assert not direct.attrs["go_input_vocab"]["closed"]
    sizes = [(len(direct.ragged("go_input", g)), len(closed.ragged("go_input", g))) for g in range(direct.n_genes)]
    assert all(d <= c for d, c in sizes) and np.mean([c for _, c in sizes]) > 2 * np.mean([d for d, _ in sizes])
