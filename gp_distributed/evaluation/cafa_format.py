"""CAFA-format files, as read by the `cafaeval` package (1.3.0), and their readers.

Formats (whitespace-separated, one record per line; cafaeval splits lines on any whitespace, so ids
must not contain any):
- predictions: `gene_id  term_id  score`, score in [0, 1]; a pair listed twice keeps its max; pairs not
  listed score 0. CAFA submission headers (AUTHOR, MODEL, KEYWORDS, END) are skipped on reading.
- ground truth: `gene_id  term_id`; only genes with >= 1 true term appear (cafaeval evaluates exactly
  the genes listed here).
- ontology: a minimal OBO 1.2 file of the label vocabulary, every term in one namespace with its is_a
  parents. cafaeval needs it because it drops every term without a `namespace:` line, and the HPO and
  MP releases carry only a `default-namespace` header (so the raw hp.obo gives cafaeval no terms at all);
  restricting it to our vocabulary also keeps cafaeval from propagating into terms we never score.
- information accretion: `term_id  ic_bits` (cafaeval's `-ia` file, for weighted metrics and Smin).

Scores are written with Python's shortest round-trip float repr, so cafaeval compares exactly the
values our metrics saw.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gp_distributed.errors import InputError

_CAFA_HEADER_KEYS = frozenset({"AUTHOR", "MODEL", "KEYWORDS", "END"})


@dataclass(frozen=True)
class CafaMatrix:
    """A CAFA file read onto a fixed (gene, term) vocabulary."""

    values: np.ndarray  # (N, C): float64 scores, or bool ground truth
    skipped_lines: int  # records naming a gene or term outside the vocabulary (cafaeval ignores them too)


def _check_ids(kind: str, ids: Sequence[str], expected: int) -> None:
    if len(ids) != expected:
        raise ValueError(f"{len(ids)} {kind} ids for {expected} matrix {kind}s")
    for identifier in ids:
        if not identifier or any(character.isspace() for character in identifier):
            raise ValueError(f"{kind} id {identifier!r} is empty or has whitespace (CAFA files split on it)")


def write_cafa_predictions(
    path: Path, gene_ids: Sequence[str], term_ids: Sequence[str], y_score: np.ndarray, min_score: float = 0.0
) -> int:
    """Write `gene term score` for every score >= min_score, genes in order; returns the lines written.

    y_score: (N, C) probabilities in [0, 1]. Omitted pairs read back as 0 in cafaeval, so any
    min_score at or below the lowest evaluated threshold leaves Fmax and Smin unchanged.
    """
    scores = np.asarray(y_score, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"y_score must be (N, C), got {scores.shape}")
    _check_ids("gene", gene_ids, scores.shape[0])
    _check_ids("term", term_ids, scores.shape[1])
    if np.isnan(scores).any() or scores.min(initial=0.0) < 0.0 or scores.max(initial=0.0) > 1.0:
        raise ValueError("y_score must hold probabilities in [0, 1] (apply a sigmoid to logits)")
    written = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for gene, row in zip(gene_ids, scores):
            kept = np.flatnonzero(row >= min_score)
            out.writelines(f"{gene}\t{term_ids[j]}\t{score!r}\n" for j, score in zip(kept, row[kept].tolist()))
            written += kept.size
    return written


def write_cafa_ground_truth(path: Path, gene_ids: Sequence[str], term_ids: Sequence[str], y_true: np.ndarray) -> int:
    """Write `gene term` for every true label; returns the lines written. y_true: (N, C) binary."""
    labels = np.asarray(y_true).astype(bool)
    if labels.ndim != 2:
        raise ValueError(f"y_true must be (N, C), got {labels.shape}")
    _check_ids("gene", gene_ids, labels.shape[0])
    _check_ids("term", term_ids, labels.shape[1])
    genes, terms = np.nonzero(labels)
    with Path(path).open("w", encoding="utf-8") as out:
        out.writelines(f"{gene_ids[g]}\t{term_ids[t]}\n" for g, t in zip(genes.tolist(), terms.tolist()))
    return int(genes.size)


def write_cafa_ontology(
    path: Path,
    term_ids: Sequence[str],
    parents: Sequence[Sequence[int]],
    *,
    term_names: Sequence[str] | None = None,
    namespace: str = "phenotype",
) -> None:
    """Write the vocabulary as an OBO file cafaeval reads: one [Term] per term, `is_a` per parent index."""
    _check_ids("term", term_ids, len(parents))
    if term_names is not None and len(term_names) != len(term_ids):
        raise ValueError(f"{len(term_names)} term names for {len(term_ids)} terms")
    stanzas = [f"format-version: 1.2\ndefault-namespace: {namespace}\n"]
    for index, term in enumerate(term_ids):
        lines = ["[Term]", f"id: {term}"]
        if term_names is not None:
            lines.append(f"name: {' '.join(term_names[index].split())}")
        lines.append(f"namespace: {namespace}")
        lines += [f"is_a: {term_ids[parent]}" for parent in parents[index]]
        stanzas.append("\n".join(lines) + "\n")
    Path(path).write_text("\n".join(stanzas), encoding="utf-8")


def write_cafa_information_accretion(path: Path, term_ids: Sequence[str], information_content: np.ndarray) -> None:
    """Write `term ic_bits` per term (cafaeval's `-ia` file). information_content: (C,) bits."""
    ic = np.asarray(information_content, dtype=np.float64)
    _check_ids("term", term_ids, ic.shape[0])
    with Path(path).open("w", encoding="utf-8") as out:
        out.writelines(f"{term}\t{value!r}\n" for term, value in zip(term_ids, ic.tolist()))


def _records(path: Path, min_fields: int) -> Iterator[tuple[int, list[str]]]:
    """(1-based line number, fields) of each record, skipping blank lines and CAFA headers."""
    try:
        handle = Path(path).open(encoding="utf-8")
    except OSError as error:
        raise InputError(path, f"cannot read: {error.strerror}") from None
    line_number = 0
    with handle:
        try:
            for line_number, line in enumerate(handle, start=1):
                fields = line.split()
                if not fields or fields[0] in _CAFA_HEADER_KEYS:
                    continue
                if len(fields) < min_fields:
                    message = f"expected at least {min_fields} whitespace-separated fields"
                    raise InputError(path, message, line=line_number)
                yield line_number, fields
        except UnicodeDecodeError:
            raise InputError(path, "not UTF-8 text", line=line_number + 1) from None


def read_cafa_predictions(path: Path, gene_ids: Sequence[str], term_ids: Sequence[str]) -> CafaMatrix:
    """Read a prediction file onto (len(gene_ids), len(term_ids)) float64 scores (max over duplicates).

    Raises InputError (path:line) for a short line or a score that is not a number in [0, 1].
    """
    gene_index = {gene: i for i, gene in enumerate(gene_ids)}
    term_index = {term: j for j, term in enumerate(term_ids)}
    scores = np.zeros((len(gene_ids), len(term_ids)))
    skipped = 0
    for line_number, fields in _records(path, 3):
        try:
            score = float(fields[2])
        except ValueError:
            raise InputError(path, f"score {fields[2]!r} is not a number", line=line_number) from None
        if not 0.0 <= score <= 1.0:
            raise InputError(path, f"score {fields[2]} is outside [0, 1]", line=line_number)
        i, j = gene_index.get(fields[0]), term_index.get(fields[1])
        if i is None or j is None:
            skipped += 1
            continue
        scores[i, j] = max(scores[i, j], score)
    return CafaMatrix(values=scores, skipped_lines=skipped)


def read_cafa_ground_truth(path: Path, gene_ids: Sequence[str], term_ids: Sequence[str]) -> CafaMatrix:
    """Read a ground-truth file onto a (len(gene_ids), len(term_ids)) bool matrix (not propagated)."""
    gene_index = {gene: i for i, gene in enumerate(gene_ids)}
    term_index = {term: j for j, term in enumerate(term_ids)}
    labels = np.zeros((len(gene_ids), len(term_ids)), dtype=bool)
    skipped = 0
    for _, fields in _records(path, 2):
        i, j = gene_index.get(fields[0]), term_index.get(fields[1])
        if i is None or j is None:
            skipped += 1
            continue
        labels[i, j] = True
    return CafaMatrix(values=labels, skipped_lines=skipped)
