"""Explanations: head weight x concept activation, ranked, on hand-computed arrays and on the real head."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gp_distributed.inference.explain import (
    explain_gene,
    explanations_json,
    write_association_table,
    write_gene_explanations,
)
from gp_distributed.inference.package import Predictions, Vocabularies
from gp_distributed.model.head import PhenotypeHead

# 3 concepts x 2 terms
ASSOCIATION = np.array([[2.0, -1.0], [0.5, 3.0], [-4.0, 1.0]], dtype=np.float32)


def _vocab() -> Vocabularies:
    return Vocabularies(
        alphabet="protein", label_ids=["HP:1", "HP:2"], label_names=["one", "two"], label_parents=[[], [0]],
        label_n_genes=[20, 12], label_bins=[0, 0], bin_labels=["11-30"], information_content=[0.0, 0.7],
        go_input_ids=["GO:9"], go_input_names=["nine"], concept_ids=["GO:1", "GO:2", "GO:3"],
        concept_names=["c one", "c two", "c three"], go_evidence_exclude=["IMP", "IGI"],
    )


def test_terms_are_ranked_by_probability_and_concepts_by_contribution() -> None:
    activations = np.array([0.5, 1.0, 0.25], dtype=np.float32)
    probabilities = np.array([0.4, 0.9], dtype=np.float32)
    explained = explain_gene(probabilities, activations, ASSOCIATION, top_terms=2, top_concepts=2)
    assert [e.term for e in explained] == [1, 0]
    # term 1: contributions -0.5, 3.0, 0.25 -> concepts 1 then 2
    assert [(c.concept, c.contribution) for c in explained[0].concepts] == [(1, 3.0), (2, 0.25)]
    # term 0: contributions 1.0, 0.5, -1.0 -> concepts 0 then 1
    assert [(c.concept, c.weight, c.activation) for c in explained[1].concepts] == [(0, 2.0, 0.5), (1, 0.5, 1.0)]


def test_min_probability_and_top_terms_limit_the_terms() -> None:
    activations = np.ones(3, dtype=np.float32)
    probabilities = np.array([0.4, 0.9], dtype=np.float32)
    assert [e.term for e in explain_gene(probabilities, activations, ASSOCIATION, top_terms=5, top_concepts=1,
                                         min_probability=0.5)] == [1]
    assert [e.term for e in explain_gene(probabilities, activations, ASSOCIATION, top_terms=1, top_concepts=1)] == [1]


def test_contributions_and_bias_sum_to_the_head_logit() -> None:
    torch.manual_seed(0)
    head = PhenotypeHead(n_concepts=6, n_labels=4)
    activations = torch.rand(6)
    logits = head(activations.unsqueeze(0))[0].detach().numpy()
    association = head.association_matrix().numpy()
    explained = explain_gene(np.linspace(0.9, 0.1, 4), activations.numpy(), association, top_terms=4, top_concepts=6)
    bias = head.linear.bias.detach().numpy()
    for term in explained:
        total = sum(c.contribution for c in term.concepts) + bias[term.term]
        assert total == pytest.approx(float(logits[term.term]), abs=1e-5)


def test_json_names_terms_and_concepts() -> None:
    explained = explain_gene(np.array([0.4, 0.9]), np.array([0.5, 1.0, 0.25]), ASSOCIATION, top_terms=1, top_concepts=1)
    payload = json.loads(explanations_json(explained, _vocab()))
    assert payload == [{"term": "HP:2", "name": "two", "probability": 0.9, "concepts": [
        {"concept": "GO:2", "name": "c two", "activation": 1.0, "weight": 3.0, "contribution": 3.0}]}]


def test_gene_table_rows(tmp_path: Path) -> None:
    predictions = Predictions(["g1", "g2"], np.array([[0.4, 0.9], [0.6, 0.1]], dtype=np.float32),
                              np.array([[0.5, 1.0, 0.25], [1.0, 0.0, 0.0]], dtype=np.float32), [[], []])
    path = tmp_path / "genes.tsv"
    rows = write_gene_explanations(path, predictions, ASSOCIATION, _vocab(), top_terms=2, top_concepts=1,
                                   min_probability=0.5)
    lines = path.read_text().splitlines()
    assert rows == 2 and len(lines) == 3
    assert lines[0].split("\t") == ["gene", "term", "term_name", "probability", "rank", "concept", "concept_name",
                                    "activation", "weight", "contribution"]
    assert lines[1].split("\t") == ["g1", "HP:2", "two", "0.9", "1", "GO:2", "c two", "1", "3", "3"]
    assert lines[2].split("\t") == ["g2", "HP:1", "one", "0.6", "1", "GO:1", "c one", "1", "2", "2"]


def test_association_table_orders_weights_within_each_term(tmp_path: Path) -> None:
    path = tmp_path / "assoc.tsv"
    assert write_association_table(path, ASSOCIATION, _vocab(), top_per_term=2) == 4
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:]]
    assert [(r[0], r[2], r[4]) for r in rows] == [("GO:1", "HP:1", "2"), ("GO:2", "HP:1", "0.5"),
                                                  ("GO:2", "HP:2", "3"), ("GO:3", "HP:2", "1")]
    assert write_association_table(path, ASSOCIATION, _vocab()) == 6
