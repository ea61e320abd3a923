"""`gp ingest` end to end on the synthetic DNA / MGI / GAF dataset, and its behaviour on bad input:
one line on stderr naming the file (and line), a non-zero exit, nothing left at --out."""

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from gp_distributed.cli import main
from gp_distributed.data.store import open_store
from gp_distributed.synthetic.generator import SyntheticDataset, make_synthetic
from gp_distributed.synthetic.ontologies import MP_ROOT, MP_TERMS


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    return make_synthetic(tmp_path_factory.mktemp("synthetic"), n_genes=120, seed=3)


def _args(data: SyntheticDataset, out: Path, **replace: Path) -> list[str]:
    files = {"fasta": data.fasta, "id-map": data.id_map, "labels": data.labels, "ontology": data.mp_obo,
             "go": data.gaf, "go-ontology": data.go_obo, **{k.replace("_", "-"): v for k, v in replace.items()}}
    args = ["ingest", "--quiet", "--alphabet", "dna", "--labels-format", "mgi", "--go-format", "gaf",
            "--min-genes", "3", "--out", str(out), "ingest.min_concept_genes=2", "ingest.genes_per_shard=16"]
    for flag, path in files.items():
        args += [f"--{flag}", str(path)]
    return args


def test_synthetic_ingest_propagates_planted_labels(synthetic: SyntheticDataset, tmp_path: Path, capsys) -> None:
    out = tmp_path / "syn.zarr"
    assert main(_args(synthetic, out)) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "genes kept: " in printed
    store = open_store(out)
    assert store.alphabet == "dna"
    vocab = np.array(store.label_ids)
    parents = {term: p for term, _, p in MP_TERMS}

    def closure(term: str) -> set[str]:
        found = {term}
        for parent in parents[term]:
            found |= closure(parent)
        return found

    for record in store.read_block(0, store.n_genes):
        expected = set().union(*(closure(t) for t in synthetic.phenotypes[record.gene_id])) - {MP_ROOT}
        assert set(vocab[record.labels]) == expected & set(vocab)
        assert record.sequence == synthetic.sequences[record.gene_id].upper().encode()
    assert len(store.exclusive_pairs) > 0  # increased/decreased siblings of the synthetic MP


def test_targeted_only_drops_gene_trap_only_genes(synthetic: SyntheticDataset, tmp_path: Path) -> None:
    assert main(_args(synthetic, tmp_path / "all.zarr")) == 0
    assert main(_args(synthetic, tmp_path / "tm.zarr") + ["ingest.mgi_targeted_only=true"]) == 0
    kept_all = set(open_store(tmp_path / "all.zarr").gene_ids())
    kept_tm = set(open_store(tmp_path / "tm.zarr").gene_ids())
    assert kept_all - kept_tm == set(synthetic.gene_trap_only) & kept_all
    assert synthetic.gene_trap_only


def test_strict_turns_skips_into_errors(synthetic: SyntheticDataset, tmp_path: Path, capsys) -> None:
    # The GAF carries IMP/IGI evidence and NOT rows: reported as skips, or errors under --strict?
    # Evidence filtering is configuration, not bad input; a gene in the id map whose sequence is missing is a skip.
    fasta = tmp_path / "fewer.fasta"
    text = synthetic.fasta.read_text()
    first_record_end = text.index(">", 1)
    fasta.write_text(text[first_record_end:])
    out = tmp_path / "s.zarr"
    assert main(_args(synthetic, out, fasta=fasta)) == 0
    assert "id map accession not in FASTA: 1" in capsys.readouterr().out
    shutil.rmtree(out)
    assert main(_args(synthetic, out, fasta=fasta) + ["--strict"]) == 2
    assert "strict" in capsys.readouterr().err
    assert not out.exists()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BAD_CASES = {
    # name: (file role, builder(tmp, data) -> path, expected fragment, expected line or None)
    "headerless fasta": ("fasta", lambda t, d: _write(t / "x.fasta", "ACGT\n>a\nACGT\n"), "x.fasta:1", 1),
    "duplicate fasta id": ("fasta", lambda t, d: _write(t / "x.fasta", ">a\nACGT\n>a\nACGT\n"), "x.fasta:3", 3),
    "invalid character": ("fasta", lambda t, d: _write(t / "x.fasta", ">a\nACGT\nAC!T\n"), "x.fasta:3", 3),
    "empty sequence": ("fasta", lambda t, d: _write(t / "x.fasta", ">a\n>b\nACGT\n"), "x.fasta:1", 1),
    "empty file": ("fasta", lambda t, d: _write(t / "x.fasta", ""), "x.fasta", None),
    "truncated gzip": ("fasta", lambda t, d: _truncated_gzip(t, d.fasta), "x.fasta.gz", None),
    "obo cycle": ("ontology", lambda t, d: _write(t / "x.obo", "format-version: 1.2\n\n[Term]\nid: MP:0000001\nname: r\nis_a: MP:0000003\n\n[Term]\nid: MP:0000003\nname: c\nis_a: MP:0000001\n"), "x.obo", None),
    "obo dangling parent": ("ontology", lambda t, d: _write(t / "x.obo", "format-version: 1.2\n\n[Term]\nid: MP:0000001\nname: r\n\n[Term]\nid: MP:0000003\nname: c\nis_a: MP:0000009\n"), "x.obo:10", 10),
    "label with unknown term": ("labels", lambda t, d: _replace_line(t, d.labels, 2, "MP:", "MP:77"), "x.rpt:2", 2),
    "label with unknown gene": ("labels", lambda t, d: _replace_line(t, d.labels, 3, "MGI:", "MGI:55"), "x.rpt:3", 3),
    "conflicting id map": ("id_map", lambda t, d: _conflicting_id_map(t, d.id_map), "x.tsv", None),
}


def _truncated_gzip(tmp: Path, source: Path) -> Path:
    data = gzip.compress(source.read_bytes())
    path = tmp / "x.fasta.gz"
    path.write_bytes(data[: len(data) // 2])
    return path


def _replace_line(tmp: Path, source: Path, line: int, old: str, new: str) -> Path:
    lines = source.read_text().splitlines(keepends=True)
    lines[line - 1] = lines[line - 1].replace(old, new)
    return _write(tmp / "x.rpt", "".join(lines))


def _conflicting_id_map(tmp: Path, source: Path) -> Path:
    lines = source.read_text().splitlines(keepends=True)
    gene = lines[-1].split("\t")[0]
    return _write(tmp / "x.tsv", "".join(lines) + f"{gene}\tSYM\tOTHERSEQ\n")


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_fails_in_one_line_and_leaves_nothing(case: str, synthetic: SyntheticDataset, tmp_path: Path, capsys) -> None:
    role, build, fragment, line = BAD_CASES[case]
    bad = build(tmp_path, synthetic)
    out = tmp_path / "out.zarr"
    assert main(_args(synthetic, out, **{role: bad})) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("gp ingest: error: ") and fragment in err, err
    if line is not None:
        assert f"{bad.name}:{line}" in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.zarr")] == []


def test_existing_output_is_refused(synthetic: SyntheticDataset, tmp_path: Path, capsys) -> None:
    out = tmp_path / "s.zarr"
    out.mkdir()
    assert main(_args(synthetic, out)) == 2
    assert "already exists" in capsys.readouterr().err


def test_missing_required_input_names_the_flag(tmp_path: Path, capsys) -> None:
    assert main(["ingest", "--quiet", "--out", str(tmp_path / "s.zarr")]) == 2
    assert "ingest.fasta: required (flag --fasta)" in capsys.readouterr().err
