"""Gene id map: the label files' gene id -> the FASTA record's accession (and the gene's symbol).

Format: tab-separated, plain or gzip, two or three columns, the same count on every line:
`gene_id<TAB>accession` or `gene_id<TAB>symbol<TAB>accession` (as the bundle's `gene_ids.tsv`).
The first line is a header when neither its gene id nor its accession contains a digit while the
second line's do (database ids and accessions always carry digits, column names rarely do).
Blank lines are ignored; a symbol that is empty or `-` is unknown.

The map must be one-to-one: a gene id given two accessions, or an accession claimed by two genes,
raises `InputError` naming both lines. Repeating an identical row is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gp_distributed.errors import InputError
from gp_distributed.ingest.textfile import iter_lines, split_row


@dataclass(frozen=True)
class IdMap:
    """gene_to_accession: label gene id -> FASTA accession (one-to-one).
    gene_to_symbol: label gene id -> gene symbol, for the genes whose symbol the file gives."""

    gene_to_accession: dict[str, str]
    gene_to_symbol: dict[str, str]


def read_id_map(path: str | Path) -> IdMap:
    """Read the id map at `path`; raise `InputError` (file, line) on a malformed or conflicting row."""
    path = Path(path)
    gene_to_accession: dict[str, str] = {}
    gene_to_symbol: dict[str, str] = {}
    gene_line: dict[str, int] = {}
    accession_line: dict[str, tuple[str, int]] = {}
    symbol_line: dict[str, int] = {}
    rows = ((n, text) for n, text in iter_lines(path) if text.strip())
    first = next(rows, None)
    if first is None:
        raise InputError(path, "empty file: no gene id mappings")
    second = next(rows, None)
    columns = len(first[1].split("\t"))
    if columns not in (2, 3):
        raise InputError(path, f"expected 2 or 3 tab-separated columns, found {columns}", line=first[0])
    head = [first, second] if second is not None else [first]
    if _is_header(first[1], second[1] if second is not None else None):
        head.pop(0)
    for line_number, text in (*head, *rows):
        fields = split_row(path, line_number, text, columns)
        gene_id, accession = fields[0].strip(), fields[-1].strip()
        symbol = fields[1].strip() if columns == 3 else ""
        if not gene_id or not accession:
            raise InputError(path, "empty gene id or accession", line=line_number)
        if gene_id in gene_to_accession:
            if gene_to_accession[gene_id] != accession:
                message = (
                    f"gene {gene_id!r} maps to {accession!r} here but to {gene_to_accession[gene_id]!r}"
                    f" at line {gene_line[gene_id]}"
                )
                raise InputError(path, message, line=line_number)
        elif accession in accession_line:
            other_gene, other_line = accession_line[accession]
            message = (
                f"accession {accession!r} is claimed by gene {gene_id!r} here"
                f" and by gene {other_gene!r} at line {other_line}"
            )
            raise InputError(path, message, line=line_number)
        else:
            gene_to_accession[gene_id] = accession
            gene_line[gene_id] = line_number
            accession_line[accession] = (gene_id, line_number)
        if symbol and symbol != "-":
            known = gene_to_symbol.setdefault(gene_id, symbol)
            symbol_line.setdefault(gene_id, line_number)
            if known != symbol:
                message = f"gene {gene_id!r} has symbol {symbol!r} here but {known!r} at line {symbol_line[gene_id]}"
                raise InputError(path, message, line=line_number)
    if not gene_to_accession:
        raise InputError(path, "no gene id mappings (header only)")
    return IdMap(gene_to_accession=gene_to_accession, gene_to_symbol=gene_to_symbol)


def _is_header(first: str, second: str | None) -> bool:
    """Whether line `first` names columns rather than mapping a gene (see the module rules)."""
    if _id_fields_have_digits(first):
        return False
    return second is None or _id_fields_have_digits(second)


def _id_fields_have_digits(text: str) -> bool:
    fields = text.split("\t")
    return any(ch.isdigit() for ch in fields[0] + fields[-1])
