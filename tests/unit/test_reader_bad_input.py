"""Readers on bad input: each case raises one InputError whose single-line text starts with
`file:line[:column]:` at the exact place, and says what is wrong."""

from __future__ import annotations

import gzip
import random
import zlib
from pathlib import Path

import pytest

from gp_distributed.errors import InputError
from gp_distributed.ingest.fasta import read_fasta
from gp_distributed.ingest.go_annotations import read_go_annotations
from gp_distributed.ingest.id_map import read_id_map
from gp_distributed.ingest.labels import read_labels

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT.parent / "shared" / "data" / "hpo-human-2025"

HPO_HEADER = "ncbi_gene_id\tgene_symbol\thpo_id\thpo_name\tfrequency\tdisease_id\n"
HPO_ROW = "16\tAARS1\t{term}\tname\t-\tOMIM:1\n"
GAF_ROW = "\t".join(["UniProtKB", "P49588", "AARS1", "enables", "{go}", "GO_REF:1", "IBA", "", "F", "name", "AARS1",
                     "protein", "{taxon}", "20220101", "GO", "", "\n"])


def check(error: pytest.ExceptionInfo[InputError], path: Path, line: int | None, column: int | None, *words: str):
    """The message is one line, located exactly at path[:line[:column]], and contains `words`."""
    text = str(error.value)
    assert "\n" not in text
    where = str(path) + "".join(f":{n}" for n in (line, column) if n is not None)
    assert text.startswith(where + ": "), text
    for word in words:
        assert word in text, text


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def truncated_copy(data: bytes, tmp_path: Path) -> tuple[Path, int]:
    """A gzip of `data` cut in half, and the first line its readable part leaves incomplete."""
    packed = gzip.compress(data)
    cut = packed[: len(packed) // 2]
    readable = zlib.decompressobj(wbits=31).decompress(cut)  # what any gzip reader gets out of it
    return write(tmp_path, "cut.gz", cut), readable.count(b"\n") + 1


# --- FASTA -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "line"),
    [("ACGT\n>a\nAC\n", 1), ("\n\nACGT\n>a\nAC\n", 3)],
    ids=["first-line", "after-blank-lines"],
)
def test_fasta_without_header(tmp_path: Path, content: str, line: int) -> None:
    path = write(tmp_path, "headerless.fa", content)
    with pytest.raises(InputError) as error:
        read_fasta(path, "dna")
    check(error, path, line, None, "before the first '>' header")


@pytest.mark.parametrize(
    ("content", "line", "first"),
    [(">a\nAC\n>b\nGG\n>a other\nTT\n", 5, 1), (">sp|P1|X_HUMAN\nAA\n>tr|P1|Y_HUMAN\nAA\n", 3, 1)],
    ids=["plain", "uniprot-accession"],
)
def test_fasta_duplicate_id(tmp_path: Path, content: str, line: int, first: int) -> None:
    path = write(tmp_path, "dup.fa", content)
    with pytest.raises(InputError) as error:
        read_fasta(path, "protein")
    check(error, path, line, None, "duplicate sequence id", f"first at line {first}")


@pytest.mark.parametrize(
    ("alphabet", "content", "line", "column", "shown"),
    [
        ("protein", ">a\nMKVL\nMKV-LA\n", 3, 4, "'-'"),
        ("protein", ">a\nMK*V\n", 2, 3, "'*'"),
        ("protein", ">a\nMK*\nVV\n", 2, 3, "'*'"),  # a stop that does not end the record
        ("protein", ">a\nMKJL\n", 2, 3, "'J'"),
        ("protein", ">a\nMK\n>b\nMK VL\n", 4, 3, "' '"),
        ("protein", ">a x>y\nMK>VL\n", 2, 3, "'>'"),  # '>' only starts a record at a line start
        ("dna", ">a\nACGT\nAC-GT\n", 3, 3, "'-'"),
        ("dna", ">a\nACGTE\n", 2, 5, "'E'"),
        ("dna", ">a\nACGT*\n", 2, 5, "'*'"),  # no stop rule for DNA
        ("dna", ">a\nAC\xe9GT\n", 2, 3, "byte 0xc3"),
    ],
    ids=["gap", "inner-stop", "stop-not-last", "J", "space", "inner-gt", "dna-gap", "dna-E", "dna-stop", "non-ascii"],
)
def test_fasta_invalid_character(tmp_path: Path, alphabet, content: str, line: int, column: int, shown: str) -> None:
    path = write(tmp_path, "bad.fa", content)
    with pytest.raises(InputError) as error:
        read_fasta(path, alphabet)
    check(error, path, line, column, f"invalid {alphabet} character {shown}")


@pytest.mark.parametrize(
    ("content", "line"),
    [(">a\n>b\nAC\n", 1), (">a\nAC\n>b\n", 3), (">a\nAC\n>b\n\n  \n", 3), (">a\n*\n", 1)],
    ids=["first", "last", "blank-lines-only", "stop-only"],
)
def test_fasta_empty_sequence(tmp_path: Path, content: str, line: int) -> None:
    path = write(tmp_path, "empty_record.fa", content)
    with pytest.raises(InputError) as error:
        read_fasta(path, "protein")
    check(error, path, line, None, "is empty")


@pytest.mark.parametrize("content", [b"", b"\n\n", gzip.compress(b"")], ids=["empty", "blank", "empty-gzip"])
def test_fasta_empty_file(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path, "empty.fa.gz", content)
    with pytest.raises(InputError) as error:
        read_fasta(path, "dna")
    check(error, path, None, None, "no FASTA records")


@pytest.mark.parametrize(
    ("content", "line"), [(">\nAC\n", 1), (">a\nAC\n>  \t\nAC\n", 3), (">sp||X_HUMAN\nAC\n", 1)]
)
def test_fasta_empty_id(tmp_path: Path, content: str, line: int) -> None:
    path = write(tmp_path, "noid.fa", content)
    with pytest.raises(InputError) as error:
        read_fasta(path, "protein")
    check(error, path, line, None, "empty sequence id")


@pytest.mark.skipif(not BUNDLE.is_dir(), reason=f"real data bundle not found at {BUNDLE}")
def test_fasta_truncated_real_gzip(tmp_path: Path) -> None:
    packed = (BUNDLE / "proteins.fasta.gz").read_bytes()
    path = write(tmp_path, "proteins.fasta.gz", packed[: len(packed) // 2])
    line = zlib.decompressobj(wbits=31).decompress(packed[: len(packed) // 2]).count(b"\n") + 1
    with pytest.raises(InputError) as error:
        read_fasta(path, "protein")
    check(error, path, line, None, "truncated")


def test_fasta_truncated_gzip(tmp_path: Path) -> None:
    rng = random.Random(7)
    records = (f">s{i}\n" + "".join(rng.choices("ACGT", k=300)) + "\n" for i in range(400))
    path, line = truncated_copy("".join(records).encode(), tmp_path)
    with pytest.raises(InputError) as error:
        read_fasta(path, "dna")
    check(error, path, line, None, "truncated")


def test_corrupt_gzip_and_missing_file(tmp_path: Path) -> None:
    packed = bytearray(gzip.compress(b"".join(b">s%d\nACGT\n" % i for i in range(50))))
    packed[-6] ^= 0xFF  # corrupt the CRC
    path = write(tmp_path, "corrupt.fa.gz", bytes(packed))
    with pytest.raises(InputError) as error:
        read_fasta(path, "dna")
    check(error, path, 101, None, "corrupt gzip")  # the CRC is checked after the last line
    with pytest.raises(InputError) as error:
        read_fasta(tmp_path / "missing.fa", "dna")
    check(error, tmp_path / "missing.fa", None, None, "cannot read")


# --- id map ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "line", "words"),
    [
        ("16\tP1\n18\tP2\n16\tP3\n", 3, ("gene '16' maps to 'P3'", "'P1' at line 1")),
        ("gene_id\taccession\n16\tP1\n18\tP1\n", 3, ("accession 'P1' is claimed by gene '18'", "'16' at line 2")),
        ("16\tA\tP1\n16\tB\tP1\n", 2, ("symbol 'B'", "'A' at line 1")),
    ],
    ids=["gene-two-accessions", "accession-two-genes", "gene-two-symbols"],
)
def test_id_map_conflicts(tmp_path: Path, content: str, line: int, words: tuple[str, ...]) -> None:
    path = write(tmp_path, "ids.tsv", content)
    with pytest.raises(InputError) as error:
        read_id_map(path)
    check(error, path, line, None, *words)


@pytest.mark.parametrize(
    ("content", "line"),
    [("16\tAARS1\tP1\n18\tP2\n", 2), ("16\tA\tB\tP1\n", 1), ("16\n", 1), ("16\tP1\n\n18\tP2\textra\n", 3)],
)
def test_id_map_wrong_column_count(tmp_path: Path, content: str, line: int) -> None:
    path = write(tmp_path, "ids.tsv", content)
    with pytest.raises(InputError) as error:
        read_id_map(path)
    check(error, path, line, None, "columns")


def test_id_map_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "ids.tsv", "\n")
    with pytest.raises(InputError) as error:
        read_id_map(path)
    check(error, path, None, None, "empty file")


# --- labels ----------------------------------------------------------------------------------------

MGI_ROW = "A<tm1>/A<tm1>\tA<tm1>\tMGI:1\tB6\t{term}\t1\tMGI:88354\tMGI:2\n"
IMPC_HEADER = "marker_accession_id,marker_symbol,mp_term_id\n"


@pytest.mark.parametrize(
    ("fmt", "content", "line", "term"),
    [
        ("hpo", HPO_HEADER + HPO_ROW.format(term="HP:0002460") + HPO_ROW.format(term="HP0002451"), 3, "HP0002451"),
        ("mgi", MGI_ROW.format(term="MP:0001698") + MGI_ROW.format(term="MP_0001"), 2, "MP_0001"),
        ("impc", IMPC_HEADER + "MGI:1,A,MP:1\nMGI:2,B,MP:x1\n", 3, "MP:x1"),
        ("tsv", "gene\tterm\nG1\tHP:1\nG2\tHP:12a\n", 3, "HP:12a"),
        ("tsv", "G1\tHP:1\n\nG2\thp\n", 3, "hp"),
    ],
    ids=["hpo", "mgi", "impc", "tsv-header", "tsv-bare"],
)
def test_labels_malformed_term_id(tmp_path: Path, fmt, content: str, line: int, term: str) -> None:
    path = write(tmp_path, "labels.txt", content)
    with pytest.raises(InputError) as error:
        read_labels(path, fmt)
    check(error, path, line, None, f"term id {term!r}", "PREFIX:digits")


@pytest.mark.parametrize(
    ("fmt", "content", "line"),
    [
        ("hpo", HPO_HEADER + "16\tAARS1\tHP:0002460\tx\t-\tOMIM:1\n16\tAARS1\tHP:0002451\tx\t-\n", 3),
        ("hpo", HPO_HEADER + "16\tAARS1\tHP:0002460\tx\t-\tOMIM:1\textra\n", 2),
        ("mgi", MGI_ROW.format(term="MP:1") + "a\tb\tc\td\tMP:2\tf\tMGI:3\n", 2),
        ("mgi", MGI_ROW.format(term="MP:1").replace("\n", "\tjunk\n"), 1),
        ("impc", IMPC_HEADER + "\nMGI:1,A,MP:1\nMGI:2,B\n", 4),
        ("tsv", "G1\tHP:1\nG2\tHP:2\tHP:3\n", 2),
    ],
    ids=["hpo-short", "hpo-long", "mgi-short", "mgi-long", "impc", "tsv"],
)
def test_labels_wrong_column_count(tmp_path: Path, fmt, content: str, line: int) -> None:
    path = write(tmp_path, "labels.txt", content)
    with pytest.raises(InputError) as error:
        read_labels(path, fmt)
    check(error, path, line, None, "columns")


def test_labels_missing_header_empty_gene_and_bad_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "g2p.txt", "16\tAARS1\tHP:0002460\tx\t-\tOMIM:1\n")
    with pytest.raises(InputError) as error:
        read_labels(path, "hpo")
    check(error, path, 1, None, "missing column(s) ncbi_gene_id")
    path = write(tmp_path, "g2p2.txt", HPO_HEADER + "\tAARS1\tHP:0002460\tx\t-\tOMIM:1\n")
    with pytest.raises(InputError) as error:
        read_labels(path, "hpo")
    check(error, path, 2, None, "empty gene id")
    path = write(tmp_path, "impc.csv", IMPC_HEADER + 'MGI:1,"A"x,MP:1\n')
    with pytest.raises(InputError) as error:
        read_labels(path, "impc")
    check(error, path, 2, None, "malformed CSV")


def test_labels_truncated_gzip_and_non_utf8(tmp_path: Path) -> None:
    rng = random.Random(3)
    rows = (f"{rng.randrange(10**6)}\tS\tHP:{rng.randrange(10**7):07d}\tname\t-\tOMIM:1\n" for _ in range(20000))
    path, line = truncated_copy((HPO_HEADER + "".join(rows)).encode(), tmp_path)
    with pytest.raises(InputError) as error:
        read_labels(path, "hpo")
    check(error, path, line, None, "truncated")
    path = write(tmp_path, "latin1.tsv", b"G1\tHP:1\nG\xe92\tHP:2\n")
    with pytest.raises(InputError) as error:
        read_labels(path, "tsv")
    check(error, path, 2, 2, "not UTF-8")


def test_labels_all_rows_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, "impc.csv", IMPC_HEADER + "MGI:1,A,\n")
    with pytest.raises(InputError) as error:
        read_labels(path, "impc")
    check(error, path, None, None, "no label rows", "1 no mp_term_id skipped")


# --- GO annotations --------------------------------------------------------------------------------

GENE2GO_HEADER = "#tax_id\tGeneID\tGO_ID\tEvidence\tQualifier\tGO_term\tPubMed\tCategory\n"


@pytest.mark.parametrize(
    ("fmt", "content", "line", "words"),
    [
        ("gene2go", GENE2GO_HEADER + "9606\t16\tGO:0000049\tIBA\t-\tt\t-\tF\n9606\t16\t0005737\tIDA\t-\tt\t-\tC\n", 3,
         ("GO id '0005737'",)),
        ("gaf", "!gaf-version: 2.2\n" + GAF_ROW.format(go="GO:abc", taxon="taxon:9606"), 2, ("GO id 'GO:abc'",)),
        ("tsv", "16\tGO:0000049\n18\tHP:0000118\n", 2, ("GO id 'HP:0000118'",)),
        ("gene2go", GENE2GO_HEADER + "9606\t16\tGO:0000049\tIBA\t-\tt\t-\n", 2, ("columns", "found 7")),
        ("gaf", "!c\n!c\n" + GAF_ROW.format(go="GO:1", taxon="taxon:9606") + "UniProtKB\tP1\tX\n", 4, ("found 3",)),
        ("tsv", "gene\tgo\n16\tGO:0000049\tIDA\n", 2, ("columns",)),
    ],
    ids=["gene2go-id", "gaf-id", "tsv-id", "gene2go-columns", "gaf-columns", "tsv-columns"],
)
def test_go_bad_rows(tmp_path: Path, fmt, content: str, line: int, words: tuple[str, ...]) -> None:
    path = write(tmp_path, "go.txt", content)
    with pytest.raises(InputError) as error:
        read_go_annotations(path, fmt)
    check(error, path, line, None, *words)


def test_gaf_malformed_taxon_when_filtering(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.gaf", GAF_ROW.format(go="GO:1", taxon="9606"))
    with pytest.raises(InputError) as error:
        read_go_annotations(path, "gaf", taxon=9606)
    check(error, path, 1, None, "taxon:N")
