"""Readers on good input: exact records from small fixtures, and exact counts on the real bundle.

Real-bundle counts are computed here by a different, simpler method (whole-file decompression and
string counting) than the readers' streaming parsers.
"""

from __future__ import annotations

import gzip
import random
import shutil
from collections import Counter
from pathlib import Path

import pytest

from gp_distributed.ingest.fasta import read_fasta
from gp_distributed.ingest.go_annotations import GoRecord, read_go_annotations
from gp_distributed.ingest.id_map import IdMap, read_id_map
from gp_distributed.ingest.labels import LabelRecord, read_labels
from gp_distributed.ingest.textfile import iter_lines

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "readers"
BUNDLE = ROOT.parent / "shared" / "data" / "hpo-human-2025"
needs_bundle = pytest.mark.skipif(not BUNDLE.is_dir(), reason=f"real data bundle not found at {BUNDLE}")


def gzipped(source: Path, tmp_path: Path) -> Path:
    """A gzip copy of `source` in tmp_path, named like a downloaded file."""
    target = tmp_path / (source.name + ".gz")
    with source.open("rb") as plain, gzip.open(target, "wb") as packed:
        shutil.copyfileobj(plain, packed)
    return target


# --- FASTA -----------------------------------------------------------------------------------------


def test_protein_fasta_records_ids_and_stop(tmp_path: Path) -> None:
    expected = {
        "P12345": b"MALLHSARVLSGVASAFHPG",  # UniProt accession; trailing '*' removed
        "Q9XYZ1": b"MKVLAA",  # lowercase uppercased, blank line ignored
        "plain_id": b"ACDEFGHIKLMNPQRSTVWYXUOBZ",  # every accepted protein letter
    }
    path = FIXTURES / "proteins.fasta"
    assert read_fasta(path, "protein") == expected
    assert list(read_fasta(gzipped(path, tmp_path), "protein")) == list(expected)  # same order from .gz
    assert read_fasta(gzipped(path, tmp_path), "protein") == expected


def test_dna_fasta_records(tmp_path: Path) -> None:
    expected = {"gene1": b"ACGTNNNNACGTRYSWKMBDHVNU", "gene2": b"NNNNNNNNNN"}
    path = FIXTURES / "genes.fasta"
    assert read_fasta(path, "dna") == expected
    assert read_fasta(gzipped(path, tmp_path), "dna") == expected


def test_fasta_crlf_trailing_blanks_and_no_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "windows.fa"
    path.write_bytes(b">a desc\r\nACGT  \r\nacg\t\r\n\r\n>b\r\nTTTT")
    assert read_fasta(path, "dna") == {"a": b"ACGTACG", "b": b"TTTT"}


def test_fasta_gzip_detected_by_content_and_multi_member(tmp_path: Path) -> None:
    path = tmp_path / "two_members.fa"  # no .gz suffix; bgzip-style concatenated members
    path.write_bytes(gzip.compress(b">a\nAC\n") + gzip.compress(b"GT\n>b\nCC\n"))
    assert read_fasta(path, "dna") == {"a": b"ACGT", "b": b"CC"}


def test_fasta_long_single_line_record_across_reads(tmp_path: Path) -> None:
    sequence = b"ACGT" * 600_000  # 2.4 Mbp on one line: longer than one read
    path = tmp_path / "long.fa.gz"
    path.write_bytes(gzip.compress(b">chr\n" + sequence + b"\n>next\nNN\n", compresslevel=1))
    assert read_fasta(path, "dna") == {"chr": sequence, "next": b"NN"}


def test_fasta_many_blocks_matches_a_naive_parse(tmp_path: Path) -> None:
    rng = random.Random(11)
    expected: dict[str, bytes] = {}
    text = []
    for index in range(3000):  # ~1 MB: many reads, records and lines cut at every kind of place
        sequence = "".join(rng.choices("ACGTNacgtn", k=rng.randrange(1, 700)))
        width = rng.choice([60, 70, 80, 1000])
        lines = [sequence[i : i + width] for i in range(0, len(sequence), width)]
        text.append(f">r{index} note a>b\n" + "\n".join(lines) + "\n" * rng.randrange(1, 3))
        expected[f"r{index}"] = sequence.upper().encode()
    path = tmp_path / "many.fa"
    path.write_text("".join(text))
    assert read_fasta(path, "dna") == expected
    assert read_fasta(gzipped(path, tmp_path), "dna") == expected


@needs_bundle
def test_real_protein_fasta_counts() -> None:
    text = gzip.open(BUNDLE / "proteins.fasta.gz", "rt").read()
    headers = [line[1:].split()[0] for line in text.splitlines() if line.startswith(">")]
    residues = sum(len(line.strip()) for line in text.splitlines() if not line.startswith(">"))
    sequences = read_fasta(BUNDLE / "proteins.fasta.gz", "protein")
    assert text.count("\n>") + text.startswith(">") == len(sequences) == 3807
    assert list(sequences) == headers
    assert sum(map(len, sequences.values())) == residues


# --- id map ----------------------------------------------------------------------------------------


def test_id_map_three_columns_with_header(tmp_path: Path) -> None:
    expected = IdMap(
        gene_to_accession={"16": "P49588", "18": "P80404", "19": "O95477"},
        gene_to_symbol={"16": "AARS1", "18": "ABAT"},  # '-' is no symbol
    )
    assert read_id_map(FIXTURES / "id_map.tsv") == expected
    assert read_id_map(gzipped(FIXTURES / "id_map.tsv", tmp_path)) == expected


def test_id_map_two_columns_without_header() -> None:
    assert read_id_map(FIXTURES / "id_map_two_columns.tsv") == IdMap(
        gene_to_accession={"MGI:87853": "Q8VDD5", "MGI:87854": "P68134"}, gene_to_symbol={}
    )


def test_id_map_symbol_gene_ids_are_not_mistaken_for_a_header(tmp_path: Path) -> None:
    path = tmp_path / "symbols.tsv"
    path.write_text("TTN\tQ8WZ42\nBRCA1\tP38398\nTTN\tQ8WZ42\n")  # identical repeated row allowed
    assert read_id_map(path).gene_to_accession == {"TTN": "Q8WZ42", "BRCA1": "P38398"}


@needs_bundle
def test_real_id_map_counts() -> None:
    rows = [line.split("\t") for line in (BUNDLE / "gene_ids.tsv").read_text().splitlines()[1:]]
    id_map = read_id_map(BUNDLE / "gene_ids.tsv")
    assert id_map.gene_to_accession == {row[0]: row[2] for row in rows}
    assert len(id_map.gene_to_accession) == 3807
    assert id_map.gene_to_symbol == {row[0]: row[1] for row in rows}


# --- labels ----------------------------------------------------------------------------------------


def test_hpo_labels(tmp_path: Path) -> None:
    path = FIXTURES / "genes_to_phenotype.txt"
    for source in (path, gzipped(path, tmp_path)):
        table = read_labels(source, "hpo")
        assert table.records == (
            LabelRecord("16", "HP:0002460", 2),
            LabelRecord("16", "HP:0002451", 3),
            LabelRecord("18", "HP:0001250", 4),
        )
        assert table.gene_to_symbol == {"16": "AARS1", "18": "ABAT"}
        assert table.skipped == Counter()
        assert table.path == source


def test_mgi_labels_all_alleles() -> None:
    table = read_labels(FIXTURES / "MGI_GenePheno.rpt", "mgi")
    assert table.records == (
        LabelRecord("MGI:88354", "MP:0001698", 1),
        LabelRecord("MGI:97490", "MP:0001293", 2),
        LabelRecord("MGI:88057", "MP:0005178", 4),
    )
    assert table.skipped == Counter({"multiple markers": 1})
    assert table.gene_to_symbol == {}


def test_mgi_labels_targeted_only() -> None:
    table = read_labels(FIXTURES / "MGI_GenePheno.rpt", "mgi", mgi_targeted_only=True)
    assert table.records == (LabelRecord("MGI:88354", "MP:0001698", 1), LabelRecord("MGI:88057", "MP:0005178", 4))
    assert table.skipped == Counter({"multiple markers": 1, "not targeted": 1})


def test_impc_labels() -> None:
    table = read_labels(FIXTURES / "impc_genotype_phenotype.csv", "impc")
    assert table.records == (LabelRecord("MGI:1915747", "MP:0001399", 2), LabelRecord("MGI:88057", "MP:0005178", 4))
    assert table.skipped == Counter({"no mp_term_id": 1})
    assert table.gene_to_symbol == {"MGI:1915747": "1110032F04Rik", "MGI:88057": "Apoe"}


def test_tsv_labels_with_and_without_header(tmp_path: Path) -> None:
    table = read_labels(FIXTURES / "labels.tsv", "tsv")
    assert table.records == (LabelRecord("GENE1", "HP:0000001", 2), LabelRecord("GENE2", "MP:0000002", 3))
    bare = tmp_path / "bare.tsv"
    bare.write_text("GENE1\tHP:0000001\n\nGENE2\tMP:0000002\n")
    assert read_labels(bare, "tsv").records == (
        LabelRecord("GENE1", "HP:0000001", 1),
        LabelRecord("GENE2", "MP:0000002", 3),
    )


@needs_bundle
def test_real_hpo_labels_counts() -> None:
    data = gzip.open(BUNDLE / "genes_to_phenotype.txt.gz").read()
    rows = [line.split(b"\t") for line in data.splitlines()[1:]]
    table = read_labels(BUNDLE / "genes_to_phenotype.txt.gz", "hpo")
    assert len(table.records) == data.count(b"\n") - 1 == 241027
    assert len(table.gene_to_symbol) == len({row[0] for row in rows}) == 3807
    assert Counter(record.term_id for record in table.records) == Counter(row[2].decode() for row in rows)
    assert table.records[-1].line == data.count(b"\n")


# --- GO annotations --------------------------------------------------------------------------------


def test_gene2go_default_filters(tmp_path: Path) -> None:
    path = FIXTURES / "gene2go"
    for source in (path, gzipped(path, tmp_path)):
        table = read_go_annotations(source, "gene2go")
        assert table.records == (
            GoRecord("16", "GO:0000049", "IBA", 2),
            GoRecord("16", "GO:0005737", "IDA", 3),
            GoRecord("11287", "GO:0005615", "ISO", 6),
        )
        assert table.skipped == Counter({"evidence IMP": 1, "NOT qualifier": 1, "evidence IGI": 1})


def test_gene2go_taxon_and_no_exclusion() -> None:
    human = read_go_annotations(FIXTURES / "gene2go", "gene2go", taxon=9606, evidence_exclude=())
    assert [record.line for record in human.records] == [2, 3, 4, 7]
    assert human.skipped == Counter({"other taxon": 1, "NOT qualifier": 1})


def test_gaf_records_symbols_and_taxon() -> None:
    table = read_go_annotations(FIXTURES / "annotations.gaf", "gaf")
    assert table.records == (
        GoRecord("P49588", "GO:0000049", "IBA", 3),
        GoRecord("P00507", "GO:0005739", "IDA", 6),
        GoRecord("P80404", "GO:0005739", "IDA", 7),
    )
    assert table.skipped == Counter({"NOT qualifier": 1, "evidence IMP": 1})
    assert table.gene_to_symbol == {"P49588": "AARS1", "P00507": "Got2", "P80404": "ABAT"}
    human = read_go_annotations(FIXTURES / "annotations.gaf", "gaf", taxon=9606)
    assert [record.gene_id for record in human.records] == ["P49588", "P80404"]  # P00507 is rat
    assert human.skipped["other taxon"] == 1


def test_go_tsv_evidence_unknown_never_excluded() -> None:
    table = read_go_annotations(FIXTURES / "go.tsv", "tsv", evidence_exclude=("IMP", "IGI", ""))
    assert table.records == (GoRecord("16", "GO:0000049", "", 2), GoRecord("18", "GO:0007420", "", 3))


@needs_bundle
def test_real_gene2go_counts() -> None:
    rows = [line.split("\t") for line in gzip.open(BUNDLE / "gene2go.gz", "rt").read().splitlines()[1:]]
    evidence = Counter(row[3] for row in rows)
    table = read_go_annotations(BUNDLE / "gene2go.gz", "gene2go", taxon=9606)
    assert len(table.records) == len(rows) - evidence["IMP"] - evidence["IGI"]
    assert table.skipped == Counter({"evidence IMP": evidence["IMP"], "evidence IGI": evidence["IGI"]})
    everything = read_go_annotations(BUNDLE / "gene2go.gz", "gene2go", evidence_exclude=())
    assert len(everything.records) == len(rows) == 107627


# --- shared line reading ---------------------------------------------------------------------------


def test_iter_lines_numbers_every_line_including_blank_ones(tmp_path: Path) -> None:
    path = tmp_path / "text.txt"
    path.write_bytes("a\r\n\nb\u00e9\nc".encode())
    assert list(iter_lines(path)) == [(1, "a"), (2, ""), (3, "b\u00e9"), (4, "c")]
