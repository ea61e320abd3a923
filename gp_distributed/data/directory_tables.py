"""Numpy k-mer tables for the tokenizers that model directories bring, recognised by their class and
vocabulary layout and trusted only once they give the tokenizer's own ids on a probe:

- Nucleotide Transformer (v1 and v2): `EsmTokenizer` over a vocab.txt of `<...>` specials, every k-mer
  over ACGT and the one-base tokens A C G T N. Its added-token trie reads a sequence by the NT rule
  (k-mers left to right, restarting after each N, a run's tail one base a token), and leaves a run of
  other letters as one piece, one `<unk>`: a `KmerTable` with an unknown id.
- GENERator: `DNAKmerTokenizer` (its own remote code) over a vocab.txt of `<...>` specials then every
  k-mer over ACGT: non-overlapping chunks of k from the start, a chunk holding anything but ACGT and a
  tail shorter than k each one `<oov>`: a `ChunkTable`.

Anything else, or a tokenizer whose probe ids differ (other remote code than the layout suggests), gets
None: it keeps the tokenizer path. The tables read uppercase letters only; other text goes to the tokenizer.
ESM-2's per-residue vocabulary needs nothing here: tokenize.`residue_table_for` reads any such tokenizer.
"""

from __future__ import annotations

import numpy as np
from transformers import EsmTokenizer, PreTrainedTokenizerBase

from gp_distributed.data.token_tables import UPPERCASE_BYTES, ChunkTable, KmerTable

_BASES = "ACGT"
# Bytes a probe draws from: bases mostly, N, the other IUPAC codes, and letters outside any DNA alphabet.
_PROBE_BYTES = np.frombuffer(b"ACGT" * 6 + b"NN" + b"RYSWKMBDHVU" + b"EFIJLOPQXZ", dtype=np.uint8)


def specials_around(tokenizer: PreTrainedTokenizerBase, body_id: int, text: str = "A") -> tuple[np.ndarray, np.ndarray]:
    """(prefix, suffix): the special tokens the tokenizer puts before and after a sequence, found from
    where the one token of `text` (`body_id`) lands among them."""
    specials = np.asarray(tokenizer("", add_special_tokens=True)["input_ids"], dtype=np.int64)
    n_prefix = list(tokenizer(text, add_special_tokens=True)["input_ids"]).index(body_id)
    return specials[:n_prefix], specials[n_prefix:]


def _kmer_layout(vocab: dict[str, int]) -> int | None:
    """k when the vocabulary's non-special tokens (specials are `<...>`) are every k-mer over ACGT
    (k >= 2), plus any of the one-base tokens A C G T N; None otherwise."""
    plain = [token for token in vocab if not (token.startswith("<") and token.endswith(">"))]
    lengths = {len(token) for token in plain} - {1}
    if len(lengths) != 1:
        return None
    k = lengths.pop()
    singles = {token for token in plain if len(token) == 1}
    if k > 8 or not singles <= set(_BASES + "N") or len(plain) - len(singles) != 4**k:
        return None
    if any(set(token) - set(_BASES) for token in plain if len(token) == k):
        return None
    return k


def _probe_genes(kmer_size: int) -> list[bytes]:
    """Genes that tell the layouts apart: empty, base runs around k, N and unknown runs, adjacent and at
    both ends, and a random mixture (fixed seed)."""
    k = kmer_size
    rng, run = np.random.default_rng(14), b"ACGT" * (k + 1)
    genes = [b"", b"N", b"NN", b"R", b"RY", b"RNR", b"ACGTN", b"NACGT" * k, b"GATTACA" * 3 + b"YR"]
    genes += [run[:length] for length in (1, k - 1, k, k + 1, 2 * k + 3)]
    genes += [b"ACRYGTACGTNRNNACGTACGTAC", b"E" + b"TGCA" * k + b"QQ" + b"TTTTTTTTTT" + b"V"]
    genes += [rng.choice(_PROBE_BYTES, size=size).tobytes() for size in (97, 300, 301)]
    return genes


def _agrees(table: KmerTable | ChunkTable, tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the table gives the tokenizer's ids (specials included) for every probe gene, read as one
    block (so gene boundaries are probed too)."""
    genes = _probe_genes(table.kmer_size)
    offsets = np.cumsum([0, *map(len, genes)], dtype=np.int64)
    gene_tokens, read_ids = table.token_reader(b"".join(genes), offsets)
    ids = read_ids(np.arange(gene_tokens[-1], dtype=np.int64)).tolist()
    for gene, lo, hi in zip(genes, gene_tokens[:-1].tolist(), gene_tokens[1:].tolist()):
        expected = list(tokenizer(gene.decode("ascii"), add_special_tokens=True)["input_ids"])
        if expected != [*table.prefix.tolist(), *ids[lo:hi], *table.suffix.tolist()]:
            return False
    return True


def _nt_table(tokenizer: EsmTokenizer, vocab: dict[str, int]) -> KmerTable | None:
    k = _kmer_layout(vocab)
    if k is None or not set(_BASES + "N") <= vocab.keys() or tokenizer.unk_token_id is None:
        return None
    prefix, suffix = specials_around(tokenizer, vocab["A"])
    return KmerTable.from_vocab(k, vocab, _BASES, prefix, suffix, unknown_id=tokenizer.unk_token_id,
                                readable_bytes=UPPERCASE_BYTES)


def _generator_table(tokenizer: PreTrainedTokenizerBase, vocab: dict[str, int]) -> ChunkTable | None:
    k = _kmer_layout(vocab)
    oov_id = vocab.get("<oov>", tokenizer.unk_token_id)
    if k is None or oov_id is None or getattr(tokenizer, "k", k) != k:
        return None
    prefix, suffix = specials_around(tokenizer, vocab["A" * k], "A" * k)
    return ChunkTable.from_vocab(k, vocab, int(oov_id), prefix, suffix)


def directory_kmer_table(tokenizer: PreTrainedTokenizerBase) -> KmerTable | ChunkTable | None:
    """The k-mer table of a model directory's NT or GENERator tokenizer (module docstring), or None."""
    vocab = tokenizer.get_vocab()
    table: KmerTable | ChunkTable | None = None
    try:
        if isinstance(tokenizer, EsmTokenizer):
            table = _nt_table(tokenizer, vocab)
        elif type(tokenizer).__name__ == "DNAKmerTokenizer":  # remote code: known by its name only
            table = _generator_table(tokenizer, vocab)
    except ValueError:  # specials_around: the probe's token is not where the layout says
        return None
    return table if table is not None and _agrees(table, tokenizer) else None
