"""Why the model predicts what it predicts: the GO-concept bottleneck read through the phenotype head.

A phenotype's logit is linear in the concept activations: s_j = sum_i w_ij * a_i + b_j, with w the head's
association matrix (n, C) and a the gene's bottleneck activations (n,). The contribution of concept i
to phenotype j for a gene is w_ij * a_i; the concepts that *drive* a prediction are those with the
largest positive contributions (they raise the logit most). Contributions plus the bias sum to the logit.

Outputs (tab-separated, one header line):
- per gene (`write_gene_explanations`): gene, term, term_name, probability, rank, concept, concept_name,
  activation, weight, contribution; for each gene, its `top_terms` most probable terms at or above
  `min_probability`, and for each term its `top_concepts` largest contributions;
- globally (`write_association_table`): concept, concept_name, term, term_name, weight, all (concept,
  term) pairs or the `top_per_term` largest weights of each term, terms in vocabulary order and
  weights in decreasing order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gp_distributed.inference.package import Predictions, Vocabularies

_GENE_HEADER = "gene\tterm\tterm_name\tprobability\trank\tconcept\tconcept_name\tactivation\tweight\tcontribution\n"
_ASSOCIATION_HEADER = "concept\tconcept_name\tterm\tterm_name\tweight\n"


@dataclass(frozen=True)
class ConceptContribution:
    concept: int  # concept index
    activation: float  # a_i, in [0, 1]
    weight: float  # w_ij
    contribution: float  # w_ij * a_i, this concept's share of the phenotype logit


@dataclass(frozen=True)
class TermExplanation:
    term: int  # label index
    probability: float
    concepts: list[ConceptContribution]  # largest contribution first


def explain_gene(probabilities: np.ndarray, activations: np.ndarray, association: np.ndarray, *,
                 top_terms: int, top_concepts: int, min_probability: float = 0.0) -> list[TermExplanation]:
    """The `top_terms` most probable terms (probability >= min_probability) of one gene, each with its
    `top_concepts` largest contributions. probabilities (C,), activations (n,), association (n, C)."""
    order = np.argsort(-probabilities, kind="stable")[:top_terms]
    explanations = []
    for term in order[probabilities[order] >= min_probability]:
        contributions = association[:, term] * activations  # (n,)
        best = np.argsort(-contributions, kind="stable")[:top_concepts]
        concepts = [ConceptContribution(int(i), float(activations[i]), float(association[i, term]),
                                        float(contributions[i])) for i in best]
        explanations.append(TermExplanation(int(term), float(probabilities[term]), concepts))
    return explanations


def explanations_json(explanations: Sequence[TermExplanation], vocab: Vocabularies) -> str:
    """[{"term", "name", "probability", "concepts": [{"concept", "name", "activation", "weight",
    "contribution"}]}] as a JSON string (the pyfunc model's `top_predictions` column)."""
    payload = [
        {"term": vocab.label_ids[e.term], "name": vocab.label_names[e.term], "probability": e.probability,
         "concepts": [{"concept": vocab.concept_ids[c.concept], "name": _concept_name(vocab, c.concept),
                       "activation": c.activation, "weight": c.weight, "contribution": c.contribution}
                      for c in e.concepts]}
        for e in explanations
    ]
    return json.dumps(payload)


def _concept_name(vocab: Vocabularies, index: int) -> str:
    return vocab.concept_names[index] if vocab.concept_names else ""


def write_gene_explanations(path: Path, predictions: Predictions, association: np.ndarray, vocab: Vocabularies, *,
                            top_terms: int = 10, top_concepts: int = 5, min_probability: float = 0.5) -> int:
    """Write the per-gene table (module docstring); returns the number of data rows."""
    rows = 0
    with Path(path).open("w", encoding="utf-8") as out:
        out.write(_GENE_HEADER)
        for gene, probabilities, activations in zip(predictions.gene_ids, predictions.probabilities,
                                                    predictions.concept_activations):
            explained = explain_gene(probabilities, activations, association, top_terms=top_terms,
                                     top_concepts=top_concepts, min_probability=min_probability)
            for rank, term in enumerate(explained, start=1):
                for c in term.concepts:
                    out.write(f"{gene}\t{vocab.label_ids[term.term]}\t{vocab.label_names[term.term]}\t"
                              f"{term.probability:.6g}\t{rank}\t{vocab.concept_ids[c.concept]}\t"
                              f"{_concept_name(vocab, c.concept)}\t{c.activation:.6g}\t{c.weight:.6g}\t"
                              f"{c.contribution:.6g}\n")
                    rows += 1
    return rows


def write_association_table(path: Path, association: np.ndarray, vocab: Vocabularies,
                            top_per_term: int | None = None) -> int:
    """Write the global concept -> phenotype table (module docstring); returns the number of data rows."""
    rows = 0
    with Path(path).open("w", encoding="utf-8") as out:
        out.write(_ASSOCIATION_HEADER)
        for term in range(association.shape[1]):
            order = np.argsort(-association[:, term], kind="stable")[:top_per_term]
            for i in order:
                out.write(f"{vocab.concept_ids[i]}\t{_concept_name(vocab, int(i))}\t{vocab.label_ids[term]}\t"
                          f"{vocab.label_names[term]}\t{association[i, term]:.6g}\n")
                rows += 1
    return rows
