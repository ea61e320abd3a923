"""`gp predict`: score the genes of a FASTA file (with optional GO annotations and id map) with a trained
model (any form `model_source.load_predictor` takes), write a TSV and a CAFA-format file.

Outputs: TSV `gene term name probability` (header line; per gene, terms at or above
`min_probability`, most probable first) and CAFA `gene term score` (`cafa_format`). Probabilities are
the model's own (not propagated to ancestors; Fmax evaluators, ours and cafaeval, propagate by max).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gp_distributed.commands.model_source import load_predictor
from gp_distributed.errors import InputError
from gp_distributed.evaluation.cafa_format import write_cafa_predictions
from gp_distributed.inference.new_genes import (
    GeneInputs,
    Unknown,
    note_unknown_go,
    read_input_genes,
)
from gp_distributed.inference.package import Predictions, Vocabularies


def write_predictions_tsv(path: Path, predictions: Predictions, vocab: Vocabularies, min_probability: float) -> int:
    """Write `gene term name probability` rows (module docstring); returns the number of data rows."""
    rows = 0
    with Path(path).open("w", encoding="utf-8") as out:
        out.write("gene\tterm\tname\tprobability\n")
        for gene, scores in zip(predictions.gene_ids, predictions.probabilities):
            kept = np.flatnonzero(scores >= min_probability)
            for j in kept[np.argsort(-scores[kept], kind="stable")]:
                out.write(f"{gene}\t{vocab.label_ids[j]}\t{vocab.label_names[j]}\t{float(scores[j])!r}\n")
                rows += 1
    return rows


@dataclass(frozen=True)
class PredictSummary:
    genes: int
    tsv_rows: int
    cafa_rows: int
    unknown: dict[str, Unknown]


def run_predict(model: str, inputs: GeneInputs, out_tsv: Path, *, cafa: Path | None = None,
                store: Path | None = None, tracking_uri: str | None = None, min_probability: float = 0.01,
                batch_size: int | None = None, show_progress: bool = True) -> PredictSummary:
    """`gp predict`: load the model, read the inputs, predict in batches, write the TSV (and CAFA file)."""
    predictor = load_predictor(model, store=store, tracking_uri=tracking_uri)
    vocab = predictor.vocabularies
    genes, unknown = read_input_genes(inputs, vocab)
    if not genes:
        raise InputError(inputs.fasta, "no gene to score (check the id map)")
    predictions = predictor.predict(genes, batch_size=batch_size, show_progress=show_progress)
    note_unknown_go(predictions, unknown)
    Path(out_tsv).parent.mkdir(parents=True, exist_ok=True)
    rows = write_predictions_tsv(out_tsv, predictions, vocab, min_probability)
    cafa_rows = 0
    if cafa is not None:
        Path(cafa).parent.mkdir(parents=True, exist_ok=True)
        cafa_rows = write_cafa_predictions(cafa, predictions.gene_ids, vocab.label_ids,
                                           predictions.probabilities.astype(np.float64), min_probability)
    return PredictSummary(len(genes), rows, cafa_rows, dict(unknown))
