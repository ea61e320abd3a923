"""The DNA k-mer fast path (numpy, window tokens only) gives exactly the Hugging Face tokenizer's windows."""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from gp_distributed.config import DataConfig
from gp_distributed.data.token_tables import kmer_layout, kmer_tokens
from gp_distributed.data.tokenize import (
    DNA_SPECIAL_TOKENS,
    GeneWindower,
    build_tokenizer,
    dna_vocab,
    encode_block,
    encode_windows,
    kmer_table_for,
)

KMER_SIZES = (1, 2, 3, 6)
STRATEGIES = ("first", "random", "all")
# ACGT mostly, N, the other IUPAC codes, and uppercase ASCII outside any DNA alphabet
SEQUENCE_BYTES = "ACGT" * 8 + "NNRYSWKMBDHVU" + "X-*.0 \n"


@functools.cache
def dna(kmer_size: int) -> PreTrainedTokenizerFast:
    return build_tokenizer("dna", kmer_size)


def both_paths(sequence: bytes, kmer_size: int, max_len: int, strategy: str, max_windows: int, seed: int):
    """(fast windows, tokenizer windows, fast rng state after, tokenizer rng state after)."""
    tok = dna(kmer_size)
    table = kmer_table_for(tok)
    assert table is not None
    fast_rng, slow_rng = np.random.default_rng(seed), np.random.default_rng(seed)
    fast = encode_windows(sequence, tok, max_len, strategy, max_windows, fast_rng, kmer_table=table)
    slow = encode_windows(sequence, tok, max_len, strategy, max_windows, slow_rng, residue_table=None, kmer_table=None)
    return fast, slow, fast_rng.bit_generator.state, slow_rng.bit_generator.state


def assert_identical(fast: list[np.ndarray], slow: list[np.ndarray]) -> None:
    assert [w.dtype for w in fast] == [np.dtype(np.int64)] * len(slow)
    assert [w.tolist() for w in fast] == [w.tolist() for w in slow]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sequence=st.text(st.sampled_from(SEQUENCE_BYTES), max_size=150),
    kmer_size=st.sampled_from(KMER_SIZES),
    max_len=st.integers(2, 24),
    strategy=st.sampled_from(STRATEGIES),
    max_windows=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_fast_windows_equal_the_tokenizer_windows(
    sequence: str, kmer_size: int, max_len: int, strategy: str, max_windows: int, seed: int
) -> None:
    fast, slow, fast_state, slow_state = both_paths(sequence.encode(), kmer_size, max_len, strategy, max_windows, seed)
    assert_identical(fast, slow)
    assert fast_state == slow_state  # the same draws: the stream resumes identically on either path


@settings(max_examples=40, deadline=None)
@given(sequence=st.text(st.sampled_from(SEQUENCE_BYTES), max_size=150), kmer_size=st.sampled_from(KMER_SIZES))
def test_kmer_tokens_give_the_tokenizer_ids_and_offsets(sequence: str, kmer_size: int) -> None:
    tok = dna(kmer_size)
    table = kmer_table_for(tok)
    encoded = tok(sequence, add_special_tokens=False, return_offsets_mapping=True)
    codes = np.frombuffer(sequence.encode(), dtype=np.uint8)
    layout = kmer_layout(codes, table)
    starts, ids = kmer_tokens(table, layout, np.arange(layout.n_tokens))
    assert layout.n_tokens == len(encoded["input_ids"])
    assert ids.tolist() == encoded["input_ids"]
    assert starts.tolist() == [start for start, _ in encoded["offset_mapping"]]
    # Any subset of tokens, in any order, reads the same values.
    subset = np.arange(layout.n_tokens)[::-3]
    sub_starts, sub_ids = kmer_tokens(table, layout, subset)
    assert (sub_starts.tolist(), sub_ids.tolist()) == (starts[subset].tolist(), ids[subset].tolist())


def reference_windows(tokenizer, sequences: list[bytes], max_len: int, strategy: str, max_windows: int,
                      rng: np.random.Generator) -> list[list[list[int]]]:
    """The windows as encode_windows documents them, gene after gene, from the tokenizer's own ids
    (our DNA tokenizers: `<cls>` before the body, nothing after)."""
    prefix = [tokenizer.cls_token_id]
    capacity = max_len - 1
    genes = []
    for sequence in sequences:
        body = tokenizer(sequence.decode(), add_special_tokens=False)["input_ids"]
        last_start = max(len(body) - capacity, 0)
        n_windows = max(-(-len(body) // capacity), 1)
        if strategy == "first":
            starts = [0]
        elif strategy == "random":
            starts = [int(rng.integers(0, last_start + 1))]
        elif n_windows <= max_windows:
            starts = [i * capacity for i in range(n_windows)]
        else:
            starts = [int(start) for start in np.linspace(0, last_start, max_windows).round()]
        genes.append([prefix + body[start : start + capacity] for start in starts])
    return genes


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sequences=st.lists(st.text(st.sampled_from(SEQUENCE_BYTES), max_size=60), max_size=6),
    kmer_size=st.sampled_from(KMER_SIZES),
    max_len=st.integers(2, 24),
    strategy=st.sampled_from(STRATEGIES),
    max_windows=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_block_windows_equal_the_tokenizer_windows_gene_after_gene(
    sequences: list[str], kmer_size: int, max_len: int, strategy: str, max_windows: int, seed: int
) -> None:
    """One numpy pass over a block (empty genes, Ns at gene ends, IUPAC codes) gives each gene's windows
    and RNG draws exactly as the tokenizer read gene after gene with one RNG."""
    tok = dna(kmer_size)
    block_rng, reference_rng = np.random.default_rng(seed), np.random.default_rng(seed)
    raws = [sequence.encode() for sequence in sequences]
    got = encode_block(raws, tok, max_len, strategy, max_windows, block_rng, kmer_table=kmer_table_for(tok))
    assert [[w.tolist() for w in gene] for gene in got] == reference_windows(tok, raws, max_len, strategy,
                                                                            max_windows, reference_rng)
    assert all(w.dtype == np.int64 for gene in got for w in gene)
    assert block_rng.bit_generator.state == reference_rng.bit_generator.state


@settings(max_examples=40, deadline=None)
@given(sequences=st.lists(st.text(st.sampled_from(SEQUENCE_BYTES), max_size=40), min_size=1, max_size=5),
       kmer_size=st.sampled_from(KMER_SIZES))
def test_block_layout_is_the_genes_layouts_end_to_end(sequences: list[str], kmer_size: int) -> None:
    table = kmer_table_for(dna(kmer_size))
    raws = [np.frombuffer(sequence.encode(), dtype=np.uint8) for sequence in sequences]
    offsets = np.cumsum([0, *map(len, raws)])
    block = kmer_layout(np.concatenate(raws), table, offsets)
    genes = [kmer_layout(raw, table) for raw in raws]
    assert np.diff(block.gene_tokens).tolist() == [gene.n_tokens for gene in genes]
    starts, ids = kmer_tokens(table, block, np.arange(block.n_tokens))
    per_gene = [kmer_tokens(table, gene, np.arange(gene.n_tokens)) for gene in genes]
    assert ids.tolist() == [i for _, gene_ids in per_gene for i in gene_ids.tolist()]
    shifted = [int(offset) + start for offset, (gene_starts, _) in zip(offsets, per_gene) for start in gene_starts.tolist()]
    assert starts.tolist() == shifted


def test_a_block_with_text_the_tokenizer_reads_specially_takes_its_path() -> None:
    tok = dna(3)
    raws = [b"ACGTACGTAC", b"AC<cls>GT", b"", b"NNACG"]
    got = encode_block(raws, tok, 5, "all", 3, np.random.default_rng(0), kmer_table=kmer_table_for(tok))
    assert [[w.tolist() for w in gene] for gene in got] == reference_windows(tok, raws, 5, "all", 3, None)


def test_known_layout_and_ids() -> None:
    """k=3: ACG T | N | N | AAC GG | R(N) | T -> starts 0 3 4 5 6 9 10 11 12."""
    vocab = {token: index for index, token in enumerate(dna_vocab(3))}
    table = kmer_table_for(dna(3))
    codes = np.frombuffer(b"ACGTNNAACGGRT", dtype=np.uint8)
    layout = kmer_layout(codes, table)
    assert layout.run_starts.tolist() == [0, 5, 6, 12]
    assert layout.n_kmers.tolist() == [1, 0, 1, 0]
    assert layout.first_tokens.tolist() == [0, 3, 4, 8]
    assert layout.n_tokens == 9 and layout.gene_tokens.tolist() == [0, 9]
    starts, ids = kmer_tokens(table, layout, np.arange(9))
    assert starts.tolist() == [0, 3, 4, 5, 6, 9, 10, 11, 12]
    expected = ["ACG", "T", "N", "N", "AAC", "G", "G", "N", "T"]
    assert ids.tolist() == [vocab[token] for token in expected]


@pytest.mark.parametrize("kmer_size", KMER_SIZES)
def test_edge_sequences(kmer_size: int) -> None:
    cases = [b"", b"N", b"NNNN", b"A", b"ACGTA", b"ACGTAC" * 3 + b"T", b"NACGTACN", b"RYKM", b"ACGTUACGT"]
    for sequence in cases:
        for strategy in STRATEGIES:
            for max_len in (2, 3, 8):
                fast, slow, fast_state, slow_state = both_paths(sequence, kmer_size, max_len, strategy, 2, 7)
                assert_identical(fast, slow)
                assert fast_state == slow_state
    fast, slow, _, _ = both_paths(b"", kmer_size, 8, "all", 4, 0)
    assert [w.tolist() for w in fast] == [[dna(kmer_size).cls_token_id]]


def test_text_the_tokenizer_reads_specially_takes_its_path() -> None:
    """Added tokens are matched in the raw text; non-ASCII bytes are refused. Not store content, but the
    two paths still agree."""
    fast, slow, _, _ = both_paths(b"AC<cls>GTACGT", 3, 16, "all", 4, 0)
    assert_identical(fast, slow)
    assert 3 in fast[0][1:].tolist()  # the literal <cls> became the <cls> token on both paths
    tok = dna(3)
    for table in (kmer_table_for(tok), None):
        with pytest.raises(UnicodeDecodeError):
            encode_windows(b"ACG\xffT", tok, 16, "first", 1, np.random.default_rng(0), kmer_table=table)


@pytest.mark.parametrize("kmer_size", KMER_SIZES)
def test_long_gene_small_windows(kmer_size: int) -> None:
    """20 kbp with N stretches and IUPAC codes, windows of a few dozen tokens: every strategy, several seeds."""
    rng = np.random.default_rng(kmer_size)
    sequence = rng.choice(np.frombuffer(b"ACGT", dtype=np.uint8), size=20_000)
    sequence[rng.integers(0, 20_000, size=40)] = ord("R")
    sequence[5_000:5_037] = ord("N")
    sequence[-3:] = ord("N")
    for strategy in STRATEGIES:
        for max_len, max_windows in ((33, 4), (200, 10**4)):
            for seed in range(3):
                fast, slow, fast_state, slow_state = both_paths(sequence.tobytes(), kmer_size, max_len, strategy,
                                                                max_windows, seed)
                assert_identical(fast, slow)
                assert fast_state == slow_state
    # numpy input (the store hands out uint8 arrays) reads like bytes
    tok = dna(kmer_size)
    from_array = encode_windows(sequence, tok, 33, "random", 1, np.random.default_rng(5), kmer_table=kmer_table_for(tok))
    from_bytes = encode_windows(sequence.tobytes(), tok, 33, "random", 1, np.random.default_rng(5))
    assert_identical(from_array, from_bytes)


def test_largest_kmer_size_reads_ids_past_two_bytes() -> None:
    """k=8: a k-mer's base-4 number takes all 16 bits (GGGGGGGG is 4^8 - 1), its id more."""
    rng = np.random.default_rng(8)
    sequence = b"GGGGGGGG" + rng.choice(np.frombuffer(b"ACGTACGTN", dtype=np.uint8), size=3_000).tobytes() + b"GGGGGGGG"
    for strategy in STRATEGIES:
        fast, slow, fast_state, slow_state = both_paths(sequence, 8, 64, strategy, 3, 1)
        assert_identical(fast, slow)
        assert fast_state == slow_state
    fast, _, _, _ = both_paths(b"GGGGGGGG", 8, 4, "first", 1, 0)
    assert fast[0].tolist() == [dna(8).cls_token_id, len(DNA_SPECIAL_TOKENS) + 4**8 - 1]


def _dna_like(vocab: list[str], split_regex: str) -> PreTrainedTokenizerFast:
    """A tokenizer with our normaliser, the given vocabulary (id order) and pre-tokeniser regex."""
    backend = Tokenizer(models.WordLevel(vocab={t: i for i, t in enumerate(vocab)}, unk_token="<unk>"))
    backend.normalizer = normalizers.Replace(Regex("[^ACGT]"), "N")
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(split_regex), behavior="isolated")
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", cls_token="<cls>")


def test_kmer_table_only_for_our_dna_vocabulary(tmp_path: Path) -> None:
    assert kmer_table_for(build_tokenizer("protein")) is None
    vocab = dna_vocab(3)
    assert kmer_table_for(_dna_like(vocab, "[ACGT]{3}|.")) is not None  # rebuilt by hand: ours
    swapped = [*vocab]
    swapped[6], swapped[7] = swapped[7], swapped[6]  # AAA <-> AAT
    assert kmer_table_for(_dna_like(swapped, "[ACGT]{3}|.")) is None
    assert kmer_table_for(_dna_like([*vocab, "NN"], "[ACGT]{3}|.")) is None
    assert kmer_table_for(_dna_like(vocab, ".{3}|.")) is None  # GENERator-like: k-mers across N
    assert kmer_table_for(_dna_like(vocab, "[ACGT]{2}|.")) is None  # regex of another k
    grown = build_tokenizer("dna", 3)
    grown.add_tokens(["ACGTA"])
    assert kmer_table_for(grown) is None
    dna(6).save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    table = kmer_table_for(loaded)
    assert table is not None and table.kmer_size == 6 and table.prefix.tolist() == [3] and table.suffix.size == 0


def test_gene_windower_carries_the_kmer_table_across_pickling() -> None:
    config = DataConfig(max_seq_len_tokens=16, window_strategy="random", max_windows_per_gene=2)
    windower = GeneWindower.from_config(dna(6), config)
    assert windower.kmer_table is not None and windower.kmer_table.kmer_size == 6
    assert GeneWindower.from_config(build_tokenizer("protein"), config).kmer_table is None
    shipped = pickle.loads(pickle.dumps(windower))  # crosses to Ray workers
    assert shipped.kmer_table is not None
    sequence = np.random.default_rng(0).choice(np.frombuffer(b"ACGTN", dtype=np.uint8), size=3_000).tobytes()
    got = shipped(sequence, np.random.default_rng(11))
    expected = encode_windows(sequence, dna(6), 16, "random", 2, np.random.default_rng(11))
    assert_identical(got, expected)
