"""Scoring a trained model on files it has never seen (FASTA + labels + GO +
ontology), read with the ingest readers but mapped onto the MODEL's vocabularies, never re-derived.

Labels are resolved through the given phenotype ontology (alt ids, replacements), propagated to
ancestors (true-path rule) and restricted to the model's label vocabulary; GO annotations go through
`new_genes.read_input_genes` (the model's GO input vocabulary and evidence exclusions). Evaluated genes
are those with a sequence and at least one label term the model knows, as `gp ingest` keeps genes.
Metrics are `metrics.evaluate_by_bin` with the model's frequency bins, label parents and
training-split information content, so the table reads like `gp evaluate` on the training store.

Everything left out is reported by reason, with a count of distinct items and examples: label genes
without a sequence, label terms unknown or obsolete in the ontology, label terms outside the model's
vocabulary (their known ancestors still count), genes without any known term, GO ids the ontology or the
model's GO vocabulary lacks, and the rows the label reader itself skipped.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gp_distributed.errors import InputError
from gp_distributed.evaluation.metrics import evaluate_by_bin
from gp_distributed.inference.new_genes import (
    GeneInputs,
    Unknown,
    note_unknown_go,
    read_input_genes,
)
from gp_distributed.inference.package import Predictor
from gp_distributed.ingest.labels import LabelFormat, read_labels
from gp_distributed.ontology.obo import load_ontology


@dataclass(frozen=True)
class LabelInputs:
    labels: Path
    labels_format: LabelFormat
    ontology: Path  # the phenotype ontology (HP or MP OBO) the label file refers to
    mgi_targeted_only: bool = False


@dataclass(frozen=True)
class NewDataEvaluation:
    results: dict[str, dict[str, float | int]]  # evaluate_by_bin: subset -> metric -> value
    gene_ids: list[str]  # evaluated genes, in FASTA order
    y_true: np.ndarray  # (N, C) uint8, propagated labels on the model's vocabulary
    y_score: np.ndarray  # (N, C) float32 probabilities
    unknown: dict[str, Unknown]


def _add_distinct(unknown: dict[str, Unknown], reason: str, items: list[str]) -> None:
    for item in dict.fromkeys(items):  # distinct, first-seen order
        unknown[reason].add(item)


def label_matrix(labels: LabelInputs, gene_ids: list[str], label_ids: list[str],
                 unknown: dict[str, Unknown]) -> np.ndarray:
    """(len(gene_ids), C) uint8 propagated labels of `gene_ids` on the vocabulary `label_ids`;
    what cannot be placed is added to `unknown` (module docstring)."""
    phenotypes = load_ontology(labels.ontology, relations=("is_a",))
    table = read_labels(labels.labels, labels.labels_format, mgi_targeted_only=labels.mgi_targeted_only)
    for reason, count in table.skipped.items():
        unknown[f"label rows skipped by the reader: {reason}"].count += count
    row_of = {gene: row for row, gene in enumerate(gene_ids)}
    column_of = {term: column for column, term in enumerate(label_ids)}
    direct: dict[str, set[str]] = defaultdict(set)
    without_sequence, unresolved = [], []
    for record in table.records:
        if record.gene_id not in row_of:
            without_sequence.append(record.gene_id)
            continue
        term = phenotypes.resolve(record.term_id)
        if term is None:
            unresolved.append(record.term_id)
            continue
        direct[record.gene_id].add(term)
    _add_distinct(unknown, "label genes without a sequence (not scored)", without_sequence)
    _add_distinct(unknown, "label terms unknown or obsolete in the ontology", unresolved)
    matrix = np.zeros((len(gene_ids), len(label_ids)), dtype=np.uint8)
    outside = []
    for gene, terms in direct.items():
        outside += sorted(t for t in terms if t not in column_of)
        columns = [column_of[t] for t in phenotypes.propagate(terms) if t in column_of]
        matrix[row_of[gene], columns] = 1
    _add_distinct(unknown, "label terms outside the model's vocabulary (known ancestors kept)", outside)
    return matrix


def evaluate_new_data(predictor: Predictor, inputs: GeneInputs, labels: LabelInputs, *,
                      batch_size: int | None = None, show_progress: bool = True) -> NewDataEvaluation:
    """Read the new files onto the model's vocabularies, predict the evaluable genes, score them."""
    vocab = predictor.vocabularies
    genes, unknown = read_input_genes(inputs, vocab)
    y_true = label_matrix(labels, [g.gene_id for g in genes], vocab.label_ids, unknown)
    evaluable = y_true.any(axis=1)
    _add_distinct(unknown, "genes without any phenotype term the model knows (not evaluated)",
                  [g.gene_id for g, keep in zip(genes, evaluable) if not keep])
    kept = [g for g, keep in zip(genes, evaluable) if keep]
    if not kept:
        raise InputError(labels.labels, "no gene has both a sequence and a phenotype term of the model's vocabulary")
    predictions = predictor.predict(kept, batch_size=batch_size, show_progress=show_progress)
    note_unknown_go(predictions, unknown)
    y_true = y_true[evaluable]
    results = evaluate_by_bin(
        y_true, predictions.probabilities, np.asarray(vocab.label_bins), vocab.bin_labels,
        information_content=np.asarray(vocab.information_content), parents=vocab.label_parents,
    )
    return NewDataEvaluation(results, predictions.gene_ids, y_true, predictions.probabilities, dict(unknown))


def new_data_report(evaluation: NewDataEvaluation, model: str, inputs: GeneInputs, labels: LabelInputs) -> dict[str, Any]:
    """The JSON-ready report of an evaluation (for `scoring.write_report`)."""
    return {
        "model": model,
        "inputs": {k: str(v) for k, v in {**inputs.__dict__, **labels.__dict__}.items() if v is not None},
        "genes_evaluated": len(evaluation.gene_ids),
        "results": evaluation.results,
        "left_out": {reason: {"count": u.count, "examples": u.examples} for reason, u in evaluation.unknown.items()},
    }
