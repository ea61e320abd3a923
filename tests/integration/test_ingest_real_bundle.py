"""`gp ingest` on the real 3,807-gene HPO bundle, checked against counts computed here from the raw
files with a deliberately different, naive method (line parsing and breadth-first search)."""

import csv
import gzip
import hashlib
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from gp_distributed.config import load_config
from gp_distributed.data.store import open_store
from gp_distributed.ingest.pipeline import run_ingest

ROOT = "HP:0000118"


def _naive_is_a_parents(obo_gz: Path) -> dict[str, list[str]]:
    parents: dict[str, list[str]] = {}
    current = None
    with gzip.open(obo_gz, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("[Term]"):
                current = None
            elif line.startswith("[") :
                current = None
            elif line.startswith("id: ") and current is None:
                current = line[4:].strip()
                parents[current] = []
            elif line.startswith("is_a: ") and current is not None:
                parents[current].append(line[6:].split("!")[0].strip())
    return parents


def _naive_ancestors(term: str, parents: dict[str, list[str]]) -> set[str]:
    seen, frontier = {term}, [term]
    while frontier:
        frontier = [p for t in frontier for p in parents.get(t, []) if p not in seen]
        seen.update(frontier)
    return seen


@pytest.fixture(scope="module")
def real_store(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("real") / "hpo.zarr"
    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "hpo-protein.yaml",
                         typed_values={"ingest.out": out, **{f"ingest.{k}": bundle_dir / v for k, v in {
                             "fasta": "proteins.fasta.gz", "id_map": "gene_ids.tsv",
                             "labels": "genes_to_phenotype.txt.gz", "ontology": "hp.obo.gz", "go": "gene2go.gz",
                             "go_ontology": "go-basic.obo.gz", "exclusive_pairs": "hpo_opposite_pairs.tsv"}.items()}})
    summary = run_ingest(config.ingest, show_progress=False)
    return open_store(out), summary, config


@pytest.fixture(scope="module")
def naive_truth(bundle_dir: Path):
    parents = _naive_is_a_parents(bundle_dir / "hp.obo.gz")
    direct: dict[str, set[str]] = defaultdict(set)
    with gzip.open(bundle_dir / "genes_to_phenotype.txt.gz", "rt") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            direct[row["ncbi_gene_id"]].add(row["hpo_id"])
    propagated = {}
    for gene, terms in direct.items():
        closure = set().union(*(_naive_ancestors(t, parents) for t in terms))
        under_root = {t for t in closure if t != ROOT and ROOT in _naive_ancestors(t, parents)}
        if under_root:
            propagated[gene] = under_root
    counts: dict[str, int] = defaultdict(int)
    for terms in propagated.values():
        for term in terms:
            counts[term] += 1
    return propagated, counts


def test_counts_match_an_independent_computation(real_store, naive_truth) -> None:
    store, summary, _ = real_store
    propagated, counts = naive_truth
    frequent = {t for t, c in counts.items() if c >= 11}
    assert summary["terms_kept"] == len(frequent) == 4438  # the bundle README's figure too
    assert set(store.label_ids) == frequent
    assert store.n_genes == summary["genes_kept"] == len(propagated) == 3807
    assert sum(1 for c in counts.values() if c >= 301) == summary["terms_per_bin"][">=301"] == 468
    n_genes = dict(zip(store.label_ids, store.attrs["label_vocab"]["n_genes"]))
    assert all(n_genes[t] == counts[t] for t in frequent)


def test_known_propagations(real_store, naive_truth) -> None:
    store, _, _ = real_store
    propagated, _ = naive_truth
    index = {g: i for i, g in enumerate(store.gene_ids())}
    vocab = np.array(store.label_ids)
    # AARS1 (NCBI 16) is annotated with distal muscle weakness, so it carries muscle weakness and the
    # musculature abnormality above it; every gene's stored labels are its naive closure within the vocabulary.
    aars1 = set(vocab[store.gene(index["16"]).labels])
    assert {"HP:0002460", "HP:0001324", "HP:0003011"} <= aars1
    for gene in ["16", "18", "2", "7157", "672"]:
        if gene in index:
            stored = set(vocab[store.gene(index[gene]).labels])
            assert stored == propagated[gene] & set(store.label_ids), gene
    assert ROOT not in set(vocab)


def test_sequences_and_splits(real_store, bundle_dir: Path) -> None:
    store, summary, _ = real_store
    accession = {}
    with open(bundle_dir / "gene_ids.tsv") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            accession[row["gene_id"]] = row["uniprot_accession"]
    fasta = gzip.open(bundle_dir / "proteins.fasta.gz", "rt").read().split(">")[1:]
    sequences = {chunk.split("\n", 1)[0].split()[0]: chunk.split("\n", 1)[1].replace("\n", "") for chunk in fasta}
    for i in [0, 1000, store.n_genes - 1]:
        record = store.gene(i)
        assert record.sequence.decode() == sequences[accession[record.gene_id]]
    assert summary["residues"] == sum(len(sequences[accession[g]]) for g in store.gene_ids())
    per_split = summary["genes_per_split"]
    assert abs(per_split["test"] / store.n_genes - 0.1) < 0.02 and abs(per_split["valid"] / store.n_genes - 0.1) < 0.02
    assert len(store.concept_ids) > 50 and len(store.exclusive_pairs) > 0


def test_ingest_is_byte_identical_when_repeated(real_store, tmp_path: Path) -> None:
    store, _, config = real_store
    again = tmp_path / "again.zarr"
    run_ingest(config.ingest.model_copy(update={"out": again}), show_progress=False)

    def digest(path: Path) -> str:
        h = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(str(file.relative_to(path)).encode() + file.read_bytes())
        return h.hexdigest()

    assert digest(store.path) == digest(again)
