"""Vocabularies as numpy arrays: the fast paths of tokenize.py, giving exactly the tokenizer's ids.

- `ResidueTable`: a per-residue vocabulary (ESM-2's) as a byte -> id table.
- `KmerTable`: our DNA k-mer vocabulary (Nucleotide Transformer v2 layout) as base codes and id
  arithmetic; `kmer_layout` finds where every token of a block of genes lies from the N positions alone,
  and `kmer_tokens` reads the ids of the chosen tokens only (a window's, not the whole gene's).

tokenize.py builds the tables from a tokenizer (`residue_table_for`, `kmer_table_for`) and windows
with them; nothing here imports a tokenizer.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ResidueTable:
    """A per-residue vocabulary as arrays: byte -> token id (-1: not a single-residue token), and the
    special tokens the tokenizer puts before and after a sequence."""

    ids_by_byte: np.ndarray  # (256,) int64
    prefix: np.ndarray
    suffix: np.ndarray

    # Cached (in the instance's __dict__, which frozen allows): the stream reads it once per block.
    @functools.cached_property
    def known_bytes(self) -> bytes:
        """The bytes that have a token: `text.translate(None, known_bytes)` is empty iff the table reads all of text."""
        return np.flatnonzero(self.ids_by_byte >= 0).astype(np.uint8).tobytes()


_N_CODE = 4  # the KmerTable code of every byte that reads as N


@dataclass(frozen=True)
class KmerTable:
    """Our DNA k-mer vocabulary (`dna_vocab(kmer_size)`, the NT rule) as arrays, and the special tokens
    the tokenizer puts before and after a sequence (ours: `<cls>` before, nothing after)."""

    kmer_size: int
    code_by_byte: np.ndarray  # (256,) uint8: A T C G -> 0 1 2 3 (vocabulary order), any other byte -> 4 (N)
    single_ids: np.ndarray  # (5,) int64: ids of the one-base tokens A T C G N
    first_kmer_id: int  # id of "A" * kmer_size; the k-mers follow in base-4 order of their codes
    prefix: np.ndarray
    suffix: np.ndarray

    @classmethod
    def from_vocab(cls, kmer_size: int, vocab: dict[str, int], bases: str, prefix: np.ndarray,
                   suffix: np.ndarray) -> KmerTable:
        """The table of `vocab` (token -> id): it holds every k-mer over the 4 `bases`, in base-4 order of
        their codes from bases[0] * kmer_size, and each of the bases and "N" as a one-base token."""
        code_by_byte = np.full(256, _N_CODE, dtype=np.uint8)
        code_by_byte[np.frombuffer(bases.encode(), dtype=np.uint8)] = np.arange(len(bases))
        single_ids = np.array([vocab[base] for base in bases + "N"], dtype=np.int64)
        return cls(kmer_size, code_by_byte, single_ids, vocab[bases[0] * kmer_size], prefix, suffix)


@dataclass(frozen=True)
class KmerLayout:
    """Where the tokens of DNA sequences are, known from their N positions alone. The bytes are R runs
    of ACGT, each ended by an N, by the end of its gene, or both (an N that ends a gene ends its run);
    run r reads as n_kmers[r] k-mers, then its tail (fewer than k bases) one base a token, then its N."""

    codes: np.ndarray  # (n,) uint8 KmerTable codes of the bytes (A T C G -> 0 1 2 3, anything else 4)
    run_starts: np.ndarray  # (R,) int64 residue offset of each run
    n_kmers: np.ndarray  # (R,) int64 whole k-mers in each run
    first_tokens: np.ndarray  # (R,) int64 token index of each run's first token, non-decreasing
    n_tokens: int
    gene_tokens: np.ndarray  # (G + 1,) int64 token offsets: gene g is tokens [gene_tokens[g], gene_tokens[g + 1])


def kmer_layout(raw: bytes | np.ndarray, table: KmerTable, gene_offsets: np.ndarray | None = None) -> KmerLayout:
    """The token layout of `raw` (n ASCII bytes, or their (n,) uint8 array): one sequence, or G genes
    concatenated at `gene_offsets` ((G + 1,) int64, from 0 to n), each tokenised on its own. One pass
    over the bytes to find the Ns, then O(number of Ns + G)."""
    if gene_offsets is None:
        gene_offsets = np.array([0, len(raw)], dtype=np.int64)
    codes = np.frombuffer(bytes(raw).translate(table.code_by_byte.tobytes()), dtype=np.uint8)  # ~1.3x take
    n_positions = np.flatnonzero(codes == _N_CODE)
    # A run starts at each gene start (key 2s+1) and after each N (key 2(p+1)): sorted by key, an N that
    # ends a gene comes before the next gene's start, and empty genes keep their order (stable sort).
    keys = np.sort(np.concatenate((gene_offsets[:-1] * 2 + 1, n_positions * 2 + 2)), kind="stable")
    run_starts, after_n = keys // 2, keys % 2 == 0
    ends_with_n = np.append(after_n[1:], False)  # the next run starts after the N that ends this one
    run_ends = np.where(ends_with_n, np.append(run_starts[1:], 0) - 1, gene_offsets[np.cumsum(~after_n)])
    run_lengths = run_ends - run_starts
    n_kmers = run_lengths // table.kmer_size
    n_run_tokens = n_kmers + run_lengths % table.kmer_size + ends_with_n
    ends = np.cumsum(n_run_tokens)
    first_tokens = ends - n_run_tokens
    gene_tokens = np.append(first_tokens[~after_n], ends[-1])
    return KmerLayout(codes, run_starts, n_kmers, first_tokens, int(ends[-1]), gene_tokens)


def kmer_tokens(table: KmerTable, layout: KmerLayout, token_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(residue offset, id) of the tokens at `token_indices` ((m,) int64, each in [0, n_tokens)) of the
    sequences laid out by `layout`; both (m,) int64. Reads only those tokens' residues."""
    k = table.kmer_size
    # A token's run: the runs starting at or before it, less one (of runs sharing a first token, an
    # empty run and the next, it is in the last). A table over all tokens: ~4x a binary search a token.
    run = np.cumsum(np.bincount(layout.first_tokens, minlength=layout.n_tokens)).take(token_indices) - 1
    # Per run, a token's residue offset is affine in its index: k apart over the k-mers, then 1 apart
    # (the tail's bases, then the N ending the run). (take: ~1.4x [] for these gathers.)
    kmers_end = layout.first_tokens + layout.n_kmers
    is_kmer = token_indices < kmers_end.take(run)
    kmer_base = layout.run_starts - layout.first_tokens * k
    single_base = layout.run_starts + layout.n_kmers * k - kmers_end
    starts = np.where(is_kmer, kmer_base.take(run) + token_indices * k, single_base.take(run) + token_indices)
    ids = table.single_ids.take(layout.codes.take(starts))
    kmer_starts = starts[is_kmer]
    # A k-mer's id: its k base codes as a base-4 number, first base most significant (< 4^8: uint16).
    number = layout.codes.take(kmer_starts).astype(np.uint16) << 2 * (k - 1)
    for offset in range(1, k):
        number |= layout.codes.take(kmer_starts + offset).astype(np.uint16) << 2 * (k - 1 - offset)
    ids[is_kmer] = np.int64(table.first_kmer_id) + number  # an int64 scalar: the sum is int64, not uint16
    return starts, ids
