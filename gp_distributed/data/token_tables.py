"""Vocabularies as numpy arrays: the fast paths of tokenize.py, giving exactly the tokenizer's ids.

- `ResidueTable`: a per-residue vocabulary (ESM-2's) as a byte -> id table.
- `KmerTable`: a k-mer vocabulary read by the Nucleotide Transformer rule (ours, and NT's own
  `EsmTokenizer` over its 6-mer vocab.txt) as base codes and a k-mer -> id array; `kmer_layout` finds
  where every token of a block of genes lies from the N positions alone, and `kmer_tokens` reads the ids
  of the chosen tokens only (a window's, not the whole gene's).
- `ChunkTable`: a k-mer vocabulary read in a fixed frame from the gene's start (GENERator's
  `DNAKmerTokenizer`): a chunk holding anything but ACGT, and a tail shorter than k, is one `<oov>`.

Both k-mer tables give `token_reader(joined, offsets)`: the token offsets of a block of genes, and a
function from token indices to ids. tokenize.py and directory_tables.py build the tables from a
tokenizer and window with them; nothing here imports a tokenizer.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
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
_UNKNOWN_CODE = 5  # the KmerTable code of a byte outside ACGTN where a run of them is one token
_ASCII_BUT_ANGLE = bytes(b for b in range(128) if b != ord("<"))  # `<` starts the tokenizer's added tokens
TokenReader = Callable[[np.ndarray], np.ndarray]  # token indices (any shape) -> their ids (same shape)


def _kmer_ids(kmer_size: int, vocab: dict[str, int], bases: str) -> np.ndarray:
    """(4^k,) int64: the id of each k-mer over `bases`, indexed by its codes read as a base-4 number."""
    return np.array([vocab["".join(kmer)] for kmer in itertools.product(bases, repeat=kmer_size)], dtype=np.int64)


def _code_table(bases: str, default: int) -> np.ndarray:
    code_by_byte = np.full(256, default, dtype=np.uint8)
    code_by_byte[np.frombuffer(bases.encode(), dtype=np.uint8)] = np.arange(len(bases))
    return code_by_byte


@dataclass(frozen=True)
class KmerTable:
    """A k-mer vocabulary read by the NT rule as arrays, and the special tokens the tokenizer puts before
    and after a sequence (ours: `<cls>` before, nothing after). Bytes outside ACGT read as N (ours), or,
    with an `unknown_id` (NT's `EsmTokenizer`), a run of bytes outside ACGTN within a gene is one token."""

    kmer_size: int
    code_by_byte: np.ndarray  # (256,) uint8: the 4 bases -> 0..3, N -> 4, others -> 4 (as N) or 5 (unknown)
    single_ids: np.ndarray  # (5,) int64 ids of the one-base tokens (bases, then N); (6,) with the unknown id
    kmer_ids: np.ndarray  # (4^k,) int64 id of each k-mer by its codes read as a base-4 number
    prefix: np.ndarray
    suffix: np.ndarray
    readable_bytes: bytes = _ASCII_BUT_ANGLE  # text of other bytes goes to the tokenizer

    @classmethod
    def from_vocab(cls, kmer_size: int, vocab: dict[str, int], bases: str, prefix: np.ndarray, suffix: np.ndarray,
                   *, unknown_id: int | None = None, readable_bytes: bytes = _ASCII_BUT_ANGLE) -> KmerTable:
        """The table of `vocab` (token -> id): it holds every k-mer over the 4 `bases`, and each of the
        bases and "N" as a one-base token (KeyError otherwise). See the class for `unknown_id`."""
        code_by_byte = _code_table(bases + "N", _N_CODE if unknown_id is None else _UNKNOWN_CODE)
        singles = [vocab[base] for base in bases + "N"] + ([] if unknown_id is None else [unknown_id])
        return cls(kmer_size, code_by_byte, np.array(singles, dtype=np.int64), _kmer_ids(kmer_size, vocab, bases),
                   prefix, suffix, readable_bytes)

    def reads(self, joined: bytes) -> bool:
        """Whether the table reads `joined` exactly as the tokenizer does (else: the tokenizer's path)."""
        return not joined.translate(None, self.readable_bytes)

    def token_reader(self, joined: bytes, offsets: np.ndarray) -> tuple[np.ndarray, TokenReader]:
        """(gene token offsets (G + 1,) int64, token indices -> ids) of the genes joined at `offsets`."""
        layout = kmer_layout(joined, self, offsets)
        return layout.gene_tokens, lambda tokens: kmer_tokens(self, layout, tokens.ravel())[1].reshape(tokens.shape)


@dataclass(frozen=True)
class KmerLayout:
    """Where the tokens of DNA sequences are, known from their N positions alone. The bytes are R runs
    of ACGT, each ended by a stop (an N, or a run of unknown bytes: one token), by the end of its gene, or
    both (a stop that ends a gene ends its run); run r reads as n_kmers[r] k-mers, then its tail (fewer
    than k bases) one base a token, then its stop."""

    codes: np.ndarray  # (n,) uint8 KmerTable codes of the bytes (bases 0..3, N 4, unknown 5)
    run_starts: np.ndarray  # (R,) int64 residue offset of each run
    n_kmers: np.ndarray  # (R,) int64 whole k-mers in each run
    first_tokens: np.ndarray  # (R,) int64 token index of each run's first token, non-decreasing
    n_tokens: int
    gene_tokens: np.ndarray  # (G + 1,) int64 token offsets: gene g is tokens [gene_tokens[g], gene_tokens[g + 1])


def kmer_layout(raw: bytes | np.ndarray, table: KmerTable, gene_offsets: np.ndarray | None = None) -> KmerLayout:
    """The token layout of `raw` (n ASCII bytes, or their (n,) uint8 array): one sequence, or G genes
    concatenated at `gene_offsets` ((G + 1,) int64, from 0 to n), each tokenised on its own. One pass
    over the bytes to find the stops, then O(number of stops + G)."""
    if gene_offsets is None:
        gene_offsets = np.array([0, len(raw)], dtype=np.int64)
    codes = np.frombuffer(bytes(raw).translate(table.code_by_byte.tobytes()), dtype=np.uint8)  # ~1.3x take
    stop_starts = np.flatnonzero(codes >= _N_CODE)
    stop_ends = stop_starts + 1
    if len(table.single_ids) > _UNKNOWN_CODE and len(stop_starts):
        # Unknown bytes next to each other in one gene are one stop (EsmTokenizer's trie leaves them one piece).
        unknown = codes.take(stop_starts) == _UNKNOWN_CODE
        joins = (unknown[1:] & unknown[:-1] & (np.diff(stop_starts) == 1)
                 & ~np.isin(stop_starts[1:], gene_offsets))  # stop i + 1 continues stop i
        first = np.flatnonzero(np.append(True, ~joins))
        stop_ends = stop_starts.take(np.append(first[1:], len(stop_starts)) - 1) + 1
        stop_starts = stop_starts.take(first)
    # A run starts at each gene start (key 2s+1) and after each stop (key 2 * its end): sorted by key, a
    # stop that ends a gene comes before the next gene's start, and empty genes keep their order.
    keys = np.concatenate((gene_offsets[:-1] * 2 + 1, stop_ends * 2))
    order = np.argsort(keys, kind="stable")
    keys = keys.take(order)
    stop_lengths = np.concatenate((np.zeros(len(gene_offsets) - 1, np.int64), stop_ends - stop_starts)).take(order)
    run_starts, after_n = keys // 2, keys % 2 == 0
    ends_with_n = np.append(after_n[1:], False)  # the next run starts after the stop that ends this one
    run_ends = np.where(ends_with_n, np.append(run_starts[1:] - stop_lengths[1:], 0),
                        gene_offsets[np.cumsum(~after_n)])
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
    ids[is_kmer] = table.kmer_ids.take(number)
    return starts, ids


UPPERCASE_BYTES = bytes(range(ord("A"), ord("Z") + 1))  # the store's residues


@dataclass(frozen=True)
class ChunkTable:
    """A k-mer vocabulary read in non-overlapping chunks of k from each gene's start (GENERator's
    `DNAKmerTokenizer`): a chunk of k bases is its k-mer's token; a chunk holding any other byte, and a
    tail shorter than k, is one `oov_id` token. Prefix and suffix: the specials around a sequence."""

    kmer_size: int
    code_by_byte: np.ndarray  # (256,) uint8: the 4 bases -> 0..3, any other byte -> 4
    kmer_ids: np.ndarray  # (4^k,) int64 id of each k-mer by its codes read as a base-4 number
    oov_id: int
    prefix: np.ndarray
    suffix: np.ndarray
    readable_bytes: bytes = UPPERCASE_BYTES

    @classmethod
    def from_vocab(cls, kmer_size: int, vocab: dict[str, int], oov_id: int, prefix: np.ndarray,
                   suffix: np.ndarray) -> ChunkTable:
        """The table of `vocab` (token -> id), which holds every k-mer over ACGT (KeyError otherwise)."""
        return cls(kmer_size, _code_table("ACGT", _N_CODE), _kmer_ids(kmer_size, vocab, "ACGT"), oov_id, prefix, suffix)

    def reads(self, joined: bytes) -> bool:
        """Whether the table reads `joined` exactly as the tokenizer does (else: the tokenizer's path)."""
        return not joined.translate(None, self.readable_bytes)

    def token_reader(self, joined: bytes, offsets: np.ndarray) -> tuple[np.ndarray, TokenReader]:
        """(gene token offsets (G + 1,) int64, token indices -> ids) of the genes joined at `offsets`."""
        k = self.kmer_size
        codes = np.frombuffer(joined.translate(self.code_by_byte.tobytes()), dtype=np.uint8)
        gene_tokens = np.concatenate(([0], np.cumsum(-(-np.diff(offsets) // k))))

        def read_ids(tokens: np.ndarray) -> np.ndarray:
            gene = np.searchsorted(gene_tokens, tokens, side="right") - 1
            starts = offsets.take(gene) + (tokens - gene_tokens.take(gene)) * k
            whole = starts + k <= offsets.take(gene + 1)  # a tail shorter than k is <oov>
            number = np.zeros(tokens.shape, dtype=np.uint16)  # base-4 digits, first base most significant
            for offset in range(k):
                # A tail's reads past its gene (or the block) land on any byte: the token is <oov> anyway.
                code = codes.take(np.minimum(starts + offset, len(codes) - 1))
                whole &= code < _N_CODE
                number = (number << 2) | (code & 3)
            return np.where(whole, self.kmer_ids.take(number), self.oov_id)

        return gene_tokens, read_ids


KmerVocabTable = KmerTable | ChunkTable  # the k-mer tables: `reads(joined)` and `token_reader(joined, offsets)`
