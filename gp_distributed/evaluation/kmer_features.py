"""Normalised overlapping k-mer composition of sequences, the feature space of the k-mer baselines.

Each sequence becomes one row of a sparse matrix over the |A|^k possible k-mers of its alphabet
(column = the k-mer read as a base-|A| number, letters in `ALPHABETS` order, first letter most
significant). A k-mer containing any other character (X, U, B, Z in proteins; N in DNA; gaps) is
skipped; lower case counts as upper case (soft-masked DNA). The whole computation is vectorised:
bytes -> codes by a lookup table, k shifted passes build the rolling integer codes, scipy sums
duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from gp_distributed.config import Alphabet

ALPHABETS: dict[str, bytes] = {
    "protein": b"ACDEFGHIKLMNPQRSTVWY",  # the 20 standard amino acids
    "dna": b"ACGT",
}
DEFAULT_K: dict[str, int] = {"protein": 3, "dna": 6}

# Column indices stay int32 in scipy below this, and the output width stays a sane allocation.
_MAX_KMER_SPACE = 2**31 - 1
# Residues per vectorised pass: bounds the int64 temporaries to ~10 bytes per residue of a chunk.
_CHUNK_RESIDUES = 1 << 24


def kmer_space_size(k: int, alphabet: Alphabet) -> int:
    """Number of columns of `kmer_composition(..., k, alphabet)`, i.e. |A|^k."""
    return len(ALPHABETS[alphabet]) ** k


def kmer_composition(
    sequences: Sequence[bytes], k: int | None = None, alphabet: Alphabet = "protein"
) -> sp.csr_matrix:
    """Overlapping k-mer frequencies of each sequence.

    Args:
        sequences: N sequences as ASCII bytes (one letter per residue / base).
        k: k-mer length; None takes `DEFAULT_K[alphabet]` (protein 3, DNA 6).
        alphabet: "protein" (20 standard amino acids) or "dna" (ACGT).

    Returns:
        (N, |A|^k) float32 CSR matrix; row i holds count(kmer) / (number of valid k-mers of
        sequence i), so non-empty rows sum to 1. A sequence shorter than k or without any valid
        k-mer gives an all-zero row. Columns are sorted within each row.

    Raises:
        ValueError: unknown alphabet, k < 1, or |A|^k too large for int32 column indices.
    """
    if alphabet not in ALPHABETS:
        raise ValueError(f"unknown alphabet {alphabet!r}; expected one of {sorted(ALPHABETS)}")
    k = DEFAULT_K[alphabet] if k is None else k
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n_columns = kmer_space_size(k, alphabet)
    if n_columns > _MAX_KMER_SPACE:
        raise ValueError(f"k={k} gives {n_columns} {alphabet} k-mers, more than {_MAX_KMER_SPACE}")

    lookup = _code_lookup(alphabet)
    blocks = [
        _count_block(sequences[start:stop], k, lookup, len(ALPHABETS[alphabet]))
        for start, stop in _chunk_bounds([len(s) for s in sequences])
    ]
    if not blocks:
        return sp.csr_matrix((0, n_columns), dtype=np.float32)
    counts = sp.vstack(blocks, format="csr")
    totals = np.asarray(counts.sum(axis=1)).ravel()
    # Divide each stored value by its row total; empty rows store nothing, so no 0/0 happens.
    counts.data /= np.repeat(totals, np.diff(counts.indptr)).astype(np.float32)
    return counts


def _code_lookup(alphabet: Alphabet) -> np.ndarray:
    """(256,) uint8 table: byte -> letter code in 0..|A|-1, every other byte -> |A| (invalid)."""
    letters = ALPHABETS[alphabet]
    lookup = np.full(256, len(letters), dtype=np.uint8)
    for code, letter in enumerate(letters):
        lookup[letter] = code
        lookup[ord(chr(letter).lower())] = code
    return lookup


def _chunk_bounds(lengths: list[int]) -> list[tuple[int, int]]:
    """Consecutive [start, stop) sequence ranges of at most ~_CHUNK_RESIDUES residues each."""
    bounds: list[tuple[int, int]] = []
    start, residues = 0, 0
    for index, length in enumerate(lengths):
        if residues and residues + length > _CHUNK_RESIDUES:
            bounds.append((start, index))
            start, residues = index, 0
        residues += length + 1
    if start < len(lengths):
        bounds.append((start, len(lengths)))
    return bounds


def _count_block(sequences: Sequence[bytes], k: int, lookup: np.ndarray, n_letters: int) -> sp.csr_matrix:
    """(len(sequences), n_letters**k) float32 CSR of raw k-mer counts for one chunk."""
    n_columns = n_letters**k
    # A separator byte between sequences is an invalid code, so no k-mer spans two sequences.
    flat = lookup[np.frombuffer(b"\0".join(sequences) + b"\0", dtype=np.uint8)]  # (R,)
    row_of_position = np.repeat(
        np.arange(len(sequences), dtype=np.int32), [len(s) + 1 for s in sequences]
    )  # (R,)
    n_starts = flat.size - k + 1
    if n_starts <= 0:
        return sp.csr_matrix((len(sequences), n_columns), dtype=np.float32)

    invalid = np.concatenate(([0], np.cumsum(flat == n_letters, dtype=np.int64)))  # (R + 1,)
    valid = invalid[k : k + n_starts] == invalid[:n_starts]  # window [i, i + k) all valid
    starts = np.flatnonzero(valid)
    codes = np.zeros(starts.size, dtype=np.int64)
    for offset in range(k):  # k passes, each over all windows at once
        codes *= n_letters
        codes += flat[starts + offset]
    counts = sp.coo_matrix(
        (np.ones(starts.size, dtype=np.float32), (row_of_position[starts], codes)),
        shape=(len(sequences), n_columns),
    ).tocsr()  # tocsr sums the duplicates: one stored count per distinct k-mer
    counts.sort_indices()
    return counts
