"""`gp explain`: which GO concepts drive each predicted phenotype (tables: `inference.explain`), with a
concept -> phenotype heatmap, optionally logged to an MLflow run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gp_distributed.commands.model_source import load_predictor
from gp_distributed.evaluation.plots import plot_concept_heatmap
from gp_distributed.inference.explain import (
    write_association_table,
    write_gene_explanations,
)
from gp_distributed.inference.new_genes import GeneInputs, read_input_genes
from gp_distributed.tracking.tracker import Tracker


@dataclass(frozen=True)
class ExplainResult:
    gene_table: Path
    association_table: Path
    heatmap: Path
    genes: int
    gene_rows: int


def run_explain(model: str, inputs: GeneInputs, out_dir: Path, *, store: Path | None = None,
                tracking_uri: str | None = None, top_terms: int = 10, top_concepts: int = 5,
                min_probability: float = 0.5, heatmap_terms: int = 30, tracker: Tracker | None = None,
                show_progress: bool = True) -> ExplainResult:
    """`gp explain`: predict the genes of `inputs`, write `gene_explanations.tsv`,
    `concept_phenotype_associations.tsv` and `concept_heatmap.png` into `out_dir`, and log them under
    `explain/` of the tracker's run when a tracker is given. The heatmap shows the `heatmap_terms`
    terms with the highest mean predicted probability over these genes."""
    predictor = load_predictor(model, store=store, tracking_uri=tracking_uri)
    vocab = predictor.vocabularies
    genes, _ = read_input_genes(inputs, vocab)
    predictions = predictor.predict(genes, show_progress=show_progress)
    association = predictor.association_matrix()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gene_table = out_dir / "gene_explanations.tsv"
    rows = write_gene_explanations(gene_table, predictions, association, vocab, top_terms=top_terms,
                                   top_concepts=top_concepts, min_probability=min_probability)
    association_table = out_dir / "concept_phenotype_associations.tsv"
    write_association_table(association_table, association, vocab)
    top = np.argsort(-predictions.probabilities.mean(axis=0), kind="stable")[:heatmap_terms]
    heatmap = plot_concept_heatmap(association, vocab.concept_ids, vocab.concept_names, vocab.label_names, top,
                                   out_dir / "concept_heatmap.png")
    if tracker is not None:
        for path in (gene_table, association_table, heatmap):
            tracker.log_artifact(path, "explain")
    return ExplainResult(gene_table, association_table, heatmap, len(genes), rows)
