"""GenePheno as an MLflow pyfunc model, logged from code: this file *is* the model MLflow loads
(`tracking.registry.log_model` passes its path as `python_model`; nothing is pickled). It needs gp_distributed,
torch and transformers where it is loaded, not DeepSpeed or Ray.

Artifacts: the model package of inference/package.py (checkpoint weights and config, tokenizer,
vocabularies, backbone pointer). A preset backbone is rebuilt from its fixed seed; a `backbone_path`
backbone is read from the recorded directory, or from another one given at load time:
`mlflow.pyfunc.load_model(uri, model_config={"backbone_path": "/new/dir"})`.

Signature (`registry.pyfunc_signature`):
- input: a table with `sequence` (str, residues of the model's alphabet, any case, whitespace ignored)
  and optional `go_terms` (str, GO ids separated by ';'; ids outside the model's GO input vocabulary
  are ignored and reported in `unknown_go_terms`);
- output: one row per input row, `probabilities` (list of C floats, the sigmoid phenotype scores in
  the order of the label vocabulary, also in the model's metadata `label_ids`), `top_predictions`
  (JSON string, `explain.explanations_json`: the `top_terms` most probable phenotypes, each with its
  `top_concepts` driving GO concepts), `unknown_go_terms` (str, ';'-separated);
- params: `top_terms` (default 5), `top_concepts` (default 3).
Rows are scored as `inference.package.Predictor.predict` scores genes, in row order.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.models import set_model

from gp_distributed.errors import InputError
from gp_distributed.inference.explain import explain_gene, explanations_json
from gp_distributed.inference.package import InputGene, Predictor
from gp_distributed.tracking.registry import DEFAULT_TOP_CONCEPTS, DEFAULT_TOP_TERMS


def _sequence(value: Any, row: int, alphabet: str) -> bytes:
    text = "".join(str(value).split()).upper() if isinstance(value, str) else ""
    if alphabet == "protein":
        text = text.removesuffix("*")
    if not text or not (text.isascii() and text.isalpha()):
        raise InputError("model input", f"row {row}: `sequence` must be a non-empty string of residue letters")
    return text.encode("ascii")


def _go_terms(value: Any) -> list[str]:
    if not isinstance(value, str):  # missing column value: None or NaN
        return []
    return [term.strip() for term in value.split(";") if term.strip()]


def input_genes(table: pd.DataFrame, alphabet: str) -> list[InputGene]:
    """Rows of the input table as genes named `row<i>`."""
    if "sequence" not in table.columns:
        raise InputError("model input", "the table needs a `sequence` column")
    go_column = table["go_terms"] if "go_terms" in table.columns else [None] * len(table)
    return [InputGene(f"row{i}", _sequence(seq, i, alphabet), _go_terms(go))
            for i, (seq, go) in enumerate(zip(table["sequence"], go_column))]


class GenePhenoPyfunc(mlflow.pyfunc.PythonModel):
    """The pyfunc wrapper of `Predictor` (module docstring for the contract)."""

    predictor: Predictor

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        backbone_path = (context.model_config or {}).get("backbone_path")
        self.predictor = Predictor.from_artifacts(context.artifacts, backbone_path=backbone_path)

    def predict(self, context: mlflow.pyfunc.PythonModelContext, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        params = params or {}
        top_terms = int(params.get("top_terms", DEFAULT_TOP_TERMS))
        top_concepts = int(params.get("top_concepts", DEFAULT_TOP_CONCEPTS))
        vocab = self.predictor.vocabularies
        predictions = self.predictor.predict(input_genes(model_input, vocab.alphabet))
        association = self.predictor.association_matrix()
        explanations = [
            explanations_json(explain_gene(p, a, association, top_terms=top_terms, top_concepts=top_concepts), vocab)
            for p, a in zip(predictions.probabilities, predictions.concept_activations)
        ]
        return pd.DataFrame({
            "probabilities": [row.tolist() for row in predictions.probabilities],
            "top_predictions": explanations,
            "unknown_go_terms": [";".join(terms) for terms in predictions.unknown_go_terms],
        })


set_model(GenePhenoPyfunc())
