"""The synthetic generator: byte-determinism, real file layouts, planted ontology structure and truth."""

from __future__ import annotations

import csv
import importlib.util
import re
from collections import defaultdict
from pathlib import Path

import fastobo
import pytest

from gp_distributed.synthetic.generator import (
    DRIVER_TERMS,
    SyntheticDataset,
    make_synthetic,
)
from gp_distributed.synthetic.ontologies import (
    GO_ROOTS,
    MP_ALT_ID,
    MP_OBSOLETE,
    MP_OPPOSITE_PAIRS,
    MP_ROOT,
)

N_GENES = 150
SEED = 5
TOOL = Path(__file__).resolve().parents[2] / "tools" / "make_synthetic.py"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    return make_synthetic(tmp_path_factory.mktemp("synthetic"), N_GENES, SEED)


def _files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def _tsv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


def _fasta(path: Path) -> dict[str, str]:
    records: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(">"):
            current = records.setdefault(line[1:].split()[0], [])
        else:
            assert len(line) <= 60
            current.append(line)
    return {record_id: "".join(lines) for record_id, lines in records.items()}


def _obo_terms(path: Path) -> dict[str, dict[str, list[str]]]:
    """Term id -> tag -> raw values, parsed by fastobo (which also validates the syntax)."""
    terms: dict[str, dict[str, list[str]]] = {}
    for frame in fastobo.load(str(path)):
        if isinstance(frame, fastobo.term.TermFrame):
            clauses: dict[str, list[str]] = defaultdict(list)
            for clause in frame:
                clauses[clause.raw_tag()].append(clause.raw_value())
            terms[str(frame.id)] = clauses
    return terms


def _depths(parents: dict[str, list[str]]) -> dict[str, int]:
    depth: dict[str, int] = {}

    def visit(term: str) -> int:
        if term not in depth:
            depth[term] = 1 + min(visit(p) for p in parents[term]) if parents[term] else 0
        return depth[term]

    return {term: visit(term) for term in parents}


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path, dataset: SyntheticDataset) -> None:
    again = make_synthetic(tmp_path / "again", N_GENES, SEED)
    other = make_synthetic(tmp_path / "other", N_GENES, SEED + 1)
    assert _files(again.out_dir) == _files(dataset.out_dir)
    assert _files(other.out_dir)["synthetic_genes.fasta"] != _files(dataset.out_dir)["synthetic_genes.fasta"]
    assert sorted(_files(dataset.out_dir)) == sorted(
        ["README.md", "synthetic_genes.fasta", "synthetic_MGI_GenePheno.rpt", "synthetic_go_annotations.gaf",
         "synthetic_mp.obo", "synthetic_go.obo", "synthetic_id_map.tsv", "synthetic_truth.tsv"]
    )  # fmt: skip


def test_label_file_has_the_mgi_genepheno_layout(dataset: SyntheticDataset) -> None:
    rows = _tsv(dataset.labels)
    assert rows and all(len(row) == 8 for row in rows)
    assert not rows[0][0].startswith("Allelic")  # no header, like MGI's report
    mgi_id = re.compile(r"^MGI:\d+$")
    allele = re.compile(r"^Syn\d+<(tm[12]Syn|Gt\(OST\d+\)Lex)>$")
    for composition, symbols, allele_ids, _background, term, pubmed, marker, genotype in rows:
        assert all(allele.match(symbol) for symbol in symbols.split("|"))
        assert len(allele_ids.split("|")) == len(symbols.split("|"))
        assert all(mgi_id.match(value) for value in (*allele_ids.split("|"), marker, genotype))
        assert re.match(r"^MP:\d{7}$", term) and (pubmed == "" or pubmed.isdigit())
        assert composition.split("/")[0] in symbols.split("|")
    assert any("<Gt(" in row[1] for row in rows) and any("<tm1Syn>" in row[1] for row in rows)


def test_labels_reproduce_the_planted_truth_and_targeted_filter_drops_only_trap_genes(
    dataset: SyntheticDataset,
) -> None:
    alt_to_primary = {MP_ALT_ID[1]: MP_ALT_ID[0]}
    all_terms: dict[str, set[str]] = defaultdict(set)
    targeted_terms: dict[str, set[str]] = defaultdict(set)
    for row in _tsv(dataset.labels):
        term = alt_to_primary.get(row[4], row[4])
        all_terms[row[6]].add(term)
        if all("<tm" in symbol for symbol in row[1].split("|")):
            targeted_terms[row[6]].add(term)
    assert {gene: tuple(sorted(terms)) for gene, terms in all_terms.items()} == {
        gene: tuple(sorted(terms)) for gene, terms in dataset.phenotypes.items()
    }
    assert 0 < len(dataset.gene_trap_only) < N_GENES // 5
    assert set(targeted_terms) == set(dataset.gene_ids) - dataset.gene_trap_only
    assert all(targeted_terms[gene] == set(dataset.phenotypes[gene]) for gene in targeted_terms)
    assert any(row[4] == MP_ALT_ID[1] for row in _tsv(dataset.labels))


def test_label_genes_exist_in_id_map_and_fasta_with_planted_motifs(dataset: SyntheticDataset) -> None:
    id_rows = _tsv(dataset.id_map)
    assert id_rows[0] == ["gene_id", "symbol", "fasta_id"]
    id_map = {gene_id: fasta_id for gene_id, _symbol, fasta_id in id_rows[1:]}
    assert len(id_map) == len(id_rows) - 1 == N_GENES
    sequences = _fasta(dataset.fasta)
    label_genes = {row[6] for row in _tsv(dataset.labels)}
    assert label_genes == set(dataset.gene_ids)
    assert all(id_map[gene] in sequences and id_map[gene] != gene for gene in label_genes)
    for gene in dataset.gene_ids:
        sequence = sequences[id_map[gene]]
        assert sequence == dataset.sequences[gene]
        assert 200 <= len(sequence) <= 5000 and set(sequence) <= set("ACGTacgtNRYSWKMBDHV")
        present = {term for term, motif in dataset.motifs.items() if motif in sequence.upper()}
        assert present == set(dataset.phenotypes[gene])  # motif present iff term planted
    joined = "".join(sequences.values())
    assert re.search("[acgt]", joined) and "N" in joined and re.search("[RYSWKMBDHV]", joined)


def test_opposite_terms_are_never_planted_together(dataset: SyntheticDataset) -> None:
    for terms in dataset.phenotypes.values():
        assert 1 <= len(terms) <= 6 and set(terms) <= set(DRIVER_TERMS)
        assert not any(a in terms and b in terms for a, b in MP_OPPOSITE_PAIRS)


def test_gaf_is_version_2_2_with_not_and_imp_rows_matching_the_truth(dataset: SyntheticDataset) -> None:
    lines = dataset.gaf.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "!gaf-version: 2.2"
    rows = [line.split("\t") for line in lines if not line.startswith("!")]
    assert all(len(row) == 17 for row in rows)
    relation = {"P": {"involved_in"}, "F": {"enables"}, "C": {"located_in", "part_of"}}
    by_gene: dict[str, list[tuple[str, str, bool]]] = defaultdict(list)
    for row in rows:
        assert row[0] == "MGI" and row[12] == "taxon:10090" and re.match(r"^\d{8}$", row[13])
        assert row[3].removeprefix("NOT|") in relation[row[8]]
        by_gene[row[1]].append((row[4], row[6], row[3].startswith("NOT|")))
    truth = {gene: [(a.go_id, a.evidence, a.negated) for a in anns] for gene, anns in dataset.go_annotations.items()}
    assert dict(by_gene) == truth
    assert any(negated for anns in truth.values() for _, _, negated in anns)
    assert any(evidence == "IMP" for anns in truth.values() for _, evidence, _ in anns)


def test_go_annotations_follow_the_planted_phenotypes(dataset: SyntheticDataset) -> None:
    linked = sum(
        any(a.go_id == dataset.go_links[term] and not a.negated for a in dataset.go_annotations[gene])
        for gene, terms in dataset.phenotypes.items()
        for term in terms
    )
    n_planted = sum(len(terms) for terms in dataset.phenotypes.values())
    assert linked / n_planted > 0.7  # each planted term adds its linked GO term with probability 0.8


def test_mp_obo_has_the_planted_tree(dataset: SyntheticDataset) -> None:
    terms = _obo_terms(dataset.mp_obo)
    live = {term: clauses for term, clauses in terms.items() if "is_obsolete" not in clauses}
    assert len(live) == 42 and MP_ROOT in live and not live[MP_ROOT].get("is_a")
    depth = _depths({term: clauses.get("is_a", []) for term, clauses in live.items()})
    assert max(depth.values()) == 4 and sorted(t for t, d in depth.items() if d == 1) == [
        "MP:9900100", "MP:9900200", "MP:9900300", "MP:9900400"
    ]  # fmt: skip
    assert set(DRIVER_TERMS) == {term for term, d in depth.items() if d >= 2}
    assert live[MP_ALT_ID[0]]["alt_id"] == [MP_ALT_ID[1]]
    obsolete_id, _name, replaced_by = MP_OBSOLETE
    assert terms[obsolete_id]["is_obsolete"] == ["true"] and terms[obsolete_id]["replaced_by"] == [replaced_by]
    opposite_words = [("increased", "decreased"), ("hyper", "hypo"), ("macro", "micro"), ("elevated", "reduced"),
                      ("high", "low")]  # fmt: skip
    for a, b in MP_OPPOSITE_PAIRS:
        assert live[a]["is_a"] == live[b]["is_a"]  # siblings
        name_a, name_b = live[a]["name"][0], live[b]["name"][0]
        assert any(name_a.replace(x, y, 1) == name_b for x, y in opposite_words)


def test_go_obo_has_three_namespaces_depth_three_and_part_of(dataset: SyntheticDataset) -> None:
    terms = _obo_terms(dataset.go_obo)
    for root, namespace in GO_ROOTS.items():
        assert terms[root]["namespace"] == [namespace] and not terms[root].get("is_a")
    parents = {
        term: clauses.get("is_a", []) + [v.split()[1] for v in clauses.get("relationship", []) if "part_of" in v]
        for term, clauses in terms.items()
    }
    depth = _depths(parents)
    for namespace in GO_ROOTS.values():
        assert max(d for t, d in depth.items() if terms[t]["namespace"] == [namespace]) >= 3
    assert sum(len(clauses.get("relationship", [])) for clauses in terms.values()) >= 3


def test_readme_says_synthetic_and_documents_the_rule(dataset: SyntheticDataset) -> None:
    text = dataset.readme.read_text(encoding="utf-8")
    assert text.startswith("# SYNTHETIC dataset")
    assert "Generative rule" in text and "motif" in text
    assert f"--genes {N_GENES} --seed {SEED}" in text


def test_bad_gene_count_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_genes"):
        make_synthetic(tmp_path, 0, SEED)


def test_tool_main_writes_the_same_files(tmp_path: Path, dataset: SyntheticDataset) -> None:
    spec = importlib.util.spec_from_file_location("make_synthetic_tool", TOOL)
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main(["--out", str(tmp_path / "cli"), "--genes", str(N_GENES), "--seed", str(SEED)]) == 0
    assert _files(tmp_path / "cli") == _files(dataset.out_dir)
