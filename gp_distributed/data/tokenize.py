"""Sequences -> token-id windows, with Hugging Face tokenizers (fast, Rust `tokenizers` backends).

Two vocabularies, both saved to / loaded from a directory with `save_pretrained` / `from_pretrained`:

- protein: the ESM-2 vocabulary exactly (33 tokens, `PROTEIN_VOCAB`), one token per residue, each
  window written `<cls> residues <eos>` as ESM-2 does. Residues outside the vocabulary become `<unk>`.
- dna: the Nucleotide Transformer v2 vocabulary for k=6 exactly (4107 tokens):
  `<unk> <pad> <mask> <cls> <eos> <bos>`, the 4^k k-mers over ATCG in `itertools.product("ATCG")` order,
  then the single nucleotides A T C G N. Like NT, a sequence is read left to right in non-overlapping
  k-mers; an N cuts the k-mer frame (it is its own token, the k-mers restart after it), and the rest of
  an ACGT run shorter than k becomes single-nucleotide tokens. Any other IUPAC code (R Y S W K M B D H V U)
  is read as N: a model trained on ACGTN has no better token for an ambiguous base. Each window is
  written `<cls> tokens` (NT prepends `<cls>` and appends nothing). GENERator differs: its 6-mer
  vocabulary turns a k-mer holding an N, and a tail shorter than 6, into one `<oov>` token; a GENERator
  checkpoint loaded from a directory brings its own tokenizer, which `encode_windows` handles as well.

Input sequences are uppercase ASCII (the store's contract). Tokenising a whole gene through the Hugging
Face wrapper to keep one window dominated the training stream (docs/benchmarks.md), so both of our
vocabularies also have a numpy path giving exactly the same ids: a byte -> id table for per-residue
vocabularies (`ResidueTable`), and for the DNA k-mer vocabulary a token layout computed from the N
positions alone (`KmerTable`), from which only the window's tokens are read.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from gp_distributed.config import DataConfig, ModelConfig
from gp_distributed.errors import ConfigError

Alphabet = Literal["protein", "dna"]
WindowStrategy = Literal["first", "random", "all"]

# facebook/esm2_* vocab.txt, in id order (esm.data.Alphabet: prepend, residues, append)
PROTEIN_VOCAB: tuple[str, ...] = (
    "<cls>", "<pad>", "<eos>", "<unk>",
    "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K", "Q", "N", "F", "Y", "M", "H", "W", "C",
    "X", "B", "U", "Z", "O", ".", "-", "<null_1>", "<mask>",
)  # fmt: skip
DNA_SPECIAL_TOKENS: tuple[str, ...] = ("<unk>", "<pad>", "<mask>", "<cls>", "<eos>", "<bos>")
DNA_BASES = "ATCG"  # k-mer order of the Nucleotide Transformer vocabulary

# Which alphabet each in-process backbone preset reads (model/backbone.py builds them).
PRESET_ALPHABETS: dict[str, Alphabet] = {
    "tiny-protein": "protein",
    "esm2-35m": "protein",
    "tiny-dna": "dna",
    "nt-500m": "dna",
    "generator-1.2b": "dna",
}

# Files whose presence marks a Hugging Face tokenizer saved in a model directory.
_TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "vocab.txt")


def dna_vocab(kmer_size: int) -> list[str]:
    """Token strings of the DNA vocabulary in id order (NT v2 order; 4107 tokens for k=6)."""
    kmers = ["".join(bases) for bases in itertools.product(DNA_BASES, repeat=kmer_size)]
    singles = [base for base in DNA_BASES + "N" if base not in kmers]  # k=1: A T C G are already k-mers
    return [*DNA_SPECIAL_TOKENS, *kmers, *singles]


def _protein_backend() -> tuple[Tokenizer, dict[str, str]]:
    vocab = {token: index for index, token in enumerate(PROTEIN_VOCAB)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")  # one token per residue
    backend.post_processor = processors.TemplateProcessing(
        single="<cls> $A <eos>", special_tokens=[("<cls>", vocab["<cls>"]), ("<eos>", vocab["<eos>"])]
    )
    specials = {"cls_token": "<cls>", "pad_token": "<pad>", "eos_token": "<eos>", "unk_token": "<unk>"}
    return backend, specials | {"mask_token": "<mask>"}


def _dna_normalizer() -> normalizers.Normalizer:
    return normalizers.Replace(Regex("[^ACGT]"), "N")


def _dna_pre_tokenizer(kmer_size: int) -> pre_tokenizers.PreTokenizer:
    # At each position: a full ACGT k-mer if one starts here, else one character. This is NT's
    # split-on-N-then-chunk rule written as one left-to-right regex scan.
    return pre_tokenizers.Split(Regex(f"[ACGT]{{{kmer_size}}}|."), behavior="isolated")


def _dna_backend(kmer_size: int) -> tuple[Tokenizer, dict[str, str]]:
    vocab = {token: index for index, token in enumerate(dna_vocab(kmer_size))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.normalizer = _dna_normalizer()
    backend.pre_tokenizer = _dna_pre_tokenizer(kmer_size)
    backend.post_processor = processors.TemplateProcessing(
        single="<cls> $A", special_tokens=[("<cls>", vocab["<cls>"])]
    )
    specials = {"cls_token": "<cls>", "pad_token": "<pad>", "eos_token": "<eos>", "unk_token": "<unk>"}
    return backend, specials | {"mask_token": "<mask>", "bos_token": "<bos>"}


def build_tokenizer(alphabet: Alphabet, kmer_size: int = 6) -> PreTrainedTokenizerFast:
    """A fresh tokenizer for `alphabet` ("protein": ESM-2 vocabulary; "dna": k-mers, NT v2 layout).

    `kmer_size` is used for "dna" only. The result saves with `save_pretrained(dir)` and loads back
    with `AutoTokenizer.from_pretrained(dir)` (a tokenizer.json, no custom code).
    """
    if alphabet == "protein":
        backend, specials = _protein_backend()
    elif alphabet == "dna":
        if not 1 <= kmer_size <= 8:
            raise ValueError(f"kmer_size must be in 1..8, got {kmer_size}")
        backend, specials = _dna_backend(kmer_size)
    else:
        raise ValueError(f"unknown alphabet {alphabet!r} (expected 'protein' or 'dna')")
    return PreTrainedTokenizerFast(tokenizer_object=backend, **specials)


def _has_tokenizer_files(directory: Path) -> bool:
    return any((directory / name).is_file() for name in _TOKENIZER_FILES)


def tokenizer_for(model_config: ModelConfig, alphabet: Alphabet, kmer_size: int) -> PreTrainedTokenizerBase:
    """The tokenizer a run uses for a store of `alphabet`.

    A backbone directory that holds a tokenizer provides it (local files only; custom code only with
    `model.trust_remote_code`). Otherwise `build_tokenizer(alphabet, kmer_size)`. A preset built for the
    other alphabet, or a tokenizer without a pad token, is a `ConfigError`.
    """
    preset = model_config.backbone_preset
    if preset is not None and PRESET_ALPHABETS[preset] != alphabet:
        message = f"{preset} reads {PRESET_ALPHABETS[preset]} sequences, the store holds {alphabet}"
        raise ConfigError("config", "model.backbone_preset", message)
    path = model_config.backbone_path
    if path is None or not _has_tokenizer_files(path):
        return build_tokenizer(alphabet, kmer_size)
    tokenizer = AutoTokenizer.from_pretrained(
        path, local_files_only=True, trust_remote_code=model_config.trust_remote_code
    )
    if tokenizer.pad_token_id is None:
        raise ConfigError("config", "model.backbone_path", f"{path}: the tokenizer has no pad token")
    return tokenizer


@dataclass(frozen=True)
class ResidueTable:
    """A per-residue vocabulary as arrays: byte -> token id (-1: not a single-residue token), and the
    special tokens the tokenizer puts before and after a sequence."""

    ids_by_byte: np.ndarray  # (256,) int64
    prefix: np.ndarray
    suffix: np.ndarray


def residue_table_for(tokenizer: PreTrainedTokenizerBase) -> ResidueTable | None:
    """The lookup table of a tokenizer that maps every uppercase letter to exactly one token, in context
    as alone (ESM-style protein vocabularies); None otherwise (k-mer vocabularies group letters).

    Tokenising a whole gene through the Hugging Face wrapper to keep one window costs ~0.5 ms a gene and
    dominated the training stream (docs/benchmarks.md); a table lookup gives the same ids.
    """
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    probe = letters + letters[::-1] + "AAAAAAAAAAAA"
    in_context = tokenizer(probe, add_special_tokens=False)["input_ids"]
    if len(in_context) != len(probe):
        return None
    table = np.full(256, -1, dtype=np.int64)
    for letter, token_id in zip(probe, in_context):
        table[ord(letter)] = token_id
    unk = tokenizer.unk_token_id
    if unk is not None:
        table[table == unk] = -1  # letters the vocabulary lacks: leave them to the tokenizer
    if table[ord("A")] < 0:
        return None
    return ResidueTable(table, *_specials_around(tokenizer, int(table[ord("A")])))


def _specials_around(tokenizer: PreTrainedTokenizerBase, a_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(prefix, suffix): the special tokens the tokenizer puts before and after a sequence, found from
    where the token of "A" (`a_id`) lands among them."""
    specials = np.asarray(tokenizer("", add_special_tokens=True)["input_ids"], dtype=np.int64)
    n_prefix = list(tokenizer("A", add_special_tokens=True)["input_ids"]).index(a_id)
    return specials[:n_prefix], specials[n_prefix:]


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


def kmer_table_for(tokenizer: PreTrainedTokenizerBase) -> KmerTable | None:
    """The k-mer table of a tokenizer built by `build_tokenizer("dna", k)` (or saved and loaded back):
    vocabulary `dna_vocab(k)` id for id, and our normaliser and pre-tokeniser. None for anything else
    (protein, GENERator's own tokenizer, an edited vocabulary): those keep the tokenizer path."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or backend.normalizer is None or backend.pre_tokenizer is None:
        return None

    def state(component: normalizers.Normalizer | pre_tokenizers.PreTokenizer) -> object:
        return json.loads(component.__getstate__())  # its tokenizer.json entry

    pre_tokenizer = state(backend.pre_tokenizer)
    kmer_size = next((k for k in range(1, 9) if pre_tokenizer == state(_dna_pre_tokenizer(k))), None)
    if kmer_size is None or state(backend.normalizer) != state(_dna_normalizer()):
        return None
    vocab = {token: index for index, token in enumerate(dna_vocab(kmer_size))}
    if tokenizer.get_vocab() != vocab:
        return None
    code_by_byte = np.full(256, _N_CODE, dtype=np.uint8)
    code_by_byte[np.frombuffer(DNA_BASES.encode(), dtype=np.uint8)] = np.arange(len(DNA_BASES))
    single_ids = np.array([vocab[base] for base in DNA_BASES + "N"], dtype=np.int64)
    prefix, suffix = _specials_around(tokenizer, vocab["A"])
    return KmerTable(kmer_size, code_by_byte, single_ids, vocab["A" * kmer_size], prefix, suffix)


@dataclass(frozen=True)
class KmerLayout:
    """Where the tokens of one DNA sequence are, known from its N positions alone. The sequence is R
    runs of ACGT separated by R - 1 Ns; run r reads as n_kmers[r] k-mers, then its tail (fewer than k
    bases) one base a token, then the N that ends it."""

    run_starts: np.ndarray  # (R,) int64 residue offset of each run
    n_kmers: np.ndarray  # (R,) int64 whole k-mers in each run
    first_tokens: np.ndarray  # (R,) int64 token index of each run's first token, strictly increasing
    n_tokens: int


def kmer_layout(codes: np.ndarray, table: KmerTable) -> KmerLayout:
    """The token layout of `codes` ((n,) uint8, ASCII bytes of a sequence): one pass over the bytes to
    find the Ns, then O(number of Ns)."""
    n_positions = np.flatnonzero(table.code_by_byte.take(codes) == _N_CODE)  # take: ~1.7x [] on 100 kbp
    run_starts = np.concatenate(([0], n_positions + 1))
    run_lengths = np.concatenate((n_positions, [len(codes)])) - run_starts
    n_kmers = run_lengths // table.kmer_size
    n_run_tokens = n_kmers + run_lengths % table.kmer_size + 1  # + the N ending it (the last run: none)
    run_ends = np.cumsum(n_run_tokens)
    return KmerLayout(run_starts, n_kmers, run_ends - n_run_tokens, int(run_ends[-1]) - 1)


def kmer_tokens(
    codes: np.ndarray, table: KmerTable, layout: KmerLayout, token_indices: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(residue offset, id) of the tokens at `token_indices` ((m,) int64, each in [0, n_tokens)) of the
    sequence `codes` laid out by `layout`; both (m,) int64. Reads only those tokens' residues."""
    k = table.kmer_size
    run = np.searchsorted(layout.first_tokens, token_indices, side="right") - 1
    local = token_indices - layout.first_tokens[run]  # token index within its run
    n_kmers = layout.n_kmers[run]
    is_kmer = local < n_kmers
    # After a run's k-mers every token is one residue long: the tail's bases, then the N ending the run.
    starts = layout.run_starts[run] + np.where(is_kmer, local * k, local + n_kmers * (k - 1))
    ids = table.single_ids[table.code_by_byte[codes[starts]]]
    digits = table.code_by_byte[codes[starts[is_kmer, None] + np.arange(k)]].astype(np.int64)  # (m_kmers, k)
    ids[is_kmer] = table.first_kmer_id + digits @ (4 ** np.arange(k - 1, -1, -1))
    return starts, ids


def _tokenize(raw: bytes, tokenizer: PreTrainedTokenizerBase,
              table: ResidueTable | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prefix specials, body ids, suffix specials) of one sequence."""
    if table is not None:
        body = table.ids_by_byte[np.frombuffer(raw, dtype=np.uint8)]
        if not (body < 0).any():
            return table.prefix, body, table.suffix
    encoded = tokenizer(raw.decode("ascii"), add_special_tokens=True, return_special_tokens_mask=True)
    ids = np.asarray(encoded["input_ids"], dtype=np.int64)
    is_special = np.asarray(encoded["special_tokens_mask"], dtype=bool)
    # The specials the tokenizer adds sit at both ends; everything between them is the body.
    n_prefix = int(np.argmin(is_special)) if not is_special.all() else len(ids)
    n_suffix = int(np.argmin(is_special[::-1])) if not is_special.all() else 0
    return ids[:n_prefix], ids[n_prefix : len(ids) - n_suffix], ids[len(ids) - n_suffix :]


def _window_starts(
    n_tokens: int, capacity: int, strategy: WindowStrategy, max_windows: int, rng: np.random.Generator
) -> list[int]:
    """First body-token index of each window (`capacity` body tokens each, the last may be shorter)."""
    last_start = max(n_tokens - capacity, 0)
    if strategy == "first":
        return [0]
    if strategy == "random":
        return [int(rng.integers(0, last_start + 1))]
    if strategy != "all":
        raise ValueError(f"unknown window strategy {strategy!r} (expected first, random or all)")
    n_windows = max(-(-n_tokens // capacity), 1)
    if n_windows <= max_windows:
        return [index * capacity for index in range(n_windows)]
    # More windows than allowed: spread max_windows full windows evenly from the first to the last
    # token, so the whole gene is still sampled rather than only its beginning.
    return [int(start) for start in np.linspace(0, last_start, max_windows).round()]


def _capacity(max_seq_len_tokens: int, n_special: int, max_windows: int) -> int:
    """Body tokens per window; ValueError when the window arguments leave no room."""
    if max_seq_len_tokens - n_special < 1:
        raise ValueError(f"max_seq_len_tokens={max_seq_len_tokens} leaves no room beside {n_special} specials")
    if max_windows < 1:
        raise ValueError(f"max_windows must be >= 1, got {max_windows}")
    return max_seq_len_tokens - n_special


def _kmer_windows(
    codes: np.ndarray, table: KmerTable, max_seq_len_tokens: int, strategy: WindowStrategy, max_windows: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """`encode_windows` through the k-mer table: the same window starts (same `rng` draws) from the
    token count alone, then the ids of the windows' tokens only."""
    layout = kmer_layout(codes, table)
    capacity = _capacity(max_seq_len_tokens, len(table.prefix) + len(table.suffix), max_windows)
    windows = []
    for start in _window_starts(layout.n_tokens, capacity, strategy, max_windows, rng):
        _, ids = kmer_tokens(codes, table, layout, np.arange(start, min(start + capacity, layout.n_tokens)))
        windows.append(np.concatenate([table.prefix, ids, table.suffix]))
    return windows


def encode_windows(
    sequence: bytes | np.ndarray,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_len_tokens: int,
    strategy: WindowStrategy,
    max_windows: int,
    rng: np.random.Generator,
    residue_table: ResidueTable | None = None,
    kmer_table: KmerTable | None = None,
) -> list[np.ndarray]:
    """One gene's sequence -> token-id windows, each (T_w,) int64 incl. special tokens, T_w <= max_seq_len_tokens.

    The sequence (uppercase ASCII bytes, or a uint8 array of them) is tokenised once; its body tokens are
    cut into windows of `max_seq_len_tokens - (special tokens per window)` tokens, and each window gets
    the tokenizer's own special tokens (`<cls> ... <eos>` for protein, `<cls> ...` for DNA):
    - "first": the first window only;
    - "random": one window at a uniformly drawn token offset (`rng`), the whole body if it fits;
    - "all": consecutive windows covering the body; if that takes more than `max_windows`, then
      `max_windows` full windows at evenly spaced offsets from the start to the end instead.
    Always at least one window (an empty sequence gives the special tokens alone). `residue_table`
    (from `residue_table_for`, per-residue vocabularies only) gives the same ids without the tokenizer;
    so does `kmer_table` (from `kmer_table_for`, our DNA vocabulary only; it wins over `residue_table`),
    reading only the windows' tokens out of the gene.
    """
    raw = sequence.tobytes() if isinstance(sequence, np.ndarray) else bytes(sequence)
    # The tokenizer matches its added tokens (`<cls>`...) in the raw text and refuses non-ASCII bytes;
    # such text (never in the store) goes to it so that both paths agree on every input.
    if kmer_table is not None and raw.isascii() and b"<" not in raw:
        codes = np.frombuffer(raw, dtype=np.uint8)
        return _kmer_windows(codes, kmer_table, max_seq_len_tokens, strategy, max_windows, rng)
    prefix, body, suffix = _tokenize(raw, tokenizer, residue_table)
    capacity = _capacity(max_seq_len_tokens, len(prefix) + len(suffix), max_windows)
    starts = _window_starts(len(body), capacity, strategy, max_windows, rng)
    return [np.concatenate([prefix, body[start : start + capacity], suffix]) for start in starts]


@dataclass(frozen=True)
class GeneWindower:
    """`encode_windows` bound to a tokenizer and the data config: `(sequence, rng) -> windows`.

    This is the stream's `WindowEncoder`; it pickles (a frozen dataclass around a picklable tokenizer).
    """

    tokenizer: PreTrainedTokenizerBase
    max_seq_len_tokens: int
    strategy: WindowStrategy
    max_windows: int
    residue_table: ResidueTable | None = None
    kmer_table: KmerTable | None = None

    @classmethod
    def from_config(cls, tokenizer: PreTrainedTokenizerBase, data_config: DataConfig) -> GeneWindower:
        config = data_config
        return cls(tokenizer, config.max_seq_len_tokens, config.window_strategy, config.max_windows_per_gene,
                   residue_table_for(tokenizer), kmer_table_for(tokenizer))

    def __call__(self, sequence: bytes | np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        return encode_windows(
            sequence, self.tokenizer, self.max_seq_len_tokens, self.strategy, self.max_windows, rng,
            self.residue_table, self.kmer_table,
        )
