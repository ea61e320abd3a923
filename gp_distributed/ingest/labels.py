"""Phenotype label readers: (gene id, phenotype term id) records from HPO, MGI, IMPC or a plain TSV.

Every format is read streaming from a plain or gzip file; blank lines are ignored. Records keep
every row as given (a gene-term pair repeated for several diseases stays repeated, so each record
can point at its line); deduplication and ontology checks belong to the pipeline. Term ids must look
like `PREFIX:digits` (`HP:0000118`, `MP:0001186`), gene ids must be non-empty, and every row must have
its format's column count: otherwise `InputError` names the file and line. Rows a format rule drops
are counted by reason in `LabelTable.skipped`.

Formats (`fmt`):
- `hpo`: HPO `genes_to_phenotype.txt`, tab-separated with the header `ncbi_gene_id gene_symbol
  hpo_id hpo_name frequency disease_id` (columns found by name); gene id = NCBI Gene id;
- `mgi`: MGI `MGI_GenePheno.rpt`, tab-separated, no header, 8 columns (Allelic Composition, Allele
  Symbol(s), Allele ID(s), Genetic Background, Mammalian Phenotype ID, PubMed ID, MGI Marker
  Accession ID, MGI Genotype Accession ID; a trailing empty 9th column is tolerated); gene id = the
  marker accession. Genotypes naming several markers (`|` or `,` separated) cannot be attributed to
  one gene: skipped as 'multiple markers'. With `mgi_targeted_only`, rows where any allele symbol
  (`|` separated) lacks `<tm` (targeted mutation) are skipped as 'not targeted';
- `impc`: IMPC genotype-phenotype CSV with a header naming at least `marker_accession_id`,
  `marker_symbol` and `mp_term_id`; gene id = marker accession; rows with an empty `mp_term_id`
  are skipped as 'no mp_term_id';
- `tsv`: `gene_id<TAB>term_id`; the first line is a header when its term column is not a term id.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from gp_distributed.errors import InputError
from gp_distributed.ingest.textfile import iter_line_runs, iter_lines, split_row

LabelFormat = Literal["hpo", "mgi", "impc", "tsv"]

_TERM_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]*:[0-9]+")
_HPO_COLUMNS = ("ncbi_gene_id", "gene_symbol", "hpo_id")
_IMPC_COLUMNS = ("marker_accession_id", "marker_symbol", "mp_term_id")
_MGI_MARKER_SEPARATORS = re.compile(r"[|,]")


class LabelRecord(NamedTuple):
    """One label row: `gene_id` has phenotype `term_id`, read from line `line` (1-based)."""

    gene_id: str
    term_id: str
    line: int


@dataclass(frozen=True)
class LabelTable:
    """Labels read from `path`: `records` in file order, `gene_to_symbol` where the file names the
    gene's symbol (first one seen), `skipped` row counts by reason (empty when nothing was skipped)."""

    path: Path
    records: tuple[LabelRecord, ...]
    gene_to_symbol: dict[str, str]
    skipped: Counter[str]


def read_labels(path: str | Path, fmt: LabelFormat, *, mgi_targeted_only: bool = False) -> LabelTable:
    """Read the label file `path` in format `fmt` (see the module docstring for each format's rules)."""
    path = Path(path)
    out = _Collected(path)
    if fmt == "hpo":
        _read_hpo(out)
    elif fmt == "mgi":
        _read_mgi(out, mgi_targeted_only)
    elif fmt == "impc":
        _read_impc(out)
    elif fmt == "tsv":
        _read_tsv(out)
    else:
        raise ValueError(f"unknown label format {fmt!r}")
    if not out.records:
        skipped = ", ".join(f"{count} {why}" for why, count in out.skipped.items())
        raise InputError(path, f"no label rows found in {fmt} format" + (f" ({skipped} skipped)" if skipped else ""))
    return LabelTable(path, tuple(out.records), out.gene_to_symbol, out.skipped)


@dataclass
class _Collected:
    """What a format reader fills in: the table's parts, plus the set of term ids already validated."""

    path: Path
    records: list[LabelRecord] = field(default_factory=list)
    gene_to_symbol: dict[str, str] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    valid_terms: set[str] = field(default_factory=set)  # a file repeats a few thousand terms

    def check_term(self, term_id: str, line_number: int) -> None:
        """Raise unless `term_id` looks like PREFIX:digits."""
        if term_id not in self.valid_terms:
            if not _TERM_ID.fullmatch(term_id):
                raise InputError(self.path, f"term id {term_id!r} is not of the form PREFIX:digits", line=line_number)
            self.valid_terms.add(term_id)


def _take_header(runs: Iterator[tuple[int, list[str]]]) -> tuple[int, str, Iterator[tuple[int, list[str]]]] | None:
    """The first non-blank line (number, text) and the runs of lines after it; None for a blank file."""
    for first, lines in runs:
        for index, text in enumerate(lines):
            if text and not text.isspace():
                return first + index, text, itertools.chain([(first + index + 1, lines[index + 1 :])], runs)
    return None


def _empty_gene(path: Path, line_number: int) -> InputError:
    return InputError(path, "empty gene id", line=line_number)


def _read_hpo(out: _Collected) -> None:
    path, records, symbols, valid_terms = out.path, out.records, out.gene_to_symbol, out.valid_terms
    found = _take_header(iter_line_runs(path))
    if found is None:
        raise InputError(path, "empty file: no HPO genes_to_phenotype header")
    header_line, header, runs = found
    names = [name.strip().lower() for name in header.split("\t")]
    missing = [name for name in _HPO_COLUMNS if name not in names]
    if missing:
        message = f"not an HPO genes_to_phenotype header: missing column(s) {', '.join(missing)}"
        raise InputError(path, message, line=header_line)
    gene_col, symbol_col, term_col = (names.index(name) for name in _HPO_COLUMNS)
    tabs, last_needed = len(names) - 1, max(gene_col, symbol_col, term_col)
    for first, lines in runs:
        for line_number, text in enumerate(lines, first):  # hot loop (~250k rows): checks inlined
            if text.count("\t") != tabs:
                if not text or text.isspace():
                    continue
                split_row(path, line_number, text, len(names))  # raises the column-count error
            fields = text.split("\t", last_needed + 1)
            gene_id, term_id = fields[gene_col], fields[term_col]
            if term_id not in valid_terms:
                if text.isspace():  # a blank line with the header's tab count (never a valid term)
                    continue
                out.check_term(term_id, line_number)
            if not gene_id:
                raise _empty_gene(path, line_number)
            records.append(LabelRecord(gene_id, term_id, line_number))
            if gene_id not in symbols and fields[symbol_col] not in ("", "-"):
                symbols[gene_id] = fields[symbol_col]


def _read_mgi(out: _Collected, targeted_only: bool) -> None:
    path = out.path
    for first, lines in iter_line_runs(path):
        for line_number, text in enumerate(lines, first):
            if not text or text.isspace():
                continue
            fields = split_row(path, line_number, text, (8, 9))
            if len(fields) == 9 and fields[8]:
                raise InputError(path, "expected 8 tab-separated columns, found 9", line=line_number)
            alleles, term_id = fields[1], fields[4].strip()
            out.check_term(term_id, line_number)
            markers = {marker.strip() for marker in _MGI_MARKER_SEPARATORS.split(fields[6])} - {""}
            if not markers:
                raise _empty_gene(path, line_number)
            if len(markers) > 1:
                out.skipped["multiple markers"] += 1
            elif targeted_only and not all("<tm" in allele for allele in alleles.split("|")):
                out.skipped["not targeted"] += 1
            else:
                out.records.append(LabelRecord(markers.pop(), term_id, line_number))


def _read_impc(out: _Collected) -> None:
    # csv.reader gets every physical line (blank ones too) so its line_num is the file's line number
    path = out.path
    reader = csv.reader((text for _, text in iter_lines(path)), strict=True)
    try:
        header = next((row for row in reader if row), None)
        if header is None:
            raise InputError(path, "empty file: no IMPC header")
        names = [name.strip().lower() for name in header]
        missing = [name for name in _IMPC_COLUMNS if name not in names]
        if missing:
            message = f"not an IMPC genotype-phenotype header: missing column(s) {', '.join(missing)}"
            raise InputError(path, message, line=reader.line_num)
        gene_col, symbol_col, term_col = (names.index(name) for name in _IMPC_COLUMNS)
        for row in reader:
            if not row:
                continue
            line_number = reader.line_num
            if len(row) != len(names):
                message = f"expected {len(names)} comma-separated columns, found {len(row)}"
                raise InputError(path, message, line=line_number)
            gene_id, term_id, symbol = row[gene_col].strip(), row[term_col].strip(), row[symbol_col].strip()
            if not term_id:
                out.skipped["no mp_term_id"] += 1
                continue
            out.check_term(term_id, line_number)
            if not gene_id:
                raise _empty_gene(path, line_number)
            out.records.append(LabelRecord(gene_id, term_id, line_number))
            if symbol and gene_id not in out.gene_to_symbol:
                out.gene_to_symbol[gene_id] = symbol
    except csv.Error as error:
        raise InputError(path, f"malformed CSV: {error}", line=reader.line_num) from None


def _read_tsv(out: _Collected) -> None:
    path = out.path
    lines = ((n, text) for n, text in iter_lines(path) if text and not text.isspace())
    for index, (line_number, text) in enumerate(lines):
        gene_id, term_id = (field.strip() for field in split_row(path, line_number, text, 2))
        if index == 0 and not _TERM_ID.fullmatch(term_id):
            continue  # header
        out.check_term(term_id, line_number)
        if not gene_id:
            raise _empty_gene(path, line_number)
        out.records.append(LabelRecord(gene_id, term_id, line_number))
