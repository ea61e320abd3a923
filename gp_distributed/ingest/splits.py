"""Deterministic train / valid / test assignment of genes (pure functions, no I/O).

- `hash`: each gene falls in a split by sha256(seed:gene_id), so a gene keeps its split when other
  genes are added or removed (stable across dataset releases).
- `stratified`: a greedy rarest-label-first stratification (a simplified iterative stratification,
  Sechidis et al. 2011): genes are visited from the one whose rarest term is rarest, in hash order within
  ties, and each goes to the split that is furthest below its target share of that term, then of genes.
  Rare terms therefore land in every split in proportion, which a plain hash split cannot promise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from gp_distributed.config import SplitConfig
from gp_distributed.data.schema import SPLIT_NAMES, TEST, TRAIN, VALID


def gene_hash_fraction(gene_id: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by (seed, gene_id).

    The "gp-split" prefix keeps it independent of other sha256-of-id orders (the demo subset picks its
    genes by the smallest sha256("seed:id"), which would otherwise put every demo gene in one split).
    """
    digest = hashlib.sha256(f"gp-split:{seed}:{gene_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def hash_split(gene_ids: Sequence[str], config: SplitConfig) -> np.ndarray:
    fractions = np.array([gene_hash_fraction(g, config.seed) for g in gene_ids])
    splits = np.full(len(gene_ids), TRAIN, dtype=np.uint8)
    splits[fractions < config.test_fraction + config.valid_fraction] = VALID
    splits[fractions < config.test_fraction] = TEST
    return splits


def stratified_split(
    gene_ids: Sequence[str], gene_terms: Sequence[Sequence[int]], n_terms: int, config: SplitConfig
) -> np.ndarray:
    """Greedy rarest-label-first stratification; `gene_terms[i]` are term indices of gene i."""
    targets = np.array([1.0 - config.valid_fraction - config.test_fraction, config.valid_fraction, config.test_fraction])
    term_totals = np.zeros(n_terms, dtype=np.int64)
    for terms in gene_terms:
        term_totals[list(terms)] += 1
    rarest = [min(terms, key=lambda t: (term_totals[t], t)) if len(terms) else -1 for terms in gene_terms]
    order = sorted(
        range(len(gene_ids)),
        key=lambda i: (term_totals[rarest[i]] if rarest[i] >= 0 else np.iinfo(np.int64).max,
                       gene_hash_fraction(gene_ids[i], config.seed)),
    )
    term_counts = np.zeros((3, n_terms), dtype=np.int64)
    split_sizes = np.zeros(3, dtype=np.int64)
    splits = np.empty(len(gene_ids), dtype=np.uint8)
    for placed, gene in enumerate(order):
        gene_deficit = targets * (placed + 1) - split_sizes
        if rarest[gene] >= 0:
            term = rarest[gene]
            term_deficit = targets * term_totals[term] - term_counts[:, term]
        else:
            term_deficit = np.zeros(3)
        # Splits with a zero target never receive genes; ties resolved by the gene-count deficit.
        candidates = [s for s in range(3) if targets[s] > 0]
        chosen = max(candidates, key=lambda s: (term_deficit[s], gene_deficit[s], -s))
        splits[gene] = chosen
        split_sizes[chosen] += 1
        term_counts[chosen, list(gene_terms[gene])] += 1
    return splits


def assign_splits(
    gene_ids: Sequence[str], gene_terms: Sequence[Sequence[int]], n_terms: int, config: SplitConfig
) -> np.ndarray:
    """(n_genes,) uint8 split codes (0 train, 1 valid, 2 test) by the configured method."""
    if config.method == "hash":
        return hash_split(gene_ids, config)
    return stratified_split(gene_ids, gene_terms, n_terms, config)


def split_counts(splits: np.ndarray) -> Mapping[str, int]:
    return {name: int(np.sum(splits == code)) for code, name in enumerate(SPLIT_NAMES)}
