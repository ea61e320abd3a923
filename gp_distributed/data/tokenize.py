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
vocabularies also have a numpy path giving exactly the same ids (token_tables.py): a byte -> id table
for per-residue vocabularies (`ResidueTable`), and for the DNA k-mer vocabulary a token layout computed
from the N positions alone (`KmerTable`), from which only the windows' tokens are read. The tokenizers
model directories bring get the same paths where their layout is known: ESM-2's per-residue vocabulary
(`residue_table_for` reads any such tokenizer), NT's 6-mer `EsmTokenizer` and GENERator's
`DNAKmerTokenizer` (directory_tables.py: recognised by class and vocabulary, trusted after a probe);
anything else keeps the tokenizer. `encode_block` and `encode_joined` run these paths over a whole
block of genes at once (the stream's unit), since per-gene numpy calls cost more than the work they do.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from gp_distributed.config import PRESET_ALPHABETS, Alphabet, DataConfig, ModelConfig
from gp_distributed.data.directory_tables import directory_kmer_table, specials_around
from gp_distributed.data.directory_tokenizer import (
    load_directory_tokenizer,
    trusts_tokenizer_code,
)
from gp_distributed.data.token_tables import KmerTable, KmerVocabTable, ResidueTable
from gp_distributed.errors import ConfigError

WindowStrategy = Literal["first", "random", "all"]

# facebook/esm2_* vocab.txt, in id order (esm.data.Alphabet: prepend, residues, append)
PROTEIN_VOCAB: tuple[str, ...] = (
    "<cls>", "<pad>", "<eos>", "<unk>",
    "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K", "Q", "N", "F", "Y", "M", "H", "W", "C",
    "X", "B", "U", "Z", "O", ".", "-", "<null_1>", "<mask>",
)  # fmt: skip
DNA_SPECIAL_TOKENS: tuple[str, ...] = ("<unk>", "<pad>", "<mask>", "<cls>", "<eos>", "<bos>")
DNA_BASES = "ATCG"  # k-mer order of the Nucleotide Transformer vocabulary

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
    `model.trust_remote_code_tokenizer`, or the `model.trust_remote_code` shorthand). Otherwise `build_tokenizer(alphabet, kmer_size)`. A preset built for the
    other alphabet, or a tokenizer without a pad token, is a `ConfigError`.
    """
    preset = model_config.backbone_preset
    if preset is not None and PRESET_ALPHABETS[preset] != alphabet:
        message = f"{preset} reads {PRESET_ALPHABETS[preset]} sequences, the store holds {alphabet}"
        raise ConfigError("config", "model.backbone_preset", message)
    path = model_config.backbone_path
    if path is None or not _has_tokenizer_files(path):
        return build_tokenizer(alphabet, kmer_size)
    tokenizer = load_directory_tokenizer(path, trusts_tokenizer_code(model_config))
    if tokenizer.pad_token_id is None:
        raise ConfigError("config", "model.backbone_path", f"{path}: the tokenizer has no pad token")
    return tokenizer


def residue_table_for(tokenizer: PreTrainedTokenizerBase) -> ResidueTable | None:
    """The lookup table of a tokenizer that maps every uppercase letter to exactly one token, in context
    as alone (ESM-style protein vocabularies); None otherwise (k-mer vocabularies group letters)."""
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
    return ResidueTable(table, *specials_around(tokenizer, int(table[ord("A")])))


def kmer_table_for(tokenizer: PreTrainedTokenizerBase) -> KmerVocabTable | None:
    """The k-mer table of a tokenizer built by `build_tokenizer("dna", k)` (or saved and loaded back):
    vocabulary `dna_vocab(k)` id for id, and our normaliser and pre-tokeniser; or of a model directory's
    NT or GENERator tokenizer (`directory_tables.directory_kmer_table`, checked on a probe). None for
    anything else (protein, an edited vocabulary, other layouts): those keep the tokenizer path."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:  # a Python ("slow") tokenizer, as NT and GENERator directories bring
        return directory_kmer_table(tokenizer)
    if backend.normalizer is None or backend.pre_tokenizer is None:
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
    return KmerTable.from_vocab(kmer_size, vocab, DNA_BASES, *specials_around(tokenizer, vocab["A"]))


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


@dataclass(frozen=True)
class _Windowing:
    """The window arguments of `encode_windows`, and the RNG that "random" draws from."""

    max_seq_len_tokens: int
    strategy: WindowStrategy
    max_windows: int
    rng: np.random.Generator

    def plan(self, n_tokens: np.ndarray, n_special: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(gene, first body-token index), both (W,) int64, of the windows of genes with `n_tokens` ((G,),
        G >= 1) body tokens, in gene order; and the body tokens a window holds (the last may hold fewer).
        ValueError when the arguments leave no room or name no strategy."""
        capacity, max_windows = self.max_seq_len_tokens - n_special, self.max_windows
        if capacity < 1:
            raise ValueError(f"max_seq_len_tokens={self.max_seq_len_tokens} leaves no room beside {n_special} specials")
        if max_windows < 1:
            raise ValueError(f"max_windows must be >= 1, got {max_windows}")
        genes = np.arange(len(n_tokens))
        last_start = np.maximum(n_tokens - capacity, 0)
        if self.strategy == "first":
            return genes, np.zeros(len(genes), dtype=np.int64), capacity
        if self.strategy == "random":
            # One array draw gives exactly the values (and RNG state) of one scalar draw per gene in turn.
            return genes, self.rng.integers(0, last_start + 1), capacity
        if self.strategy != "all":
            raise ValueError(f"unknown window strategy {self.strategy!r} (expected first, random or all)")
        n_windows = np.maximum(-(-n_tokens // capacity), 1)
        capped = n_windows > max_windows
        n_windows[capped] = max_windows
        gene = np.repeat(genes, n_windows)
        starts = (np.arange(len(gene)) - np.repeat(np.cumsum(n_windows) - n_windows, n_windows)) * capacity
        if capped.any():
            # More windows than allowed: spread max_windows full windows evenly from the first to the last
            # token, so the whole gene is still sampled rather than only its beginning.
            spread = [np.linspace(0, last, max_windows).round().astype(np.int64) for last in last_start[capped]]
            starts[capped[gene]] = np.concatenate(spread)
        return gene, starts, capacity


def _per_gene(windows: list[np.ndarray], gene: np.ndarray, n_genes: int) -> list[list[np.ndarray]]:
    """Windows listed in gene order -> one list per gene."""
    if len(windows) == n_genes:  # one window a gene (every strategy but "all")
        return [[window] for window in windows]
    bounds = np.cumsum(np.bincount(gene, minlength=n_genes)).tolist()
    return [windows[lo:hi] for lo, hi in zip([0, *bounds[:-1]], bounds)]


def _table_windows(gene_tokens: np.ndarray, read_ids: Callable[[np.ndarray], np.ndarray], prefix: np.ndarray,
                   suffix: np.ndarray, windowing: _Windowing) -> list[list[np.ndarray]]:
    """Windows of genes whose body tokens are [gene_tokens[g], gene_tokens[g + 1]) of one token sequence;
    `read_ids` maps token indices (any shape) to ids. Every window is the start of a row of one matrix."""
    n_tokens = np.diff(gene_tokens)
    gene, starts, capacity = windowing.plan(n_tokens, len(prefix) + len(suffix))
    lengths = np.minimum(n_tokens[gene] - starts, capacity)
    width = int(lengths.max())
    rows = np.empty((len(gene), len(prefix) + width + len(suffix)), dtype=np.int64)
    rows[:, : len(prefix)] = prefix
    if width:
        tokens = (gene_tokens[gene] + starts)[:, None] + np.arange(width)  # (W, width)
        # Past a window's end: any valid token (the row is cut before it).
        rows[:, len(prefix) : len(prefix) + width] = read_ids(np.minimum(tokens, gene_tokens[-1] - 1))
    ends = lengths + len(prefix)
    for offset, token in enumerate(suffix.tolist()):
        rows[np.arange(len(gene)), ends + offset] = token
    windows = [row[:end] for row, end in zip(rows, (ends + len(suffix)).tolist())]
    return _per_gene(windows, gene, len(n_tokens))


def _tokenizer_windows(raws: list[bytes], tokenizer: PreTrainedTokenizerBase, residue_table: ResidueTable | None,
                       windowing: _Windowing) -> list[list[np.ndarray]]:
    """Windows through the tokenizer, one gene at a time (any tokenizer: the same specials for every gene)."""
    parts = [_tokenize(raw, tokenizer, residue_table) for raw in raws]
    n_tokens = np.array([len(body) for _, body, _ in parts], dtype=np.int64)
    gene, starts, capacity = windowing.plan(n_tokens, len(parts[0][0]) + len(parts[0][2]))
    windows = [np.concatenate([parts[g][0], parts[g][1][start : start + capacity], parts[g][2]])
               for g, start in zip(gene.tolist(), starts.tolist())]
    return _per_gene(windows, gene, len(raws))


def encode_block(
    sequences: Sequence[bytes | np.ndarray],
    tokenizer: PreTrainedTokenizerBase,
    max_seq_len_tokens: int,
    strategy: WindowStrategy,
    max_windows: int,
    rng: np.random.Generator,
    residue_table: ResidueTable | None = None,
    kmer_table: KmerVocabTable | None = None,
) -> list[list[np.ndarray]]:
    """`encode_windows` of each sequence, in order: the same windows and the same `rng` draws as calling
    it once per sequence in turn. On the table paths the block is one numpy computation (per-gene numpy
    calls dominated the training stream); a block holding text that a table does not read the way the
    tokenizer does goes through the tokenizer, gene by gene."""
    raws = [sequence.tobytes() if isinstance(sequence, np.ndarray) else bytes(sequence) for sequence in sequences]
    offsets = np.cumsum([0, *map(len, raws)], dtype=np.int64)
    return encode_joined(b"".join(raws), offsets, tokenizer, max_seq_len_tokens, strategy, max_windows, rng,
                         residue_table, kmer_table)


def encode_joined(
    joined: bytes,
    offsets: np.ndarray,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_len_tokens: int,
    strategy: WindowStrategy,
    max_windows: int,
    rng: np.random.Generator,
    residue_table: ResidueTable | None = None,
    kmer_table: KmerVocabTable | None = None,
) -> list[list[np.ndarray]]:
    """`encode_block` of the G genes `joined[offsets[g] : offsets[g + 1]]` (`offsets`: (G + 1,) int64 from
    0 to len(joined)): a block as the store reads it, tokenised without being cut into genes first."""
    if len(offsets) < 2:
        return []
    windowing = _Windowing(max_seq_len_tokens, strategy, max_windows, rng)
    # The tokenizer matches its added tokens (`<cls>`...) in the raw text and refuses non-ASCII bytes;
    # such text (never in the store) goes to it so that both paths agree on every input.
    if kmer_table is not None and kmer_table.reads(joined):
        gene_tokens, read_ids = kmer_table.token_reader(joined, offsets)
        return _table_windows(gene_tokens, read_ids, kmer_table.prefix, kmer_table.suffix, windowing)
    if residue_table is not None and not joined.translate(None, residue_table.known_bytes):
        codes, ids_by_byte = np.frombuffer(joined, dtype=np.uint8), residue_table.ids_by_byte
        return _table_windows(offsets, lambda tokens: ids_by_byte.take(codes.take(tokens)), residue_table.prefix,
                              residue_table.suffix, windowing)
    raws = [joined[lo:hi] for lo, hi in itertools.pairwise(offsets.tolist())]
    return _tokenizer_windows(raws, tokenizer, residue_table, windowing)


def encode_windows(
    sequence: bytes | np.ndarray,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_len_tokens: int,
    strategy: WindowStrategy,
    max_windows: int,
    rng: np.random.Generator,
    residue_table: ResidueTable | None = None,
    kmer_table: KmerVocabTable | None = None,
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
    so does `kmer_table` (from `kmer_table_for`: our DNA vocabulary, NT's and GENERator's; it wins over
    `residue_table`), reading only the windows' tokens out of the gene.
    """
    return encode_block([sequence], tokenizer, max_seq_len_tokens, strategy, max_windows, rng, residue_table,
                        kmer_table)[0]


@dataclass(frozen=True)
class GeneWindower:
    """`encode_windows` bound to a tokenizer and the data config: `(sequence, rng) -> windows`, and
    `encode_joined` as `.encode_joined(joined, offsets, rng)` (the stream's per-block call).

    This is the stream's `WindowEncoder`; it pickles (a frozen dataclass around a picklable tokenizer).
    """

    tokenizer: PreTrainedTokenizerBase
    max_seq_len_tokens: int
    strategy: WindowStrategy
    max_windows: int
    residue_table: ResidueTable | None = None
    kmer_table: KmerVocabTable | None = None

    @classmethod
    def from_config(cls, tokenizer: PreTrainedTokenizerBase, data_config: DataConfig) -> GeneWindower:
        config = data_config
        return cls(tokenizer, config.max_seq_len_tokens, config.window_strategy, config.max_windows_per_gene,
                   residue_table_for(tokenizer), kmer_table_for(tokenizer))

    def __call__(self, sequence: bytes | np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        return encode_windows(sequence, self.tokenizer, self.max_seq_len_tokens, self.strategy, self.max_windows,
                              rng, self.residue_table, self.kmer_table)

    def encode_joined(self, joined: bytes, offsets: np.ndarray, rng: np.random.Generator) -> list[list[np.ndarray]]:
        return encode_joined(joined, offsets, self.tokenizer, self.max_seq_len_tokens, self.strategy, self.max_windows,
                             rng, self.residue_table, self.kmer_table)
