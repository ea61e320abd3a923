"""Splits are deterministic, respect their fractions, and the stratified method spreads rare terms."""

import numpy as np

from gp_distributed.config import SplitConfig
from gp_distributed.data.schema import TEST, TRAIN, VALID
from gp_distributed.ingest.splits import assign_splits, hash_split

GENES = [f"gene{i}" for i in range(2000)]


def test_hash_split_is_stable_and_near_its_fractions() -> None:
    config = SplitConfig(valid_fraction=0.1, test_fraction=0.2, seed=3)
    a = hash_split(GENES, config)
    assert np.array_equal(a, hash_split(list(reversed(GENES)), config)[::-1])  # per-gene, order-free
    assert abs(np.mean(a == TEST) - 0.2) < 0.03
    assert abs(np.mean(a == VALID) - 0.1) < 0.03
    # A gene keeps its split when others are removed (stable across releases).
    assert np.array_equal(hash_split(GENES[:500], config), a[:500])
    assert not np.array_equal(hash_split(GENES, SplitConfig(valid_fraction=0.1, test_fraction=0.2, seed=4)), a)


def test_stratified_split_puts_rare_terms_in_every_split() -> None:
    rng = np.random.default_rng(0)
    n_terms = 30
    # Term t is carried by 10 + 3t genes; a hash split often leaves a 10-gene term out of valid or test.
    gene_terms = [[] for _ in GENES]
    for term in range(n_terms):
        for gene in rng.choice(len(GENES), size=10 + 3 * term, replace=False):
            gene_terms[gene].append(term)
    gene_terms = [sorted(t) or [n_terms - 1] for t in gene_terms]
    config = SplitConfig(method="stratified", valid_fraction=0.1, test_fraction=0.1, seed=0)
    splits = assign_splits(GENES, gene_terms, n_terms, config)
    assert np.array_equal(splits, assign_splits(GENES, gene_terms, n_terms, config))
    for term in range(n_terms):
        carriers = [g for g, terms in enumerate(gene_terms) if term in terms]
        for split in (TRAIN, VALID, TEST):
            assert np.sum(splits[carriers] == split) >= 1, (term, split)
    assert abs(np.mean(splits == TRAIN) - 0.8) < 0.02
