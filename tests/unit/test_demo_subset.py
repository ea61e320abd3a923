"""The committed demo subset (data/demo) and the tool that builds it from the hpo-human-2025 bundle."""

from __future__ import annotations

import gzip
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from gp_distributed.errors import InputError

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "data" / "demo"
BUNDLE = REPO.parent / "shared" / "data" / "hpo-human-2025"
DEMO_FILES = ["README.md", "gene2go.gz", "gene_ids.tsv", "genes_to_phenotype.txt.gz", "go-basic.obo.gz",
              "hp.obo.gz", "hpo_opposite_pairs.tsv", "proteins.fasta.gz"]  # fmt: skip


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_demo_subset_tool", REPO / "tools" / "build_demo_subset.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _rows(path: Path) -> list[list[str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [line.rstrip("\n").split("\t") for line in handle]


def _fasta_ids(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [line[1:].split()[0] for line in handle if line.startswith(">")]


def test_demo_has_the_bundle_files_and_stays_small() -> None:
    assert sorted(path.name for path in DEMO.iterdir()) == DEMO_FILES
    assert sum(path.stat().st_size for path in DEMO.iterdir()) < 5_000_000


def test_demo_has_300_to_600_genes_each_with_labels_sequence_and_id() -> None:
    accessions = _fasta_ids(DEMO / "proteins.fasta.gz")
    assert 300 <= len(accessions) <= 600 and len(set(accessions)) == len(accessions)
    id_rows = _rows(DEMO / "gene_ids.tsv")
    assert id_rows[0] == ["gene_id", "symbol", "uniprot_accession"]
    accession_of = {gene_id: accession for gene_id, _symbol, accession in id_rows[1:]}
    assert sorted(accession_of.values()) == sorted(accessions)
    label_rows = _rows(DEMO / "genes_to_phenotype.txt.gz")
    assert label_rows[0][:3] == ["ncbi_gene_id", "gene_symbol", "hpo_id"]
    label_genes = {row[0] for row in label_rows[1:]}
    assert label_genes == set(accession_of)  # every label gene is mapped, every mapped gene has labels
    go_genes = {row[1] for row in _rows(DEMO / "gene2go.gz")[1:]}
    assert go_genes <= set(accession_of) and len(go_genes) > 0.9 * len(accession_of)


def test_demo_readme_carries_the_licence_note() -> None:
    text = (DEMO / "README.md").read_text(encoding="utf-8")
    assert "## Provenance and licences" in text
    assert "UniProtKB/Swiss-Prot (CC BY 4.0)" in text
    assert "A project that ships a subset of these files must keep this attribution with them." in text
    assert "tools/build_demo_subset.py --bundle ../shared/data/hpo-human-2025 --out data/demo" in text


@pytest.mark.skipif(not BUNDLE.is_dir(), reason=f"hpo-human-2025 bundle not found at {BUNDLE}")
def test_rebuilding_from_the_bundle_gives_identical_bytes(tmp_path: Path) -> None:
    n_genes = len(_rows(DEMO / "gene_ids.tsv")) - 1
    assert _tool().main(["--bundle", str(BUNDLE), "--out", str(tmp_path), "--genes", str(n_genes), "--seed", "0"]) == 0
    for name in DEMO_FILES:
        assert (tmp_path / name).read_bytes() == (DEMO / name).read_bytes(), name
    section = (BUNDLE / "README.md").read_text(encoding="utf-8").split("## Provenance and licences", 1)[1]
    assert section in (DEMO / "README.md").read_text(encoding="utf-8")


def test_choose_genes_is_deterministic_and_seeded() -> None:
    tool = _tool()
    genes = [str(gene_id) for gene_id in range(1000)]
    chosen = tool.choose_genes(genes, 100, seed=0)
    assert len(chosen) == 100 and chosen == tool.choose_genes(reversed(genes), 100, seed=0)
    assert chosen != tool.choose_genes(genes, 100, seed=1)
    with pytest.raises(ValueError, match="n_genes"):
        tool.choose_genes(genes, 1001, seed=0)


def test_malformed_gene_ids_raise_input_error_with_line(tmp_path: Path) -> None:
    path = tmp_path / "gene_ids.tsv"
    path.write_text("gene_id\tsymbol\tuniprot_accession\n16\tAARS1\tP49588\n18\tABAT\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        _tool().read_gene_ids(path)
    assert str(caught.value) == f"{path}:3: expected 3 non-empty tab-separated fields, got 2"


def test_missing_bundle_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _tool().main(["--bundle", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope' / 'gene_ids.tsv'}: bundle file not found\n"
