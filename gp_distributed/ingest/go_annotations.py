"""Gene Ontology annotation readers: (gene id, GO id, evidence code) records from gene2go, GAF or TSV.

Files are read streaming, plain or gzip; blank lines are ignored. GO ids must look like `GO:digits`,
gene ids must be non-empty and rows must have their format's column count, else `InputError` names
the file and line. Records keep every row as given, in file order. Rows dropped by a rule are
counted in `GoTable.skipped` under these reasons, checked in this order:
- 'other taxon': `taxon` is set and the row's taxon differs;
- 'NOT qualifier': the qualifier holds the word `NOT` (the gene is known *not* to have the term);
- 'evidence <CODE>': the evidence code is in `evidence_exclude` (default IMP and IGI, the mutant
  phenotype evidence that would leak phenotype labels into the model's inputs).

Formats (`fmt`):
- `gene2go`: NCBI layout, tab-separated, 8 columns (tax_id, GeneID, GO_ID, Evidence, Qualifier,
  GO_term, PubMed, Category), `#` lines are comments (the header); gene id = GeneID;
- `gaf`: GO Annotation File 2.x, tab-separated, `!` lines are comments; 17 columns (15 or 16 are
  accepted: older files and trailing optional columns cut off); gene id = DB Object ID (column 2),
  symbol = DB Object Symbol (column 3), taxon = the first `taxon:N` of column 13 (a second one
  names an interacting organism);
- `tsv`: `gene_id<TAB>GO_ID`, the first line a header when its second column is not a GO id; the
  evidence is unknown (''), which no exclusion removes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from gp_distributed.errors import InputError
from gp_distributed.ingest.textfile import iter_line_runs, iter_lines, split_row

GoFormat = Literal["gene2go", "gaf", "tsv"]

_GO_ID = re.compile(r"GO:[0-9]+")
_NOT_WORD = re.compile(r"(?<![A-Za-z_])NOT(?![A-Za-z_])")
_GAF_TAXON = re.compile(r"taxon:([0-9]+)")


class GoRecord(NamedTuple):
    """One annotation row: `gene_id` has GO term `go_id` with evidence code `evidence` ('' if
    unknown), read from line `line` (1-based)."""

    gene_id: str
    go_id: str
    evidence: str
    line: int


@dataclass(frozen=True)
class GoTable:
    """Annotations read from `path`: `records` in file order, `gene_to_symbol` where the file names
    the gene's symbol (GAF; first one seen), `skipped` row counts by reason."""

    path: Path
    records: tuple[GoRecord, ...]
    gene_to_symbol: dict[str, str]
    skipped: Counter[str]


def read_go_annotations(
    path: str | Path,
    fmt: GoFormat,
    *,
    taxon: int | None = None,
    evidence_exclude: Collection[str] = ("IMP", "IGI"),
) -> GoTable:
    """Read the GO annotation file `path` in format `fmt`, keeping rows of NCBI taxon `taxon` (all
    when None) whose evidence code is not in `evidence_exclude` (see the module docstring)."""
    if isinstance(evidence_exclude, str):
        raise TypeError("evidence_exclude must be a collection of codes, e.g. ('IMP', 'IGI'), not a string")
    path = Path(path)
    # '' (unknown evidence, the TSV format) is never excluded, even when listed
    out = _Collected(path, frozenset(evidence_exclude) - {""}, None if taxon is None else str(taxon))
    if fmt == "gene2go":
        _read_gene2go(out)
    elif fmt == "gaf":
        _read_gaf(out)
    elif fmt == "tsv":
        if taxon is not None:
            raise ValueError("a GO TSV has no taxon column: taxon must be None")
        _read_tsv(out)
    else:
        raise ValueError(f"unknown GO annotation format {fmt!r}")
    if not out.records:
        skipped = ", ".join(f"{count} {why}" for why, count in out.skipped.items())
        raise InputError(path, f"no GO annotations kept in {fmt} format" + (f" ({skipped} skipped)" if skipped else ""))
    return GoTable(path, tuple(out.records), out.gene_to_symbol, out.skipped)


@dataclass
class _Collected:
    """What a format reader fills in, and the filters it applies."""

    path: Path
    evidence_exclude: frozenset[str]
    taxon: str | None
    records: list[GoRecord] = field(default_factory=list)
    gene_to_symbol: dict[str, str] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    valid_go_ids: set[str] = field(default_factory=set)  # a file repeats a few ten thousand ids

    def add(self, line_number: int, gene_id: str, go_id: str, evidence: str, qualifier: str, taxon: str) -> None:
        """Validate one row and keep it as a record or count it as skipped."""
        if go_id not in self.valid_go_ids:
            if not _GO_ID.fullmatch(go_id):
                raise InputError(self.path, f"GO id {go_id!r} is not of the form GO:digits", line=line_number)
            self.valid_go_ids.add(go_id)
        if not gene_id:
            raise InputError(self.path, "empty gene id", line=line_number)
        if self.taxon is not None and taxon != self.taxon:
            self.skipped["other taxon"] += 1
        elif "NOT" in qualifier and _NOT_WORD.search(qualifier):
            self.skipped["NOT qualifier"] += 1
        elif evidence in self.evidence_exclude:
            self.skipped[f"evidence {evidence}"] += 1
        else:
            self.records.append(GoRecord(gene_id, go_id, evidence, line_number))


def _read_gene2go(out: _Collected) -> None:
    path, add = out.path, out.add
    for first, lines in iter_line_runs(path):
        for line_number, text in enumerate(lines, first):
            if not text or text[0] == "#" or text.isspace():
                continue
            if text.count("\t") != 7:
                split_row(path, line_number, text, 8)  # raises the column-count error
            tax_id, gene_id, go_id, evidence, qualifier, _ = text.split("\t", 5)
            add(line_number, gene_id.strip(), go_id.strip(), evidence.strip(), qualifier, tax_id.strip())


def _read_gaf(out: _Collected) -> None:
    path, add = out.path, out.add
    for first, lines in iter_line_runs(path):
        for line_number, text in enumerate(lines, first):
            if not text or text[0] == "!" or text.isspace():
                continue
            fields = split_row(path, line_number, text, (17, 15, 16))
            gene_id, symbol, qualifier, go_id, evidence = (fields[i].strip() for i in (1, 2, 3, 4, 6))
            taxon = ""
            if out.taxon is not None:
                found = _GAF_TAXON.match(fields[12].strip())
                if found is None:
                    message = f"taxon column {fields[12]!r} is not of the form taxon:N"
                    raise InputError(path, message, line=line_number)
                taxon = found.group(1)
            kept = len(out.records)
            add(line_number, gene_id, go_id, evidence, qualifier, taxon)
            if len(out.records) > kept and symbol and gene_id not in out.gene_to_symbol:
                out.gene_to_symbol[gene_id] = symbol


def _read_tsv(out: _Collected) -> None:
    path = out.path
    lines = ((n, text) for n, text in iter_lines(path) if text and not text.isspace())
    for index, (line_number, text) in enumerate(lines):
        gene_id, go_id = (value.strip() for value in split_row(path, line_number, text, 2))
        if index == 0 and not _GO_ID.fullmatch(go_id):
            continue  # header
        out.add(line_number, gene_id, go_id, "", "", "")
