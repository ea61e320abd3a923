"""Property-based tests (hypothesis) of every input parser and of the tokenizers.

Two kinds of property: (1) any bytes a user may hand us -- random, near-valid, gzip, truncated gzip --
either parse or raise `InputError` located at the file (anything else escaping is a bug, see errors.py);
(2) well-formed input generated with random layout (line wrapping, blank lines, CRLF, column order,
comments, gzip members cut mid-line) reads back exactly what was written, by the documented rules.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import itertools
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gp_distributed.data.tokenize import (
    PROTEIN_VOCAB,
    build_tokenizer,
    dna_vocab,
    encode_windows,
    residue_table_for,
)
from gp_distributed.errors import InputError
from gp_distributed.ingest.fasta import read_fasta
from gp_distributed.ingest.go_annotations import read_go_annotations
from gp_distributed.ingest.id_map import read_id_map
from gp_distributed.ingest.labels import read_labels
from gp_distributed.ontology.obo import GO_NAMESPACE_ROOTS, load_ontology

FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MORE = settings(FEW, max_examples=60)
LETTERS = {"dna": "ACGTURYSWKMBDHVN", "protein": "ACDEFGHIKLMNPQRSTVWYXUOBZ"}  # fasta.py's documented alphabets
ID_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "|")  # printable ASCII, no blank
# (UTF-8 byte order mark first?, gzip members cut at fractions of the length, None: plain), see `pack`;
# or a gzip stream with `cut` bytes missing at its end, see `damaged`
packings = st.tuples(st.booleans(), st.none() | st.lists(st.floats(0, 1), max_size=3))
damage = st.one_of(st.none(), st.just(0), st.integers(1, 40))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("properties")


def pack(data: bytes, packing: tuple[bool, list[float] | None]) -> bytes:
    """`data`, after a byte order mark if asked (Windows editors write one), plain (cuts None) or as
    concatenated gzip members split at fractions `cuts` of its length (bgzip-like, cut mid-line)."""
    bom, cuts = packing
    data = b"\xef\xbb\xbf" * bom + data
    if cuts is None:
        return data
    points = sorted({0, len(data), *(int(cut * len(data)) for cut in cuts)})
    return b"".join(gzip.compress(data[a:b], mtime=0) for a, b in itertools.pairwise(points)) or gzip.compress(b"")


def damaged(data: bytes, cut: int | None) -> bytes:
    """`data` plain (None), gzip whole (0) or gzip missing its last `cut` bytes (truncated download)."""
    return data if cut is None else gzip.compress(data, mtime=0)[: -cut or None]


def write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def lines_from(alphabet: str) -> st.SearchStrategy[bytes]:
    """Near-valid files: lines over a format's own characters, or any bytes."""
    lines = st.lists(st.text(alphabet, max_size=40), max_size=12).map("\n".join).map(str.encode)
    return lines | st.binary(max_size=200)


def only_input_error(read: Callable[[Path], object], path: Path) -> None:
    """Call `read(path)`: success is fine, an `InputError` must be one line located at `path`."""
    try:
        read(path)
    except InputError as error:
        text = str(error)
        assert "\n" not in text and text.startswith(f"{path}:"), text


def numbered(lines: list[str], blanks: list[int], blank: str) -> tuple[str, list[int]]:
    """`lines` joined, `blanks[i]` copies of `blank` before line i; also each line's 1-based number."""
    out: list[str] = []
    numbers = []
    for line, n_blank in zip(lines, blanks + [0] * len(lines)):
        out += [blank] * n_blank + [line]
        numbers.append(len(out))
    return "\n".join(out) + "\n", numbers


# --- FASTA -----------------------------------------------------------------------------------------

FASTA_CHARS = ">ACGTNacgtnXJ*-. \t|sptr\r\x00é" + LETTERS["protein"]


@MORE
@given(data=lines_from(FASTA_CHARS), alphabet=st.sampled_from(["dna", "protein"]), cut=damage)
def test_fasta_any_input_parses_or_raises_input_error(workdir: Path, data: bytes, alphabet, cut) -> None:
    only_input_error(lambda p: read_fasta(p, alphabet), write(workdir, "fuzz.fa", damaged(data, cut)))


@st.composite
def fasta_files(draw: st.DrawFn, alphabet: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A FASTA file of 1-6 records in random layout, and the (id, sequence) pairs read_fasta must return."""
    ids = draw(st.lists(st.text(ID_CHARS, min_size=1, max_size=10), min_size=1, max_size=6, unique=True))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    out, expected = [draw(st.sampled_from(["", "\n", " \n\n"]))], []
    for record_id in ids:
        if draw(st.booleans()):  # UniProt header: the id is the accession between the bars
            header = f"{draw(st.sampled_from(['sp', 'tr']))}|{record_id}|NAME_HUMAN"
        else:
            header = record_id
        description = draw(st.text(" abcé>|\t", max_size=12))
        letters = LETTERS[alphabet] + LETTERS[alphabet].lower()
        sequence = draw(st.text(letters, min_size=1, max_size=90))
        stop = "*" if alphabet == "protein" and draw(st.booleans()) else ""
        width = draw(st.integers(1, 70))
        text = sequence + stop
        trailing = draw(st.sampled_from(["", " ", "\t "]))
        body = [text[i : i + width] + trailing for i in range(0, len(text), width)]
        out += [f">{header}{' ' + description if description.strip() else ''}", *body]
        out += [""] * draw(st.integers(0, 2))
        expected.append((record_id, sequence.upper().encode()))
    text = newline.join(out) + (newline if draw(st.booleans()) else "")
    return text.encode(), expected


@MORE
@given(data=st.data(), alphabet=st.sampled_from(["dna", "protein"]), cuts=packings)
def test_fasta_generated_records_round_trip(workdir: Path, data: st.DataObject, alphabet, cuts) -> None:
    content, expected = data.draw(fasta_files(alphabet))
    path = write(workdir, "records.fa", pack(content, cuts))
    assert list(read_fasta(path, alphabet).items()) == expected


# --- OBO -------------------------------------------------------------------------------------------

OBO_LINES = st.sampled_from([
    "format-version: 1.2", "default-namespace: biological_process", "data-version: 1", "[Term]", "[Typedef]",
    "id: GO:0008150", "id: GO:0000002", "id: X:1", "id: X", "name: a", "name: a ! b", "is_a: GO:0008150",
    "is_a: GO:0000002 ! x", "is_a: X:1", "is_a: ", "alt_id: GO:0000003", "is_obsolete: true",
    "replaced_by: GO:0008150", "relationship: part_of GO:0000002", "namespace: molecular_function",
    "relationship: part_of", "synonym: \"x\" EXACT []", "", "! comment", "def: \"d\" [x:1]",
    "date: 99:99:9999 99:99", "creation_date: yesterday", "[Instance]", "instance_of: X:1", "union_of: X:1",
    "id: http://purl.obolibrary.org/obo/HP_1", "intersection_of: part_of X:1", "xref: X:1 \"d\" {a=b}",
    "property_value: IAO:1 \"x\" xsd:string", "subsetdef: s \"d\"", "idspace: HP http://x", "is_a: X:1 {",
])  # fmt: skip


@FEW
@given(
    data=st.lists(OBO_LINES | st.text(max_size=20), max_size=15).map("\n".join).map(str.encode) | st.binary(),
    roots=st.sampled_from([None, GO_NAMESPACE_ROOTS]),
    cut=damage,
)
def test_obo_any_input_loads_or_raises_input_error(workdir: Path, data: bytes, roots, cut) -> None:
    path = write(workdir, "fuzz.obo" if cut is None else "fuzz.obo.gz", damaged(data, cut))
    only_input_error(lambda p: load_ontology(p, ("is_a", "part_of"), namespace_roots=roots), path)


def obo_escaped(name: str) -> str:
    return re.sub(r"([\\!{}])", r"\\\1", name)


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[str], dict[str, str], dict[str, list[tuple[str, str]]]]:
    """Term ids in file order, their names, and (relation, parent) edges drawn from earlier terms (a DAG)."""
    numbers = draw(st.lists(st.integers(0, 9_999_999), min_size=1, max_size=12, unique=True))
    ids = [f"HP:{number:07d}" for number in numbers]
    edges = {term: [] for term in ids}
    for index, term in enumerate(ids[1:], 1):
        for parent in draw(st.lists(st.sampled_from(ids[:index]), max_size=3, unique=True)):
            edges[term].append((draw(st.sampled_from(["is_a", "part_of"])), parent))
    name_text = st.text("abcXYZ019 -,()'/:\"é!{}\\", min_size=1, max_size=20).map(str.strip).filter(bool)
    names = dict(zip(ids, draw(st.lists(name_text, min_size=len(ids), max_size=len(ids)))))
    return draw(st.permutations(ids)), names, edges


def obo_text(order: list[str], names: dict[str, str], edges: dict[str, list[tuple[str, str]]], *,
             comments: bool = False, indent: str = "") -> str:
    """The OBO file of a generated DAG: stanzas in `order`, clauses indented by `indent`, with
    `! comments` after names and parents when asked."""
    note = " ! a comment " if comments else ""
    stanzas = []
    for term in order:
        clauses = [f"id: {term}", f"name: {obo_escaped(names[term])}{note}"]
        for relation, parent in edges[term]:
            tag = "is_a:" if relation == "is_a" else "relationship: part_of"
            clauses.append(f"{tag} {parent}{' ! ' + obo_escaped(names[parent]) if comments else ''}")
        stanzas.append("[Term]\n" + "".join(f"{indent}{clause}\n" for clause in clauses))
    return "format-version: 1.2\nontology: hp\n\n" + "\n".join(stanzas)


@MORE
@given(dag=dags(), both=st.booleans(), comments=st.booleans(), indent=st.sampled_from(["", " ", "\t"]), cuts=packings)
def test_obo_generated_dag_round_trips(workdir: Path, dag, both: bool, comments: bool, indent: str, cuts) -> None:
    order, names, edges = dag
    relations = ("is_a", "part_of") if both else ("is_a",)
    text = obo_text(order, names, edges, comments=comments, indent=indent)
    ontology = load_ontology(write(workdir, "dag.obo", pack(text.encode(), cuts)), relations)

    parents = {t: sorted({p for r, p in edges[t] if r in relations}) for t in order}
    assert ontology.terms == tuple(sorted(order))
    assert {t: ontology.name(t) for t in order} == names
    assert {t: list(ontology.parents(t)) for t in order} == parents
    assert ontology.roots() == tuple(sorted(t for t in order if not parents[t]))

    def closure(term: str) -> set[str]:  # naive recursion; the DAG is small
        return {term}.union(*(closure(p) for p in parents[term]))

    for term in order:
        assert ontology.ancestors(term) == closure(term)
        assert ontology.descendants(term) == {t for t in order if term in closure(t)}


def closure_over(edges: dict[str, list[tuple[str, str]]], term: str) -> set[str]:
    return {term}.union(*(closure_over(edges, parent) for _, parent in edges[term]))


@FEW
@given(dag=dags(), fault=st.sampled_from(["duplicate", "cycle", "dangling"]),
       picks=st.tuples(st.integers(0, 11), st.integers(0, 11)), indent=st.sampled_from(["", " "]))
def test_obo_broken_dag_raises_at_the_culprit_line(workdir: Path, dag, fault: str, picks, indent: str) -> None:
    """A duplicate id is reported at its second stanza, a cycle at the id line of a term on it, a
    parent missing from the file at the clause naming it."""
    order, names, edges = dag
    term = order[picks[0] % len(order)]
    if fault == "cycle":  # an edge from one of the term's ancestors (or itself) back down to it
        ancestor = sorted(closure_over(edges, term))[picks[1] % len(closure_over(edges, term))]
        edges = {**edges, ancestor: [*edges[ancestor], ("is_a", term)]}
    elif fault == "dangling":
        edges = {**edges, term: [*edges[term], (["is_a", "part_of"][picks[1] % 2], "XX:1")]}
    base = obo_text(order, names, edges, indent=indent)
    text = base + f"\n[Term]\n{indent}id: {term}\n" * (1 + picks[1] % 2) if fault == "duplicate" else base
    path = write(workdir, "broken.obo", text.encode())
    with pytest.raises(InputError) as error:
        load_ontology(path, ("is_a", "part_of"))
    found = re.match(rf"{re.escape(str(path))}:(\d+): (.*)", str(error.value))
    assert found is not None, str(error.value)
    line, message = int(found.group(1)), found.group(2)
    at = text.split("\n")[line - 1]
    if fault == "duplicate":  # the id's second stanza: blank line, [Term], id after `base`
        assert (message, line) == (f"duplicate [Term] id {term}", base.count("\n") + 3)
    elif fault == "cycle":
        first = re.fullmatch(r"cycle over is_a/part_of \(child -> parent\): (\S+) -> .*", message)
        assert first is not None and at == f"{indent}id: {first.group(1)}"
    else:
        assert message.endswith(f"parent XX:1 of {term} is not a term in this file")
        assert at in (f"{indent}is_a: XX:1", f"{indent}relationship: part_of XX:1")


# --- label, id map and GO annotation readers -------------------------------------------------------

HPO_HEADER = ["ncbi_gene_id", "gene_symbol", "hpo_id", "hpo_name", "frequency", "disease_id"]
GENE2GO_HEADER = "#tax_id\tGeneID\tGO_ID\tEvidence\tQualifier\tGO_term\tPubMed\tCategory"
READERS: dict[str, tuple[Callable[[Path], object], str]] = {
    "hpo": (lambda p: read_labels(p, "hpo"), "\t".join(HPO_HEADER)),
    "mgi": (lambda p: read_labels(p, "mgi", mgi_targeted_only=True), ""),
    "impc": (lambda p: read_labels(p, "impc"), "marker_accession_id,marker_symbol,mp_term_id"),
    "labels-tsv": (lambda p: read_labels(p, "tsv"), "gene\tterm"),
    "id-map": (read_id_map, "gene_id\tsymbol\taccession"),
    "gene2go": (lambda p: read_go_annotations(p, "gene2go", taxon=9606), GENE2GO_HEADER),
    "gaf": (lambda p: read_go_annotations(p, "gaf", taxon=9606), "!gaf-version: 2.2"),
    "go-tsv": (lambda p: read_go_annotations(p, "tsv"), "gene\tgo_id"),
}
ROW_CHARS = "\t\t\t ,\"|<>:HPMGIOtm0123456789-_\r\x0c\x00é!#\ufeff"


@pytest.mark.parametrize("reader", sorted(READERS))
@FEW
@given(header=st.booleans(), data=lines_from(ROW_CHARS), cut=damage)
def test_row_readers_any_input_parse_or_raise_input_error(workdir: Path, reader: str, header, data, cut) -> None:
    read, header_line = READERS[reader]
    content = (header_line.encode() + b"\n" if header else b"") + data
    only_input_error(read, write(workdir, f"fuzz-{reader}", damaged(content, cut)))


genes = st.integers(1, 99_999).map(str)
terms = st.integers(0, 9_999_999).map("{:07d}".format)
symbols = st.sampled_from(["", "-", "AARS1", "Sym,1", 'q"s'])


@MORE
@given(
    rows=st.lists(st.tuples(genes, symbols, terms), min_size=1, max_size=15),
    columns=st.permutations(HPO_HEADER + ["extra"]),
    blanks=st.lists(st.integers(0, 2), max_size=16),
    blank=st.sampled_from(["", "  ", " \t", "\t" * 6]),
    cuts=packings,
)
def test_hpo_rows_round_trip(workdir: Path, rows, columns, blanks, blank, cuts) -> None:
    lines = ["\t".join(name.upper() if name == "hpo_id" else name for name in columns)]
    for gene, symbol, term in rows:
        values = {"ncbi_gene_id": gene, "gene_symbol": symbol, "hpo_id": f"HP:{term}", "extra": "x"}
        lines.append("\t".join(values.get(name, "-") for name in columns))
    text, numbers = numbered(lines, blanks, blank)
    table = read_labels(write(workdir, "g2p.txt", pack(text.encode(), cuts)), "hpo")
    assert [tuple(r) for r in table.records] == [(g, f"HP:{t}", n) for (g, _, t), n in zip(rows, numbers[1:])]
    symbols_seen: dict[str, str] = {}
    for gene, symbol, _ in rows:
        if symbol not in ("", "-"):
            symbols_seen.setdefault(gene, symbol)
    assert table.gene_to_symbol == symbols_seen


@MORE
@given(
    rows=st.lists(
        st.tuples(st.lists(genes, min_size=1, max_size=2), st.sampled_from("|,"), terms,
                  st.lists(st.sampled_from(["Abc<tm1a(KOMP)Wtsi>", "Abc<Gt1>", "Abc<tm2>"]), min_size=1, max_size=2),
                  st.booleans()),
        min_size=1, max_size=15),
    targeted_only=st.booleans(),
    blanks=st.lists(st.integers(0, 1), max_size=16),
    cuts=packings,
)  # fmt: skip
def test_mgi_rows_round_trip(workdir: Path, rows, targeted_only: bool, blanks, cuts) -> None:
    lines, expected, skipped = [], [], Counter()
    for index, (markers, separator, term, alleles, ninth) in enumerate(rows):
        accessions = [f"MGI:{m}" for m in markers]
        fields = ["a/b", "|".join(alleles), "MGI:1", "B6", f" MP:{term} ", "123", separator.join(accessions), "MGI:9"]
        lines.append("\t".join(fields + ([""] if ninth else [])))
        if len(set(accessions)) > 1:
            skipped["multiple markers"] += 1
        elif targeted_only and not all("<tm" in allele for allele in alleles):
            skipped["not targeted"] += 1
        else:
            expected.append((accessions[0], f"MP:{term}", index))
    text, numbers = numbered(lines, blanks, "")
    path = write(workdir, "MGI_GenePheno.rpt", pack(text.encode(), cuts))
    if not expected:
        with pytest.raises(InputError, match="no label rows"):
            read_labels(path, "mgi", mgi_targeted_only=targeted_only)
        return
    table = read_labels(path, "mgi", mgi_targeted_only=targeted_only)
    assert [tuple(r) for r in table.records] == [(g, t, numbers[index]) for g, t, index in expected]
    assert table.skipped == skipped


@MORE
@given(
    rows=st.lists(st.tuples(genes, symbols, terms | st.just("")), min_size=1, max_size=15),
    columns=st.permutations(["marker_accession_id", "marker_symbol", "mp_term_id", "zygosity", "p_value"]),
    blanks=st.lists(st.integers(0, 1), max_size=16),
    cuts=packings,
)
def test_impc_rows_round_trip(workdir: Path, rows, columns, blanks, cuts) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for gene, symbol, term in rows:
        values = {"marker_accession_id": f" MGI:{gene}", "marker_symbol": symbol, "mp_term_id": term and f"MP:{term}"}
        writer.writerow([values.get(name, "a, b") for name in columns])
    text, numbers = numbered(buffer.getvalue().splitlines(), blanks, "")
    path = write(workdir, "impc.csv", pack(text.encode(), cuts))
    kept = [(f"MGI:{g}", f"MP:{t}", n) for (g, _, t), n in zip(rows, numbers[1:]) if t]
    if not kept:
        with pytest.raises(InputError, match="no label rows"):
            read_labels(path, "impc")
        return
    table = read_labels(path, "impc")
    assert [tuple(r) for r in table.records] == kept
    assert table.skipped == Counter({"no mp_term_id": len(rows) - len(kept)})  # a 0 count equals absent


@MORE
@given(
    rows=st.lists(st.tuples(genes, terms), min_size=1, max_size=15),
    header=st.booleans(),
    go=st.booleans(),
    pad=st.sampled_from(["", " "]),
    blanks=st.lists(st.integers(0, 1), max_size=16),
    cuts=packings,
)
def test_two_column_tsv_rows_round_trip(workdir: Path, rows, header: bool, go: bool, pad: str, blanks, cuts) -> None:
    prefix = "GO" if go else "HP"
    lines = (["gene_id\tterm_id"] if header else []) + [f"{pad}{g}\t{prefix}:{t}{pad}" for g, t in rows]
    text, numbers = numbered(lines, blanks, " ")
    path = write(workdir, "pairs.tsv", pack(text.encode(), cuts))
    numbers = numbers[1:] if header else numbers
    if go:
        records = [(r.gene_id, r.go_id, r.evidence, r.line) for r in read_go_annotations(path, "tsv").records]
        assert records == [(g, f"GO:{t}", "", n) for (g, t), n in zip(rows, numbers)]
    else:
        records = [tuple(r) for r in read_labels(path, "tsv").records]
        assert records == [(g, f"HP:{t}", n) for (g, t), n in zip(rows, numbers)]


@MORE
@given(
    pairs=st.lists(st.tuples(genes, genes, symbols), min_size=1, max_size=12, unique_by=(lambda r: r[0], lambda r: r[1])),
    three=st.booleans(),
    header=st.booleans(),
    repeats=st.lists(st.integers(0, 11), max_size=3),
    conflict=st.booleans(),
    cuts=packings,
)  # fmt: skip
def test_id_map_round_trip_and_conflict_lines(workdir: Path, pairs, three, header, repeats, conflict, cuts) -> None:
    def row(gene: str, accession: str, symbol: str) -> str:
        return "\t".join([f"G{gene}", *([symbol] if three else []), f"P{accession}"])

    lines = [row(*pair) for pair in pairs] + [row(*pairs[i % len(pairs)]) for i in repeats]
    if conflict:
        lines.append(row(pairs[0][0], "0", ""))  # genes are >= 1: accession P0 is new
    text = ("gene_id\tsymbol\taccession\n" if three else "gene_id\taccession\n") if header else ""
    path = write(workdir, "ids.tsv", pack((text + "\n".join(lines) + "\n").encode(), cuts))
    if conflict:
        with pytest.raises(InputError) as error:
            read_id_map(path)
        first, last = 1 + header, len(lines) + header
        assert str(error.value).startswith(f"{path}:{last}: ") and f"at line {first}" in str(error.value)
        return
    id_map = read_id_map(path)
    assert id_map.gene_to_accession == {f"G{g}": f"P{a}" for g, a, _ in pairs}
    assert id_map.gene_to_symbol == ({f"G{g}": s for g, _, s in pairs if s not in ("", "-")} if three else {})


QUALIFIERS = ["enables", "NOT enables", "involved_in", "NOT|colocalizes_with", "NOTCH_like"]
EVIDENCE = ["IDA", "IMP", "IGI", "IEA", "TAS"]


@MORE
@given(
    rows=st.lists(st.tuples(st.sampled_from([9606, 10090]), genes, terms, st.sampled_from(EVIDENCE),
                            st.sampled_from(QUALIFIERS), symbols), min_size=1, max_size=15),
    fmt=st.sampled_from(["gene2go", "gaf"]),
    gaf_columns=st.sampled_from([15, 16, 17]),
    taxon=st.sampled_from([None, 9606]),
    exclude=st.lists(st.sampled_from(EVIDENCE), max_size=2),
    cuts=packings,
)  # fmt: skip
def test_go_annotation_rows_round_trip_with_filters(workdir: Path, rows, fmt, gaf_columns, taxon, exclude, cuts):
    lines = [GENE2GO_HEADER if fmt == "gene2go" else "!gaf-version: 2.2"]
    expected, skipped, symbols_seen = [], Counter(), {}
    for number, (tax, gene, term, evidence, qualifier, symbol) in enumerate(rows, 2):
        if fmt == "gene2go":
            lines.append("\t".join([str(tax), gene, f"GO:{term}", evidence, qualifier, "a term", "1", "Process"]))
        else:
            fields = ["UniProtKB", gene, symbol, qualifier, f"GO:{term}", "PMID:1", evidence, "", "P", "n", "",
                      "protein", f"taxon:{tax}|taxon:9606", "20240101", "GO", "", ""]  # fmt: skip
            lines.append("\t".join(fields[:gaf_columns]))
        if taxon is not None and tax != taxon:
            skipped["other taxon"] += 1
        elif qualifier.startswith("NOT") and qualifier != "NOTCH_like":
            skipped["NOT qualifier"] += 1
        elif evidence in exclude:
            skipped[f"evidence {evidence}"] += 1
        else:
            expected.append((gene, f"GO:{term}", evidence, number))
            if fmt == "gaf" and symbol:
                symbols_seen.setdefault(gene, symbol)
    path = write(workdir, f"annotations.{fmt}", pack(("\n".join(lines) + "\n").encode(), cuts))
    read = functools.partial(read_go_annotations, path, fmt, taxon=taxon, evidence_exclude=exclude)
    if not expected:
        with pytest.raises(InputError, match="no GO annotations kept"):
            read()
        return
    table = read()
    assert [tuple(r) for r in table.records] == expected
    assert table.skipped == skipped
    assert table.gene_to_symbol == symbols_seen


# --- tokenizers ------------------------------------------------------------------------------------


@functools.cache
def tokenizer(alphabet: str, kmer_size: int):
    return build_tokenizer(alphabet, kmer_size)  # type: ignore[arg-type]


def nt_tokens(sequence: str, k: int) -> list[str]:
    """Nucleotide Transformer's rule, written independently: any non-ACGT is N; split on N (each N is
    its own token); each ACGT run becomes non-overlapping k-mers, its tail shorter than k single bases."""
    tokens: list[str] = []
    for index, run in enumerate(re.sub("[^ACGT]", "N", sequence).split("N")):
        full = len(run) - len(run) % k
        tokens += ["N"] * (index > 0) + [run[i : i + k] for i in range(0, full, k)] + list(run[full:])
    return tokens


def windows_agree(tok, sequence: str, max_len: int) -> list[np.ndarray]:
    """encode_windows("all") with the numpy residue table (when the tokenizer has one) and without:
    both must give the same windows; returned for further checks."""
    rng = np.random.default_rng(0)
    plain = encode_windows(sequence.encode(), tok, max_len, "all", 10**6, rng)
    fast = encode_windows(sequence.encode(), tok, max_len, "all", 10**6, rng, residue_table_for(tok))
    assert [w.tolist() for w in fast] == [w.tolist() for w in plain]
    return plain


@MORE
@given(sequence=st.text("ACDEFGHIKLMNPQRSTVWYXBUZOJ", max_size=200), max_len=st.integers(3, 40))
def test_protein_tokenizer_ids_fast_path_windows_and_decode(sequence: str, max_len: int) -> None:
    tok = tokenizer("protein", 6)
    ids = tok(sequence)["input_ids"]
    unk = PROTEIN_VOCAB.index("<unk>")
    assert ids == [0, *(PROTEIN_VOCAB.index(c) if c in PROTEIN_VOCAB else unk for c in sequence), 2]
    assert residue_table_for(tok) is not None
    windows = windows_agree(tok, sequence, max_len)
    assert all(len(w) <= max_len and w[0] == 0 and w[-1] == 2 for w in windows)
    assert [i for w in windows for i in w[1:-1].tolist()] == ids[1:-1]
    if "J" not in sequence:  # J is <unk>: the one letter that cannot come back
        assert tok.decode(ids, skip_special_tokens=True).replace(" ", "") == sequence


@MORE
@given(
    sequence=st.text(st.sampled_from("ACGT" * 6 + "NRYKU"), max_size=120),
    k=st.sampled_from([1, 2, 3, 6]),
    max_len=st.integers(2, 30),
)
def test_dna_tokenizer_follows_the_nt_rule(sequence: str, k: int, max_len: int) -> None:
    tok = tokenizer("dna", k)
    vocab = dna_vocab(k)
    ids = tok(sequence)["input_ids"]
    assert all(0 <= i < len(tok) for i in ids)
    assert ids == [vocab.index("<cls>"), *(vocab.index(t) for t in nt_tokens(sequence, k))]
    assert (residue_table_for(tok) is None) == (k > 1)  # k-mers group letters: no per-letter table
    windows = windows_agree(tok, sequence, max_len)
    assert all(len(w) <= max_len and w[0] == ids[0] for w in windows)
    assert [i for w in windows for i in w[1:].tolist()] == ids[1:]
    if re.fullmatch("[ACGT]*", sequence) and len(sequence) % k == 0:
        assert tok.decode(ids, skip_special_tokens=True).replace(" ", "") == sequence
        assert all(len(t) == k for t in tok.convert_ids_to_tokens(ids[1:]))
