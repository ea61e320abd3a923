"""The numpy fast paths for the tokenizers model directories bring (replicas of NT v1's EsmTokenizer over
6-mers, GENERator's DNAKmerTokenizer, ESM-2's per-residue EsmTokenizer) give exactly the Hugging Face
tokenizer's ids, specials included, on sequences with N, IUPAC codes, other letters and short tails;
anything they cannot read keeps the tokenizer path."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import EsmTokenizer, PreTrainedTokenizerBase

from gp_distributed.config import DataConfig
from gp_distributed.data.directory_tokenizer import load_directory_tokenizer
from gp_distributed.data.token_tables import ChunkTable, KmerTable
from gp_distributed.data.tokenize import (
    GeneWindower,
    encode_block,
    kmer_table_for,
    residue_table_for,
)

from ..fixtures.backbones.replicas import (
    nt_vocab,
    write_bert,
    write_esm2,
    write_generator,
    write_nt_v1,
)

# Bases mostly, N, the other IUPAC codes and letters outside any DNA alphabet
DNA_TEXT = "ACGT" * 8 + "NN" + "RYSWKMBDHVU" + "EJQXZ"
PROTEIN_TEXT = "ACDEFGHIKLMNPQRSTVWYXBUZOJ"
STRATEGIES = ("first", "random", "all")


@dataclass(frozen=True)
class Tokenizers:
    nt: PreTrainedTokenizerBase
    generator: PreTrainedTokenizerBase
    esm: PreTrainedTokenizerBase
    bert: PreTrainedTokenizerBase
    root: Path


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory: pytest.TempPathFactory) -> Tokenizers:
    root = tmp_path_factory.mktemp("replicas")
    return Tokenizers(load_directory_tokenizer(write_nt_v1(root / "nt"), False),
                      load_directory_tokenizer(write_generator(root / "generator"), True),
                      load_directory_tokenizer(write_esm2(root / "esm2"), False),
                      load_directory_tokenizer(write_bert(root / "bert"), False), root)


def test_each_layout_gets_its_table(tokenizers: Tokenizers) -> None:
    nt, generator = kmer_table_for(tokenizers.nt), kmer_table_for(tokenizers.generator)
    assert isinstance(nt, KmerTable) and nt.kmer_size == 6
    assert nt.prefix.tolist() == [tokenizers.nt.cls_token_id] and nt.suffix.tolist() == [tokenizers.nt.eos_token_id]
    assert isinstance(generator, ChunkTable) and generator.kmer_size == 6 and generator.oov_id == 5
    assert generator.prefix.tolist() == [tokenizers.generator.bos_token_id] and generator.suffix.size == 0
    for per_residue in (tokenizers.esm, tokenizers.bert):
        assert kmer_table_for(per_residue) is None and residue_table_for(per_residue) is not None
    assert residue_table_for(tokenizers.nt) is None and residue_table_for(tokenizers.generator) is None


def both_paths(tokenizer: PreTrainedTokenizerBase, sequences: list[bytes], max_len: int, strategy: str,
               max_windows: int, seed: int) -> tuple[list[list[np.ndarray]], list[list[np.ndarray]]]:
    """(fast windows, tokenizer windows) of a block; the RNG must end in the same state on both."""
    fast_rng, slow_rng = np.random.default_rng(seed), np.random.default_rng(seed)
    fast = encode_block(sequences, tokenizer, max_len, strategy, max_windows, fast_rng, residue_table_for(tokenizer),
                        kmer_table_for(tokenizer))
    slow = encode_block(sequences, tokenizer, max_len, strategy, max_windows, slow_rng)
    assert fast_rng.bit_generator.state == slow_rng.bit_generator.state
    return fast, slow


def as_lists(block: list[list[np.ndarray]]) -> list[list[list[int]]]:
    assert all(window.dtype == np.int64 for windows in block for window in windows)
    return [[window.tolist() for window in windows] for windows in block]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(genes=st.lists(st.text(st.sampled_from(DNA_TEXT), max_size=80), min_size=1, max_size=4),
       family=st.sampled_from(["nt", "generator"]))
def test_dna_ids_equal_the_tokenizer(tokenizers: Tokenizers, genes: list[str], family: str) -> None:
    """Whole genes in one window each: the ids, with the specials each tokenizer adds, are its own."""
    tokenizer = getattr(tokenizers, family)
    fast, _ = both_paths(tokenizer, [g.encode() for g in genes], 10**4, "all", 1, 0)
    assert [windows[0].tolist() for windows in fast] == [tokenizer(g)["input_ids"] for g in genes]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(genes=st.lists(st.text(st.sampled_from(DNA_TEXT), max_size=120), min_size=1, max_size=4),
       family=st.sampled_from(["nt", "generator"]), max_len=st.integers(3, 24),
       strategy=st.sampled_from(STRATEGIES), max_windows=st.integers(1, 5), seed=st.integers(0, 3))
def test_dna_windows_equal_the_tokenizer_path(tokenizers: Tokenizers, genes: list[str], family: str, max_len: int,
                                              strategy: str, max_windows: int, seed: int) -> None:
    fast, slow = both_paths(getattr(tokenizers, family), [g.encode() for g in genes], max_len, strategy,
                            max_windows, seed)
    assert as_lists(fast) == as_lists(slow)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(genes=st.lists(st.text(st.sampled_from(PROTEIN_TEXT), max_size=80), min_size=1, max_size=4))
def test_esm2_ids_equal_the_tokenizer(tokenizers: Tokenizers, genes: list[str]) -> None:
    """ESM-2's per-residue vocabulary: `<cls> residues <eos>`; J (not in it) sends a gene to the tokenizer,
    which reads a run of Js as one `<unk>`."""
    fast, _ = both_paths(tokenizers.esm, [g.encode() for g in genes], 10**4, "all", 1, 0)
    assert [windows[0].tolist() for windows in fast] == [tokenizers.esm(g)["input_ids"] for g in genes]


def test_text_the_tables_cannot_read_goes_to_the_tokenizer(tokenizers: Tokenizers) -> None:
    """Lowercase, spaces and `<` are read by the tokenizer's own rules (a space vanishes, `<unk>` is a
    token, lowercase is unknown), so such a block takes the tokenizer path and still agrees."""
    genes = [b"acgtACGTAC", b"ACGT ACGTAC", b"AC<unk>GTACGT", b"ACGTACGTAC"]
    for tokenizer in (tokenizers.nt, tokenizers.generator):
        fast, slow = both_paths(tokenizer, genes, 10**4, "all", 1, 0)
        assert as_lists(fast) == as_lists(slow)
        assert [w[0].tolist() for w in fast] == [tokenizer(g.decode())["input_ids"] for g in genes]


def test_a_long_gene_reads_the_same_on_both_paths(tokenizers: Tokenizers) -> None:
    """20 kbp with N runs and IUPAC codes: every window of both k-mer tables, and a random one."""
    rng = np.random.default_rng(7)
    codes = rng.choice(np.frombuffer(b"ACGT" * 50 + b"NNRYKM", dtype=np.uint8), size=20_000)
    codes[5_000:5_040] = ord("N")
    for tokenizer in (tokenizers.nt, tokenizers.generator):
        for strategy, max_windows in (("all", 100), ("random", 1)):
            fast, slow = both_paths(tokenizer, [codes.tobytes(), codes[:997].tobytes()], 512, strategy, max_windows, 1)
            assert as_lists(fast) == as_lists(slow)


def test_unrecognised_or_disagreeing_tokenizers_keep_the_tokenizer_path(tokenizers: Tokenizers) -> None:
    # An EsmTokenizer whose vocabulary lacks the one-base N token is not NT's layout.
    vocab_file = tokenizers.root / "no_n_vocab.txt"
    vocab_file.write_text("".join(token + "\n" for token in nt_vocab() if token != "N"))
    assert kmer_table_for(EsmTokenizer(str(vocab_file))) is None
    # Remote code named DNAKmerTokenizer over the same vocab.txt that reads overlapping k-mers: the layout
    # matches, the probe does not.
    generator_class = type(tokenizers.generator)

    def overlapping(self: PreTrainedTokenizerBase, text: str, **kwargs: object) -> list[str]:
        return [text[i : i + 6] for i in range(max(len(text) - 5, 1))]

    sliding = type("DNAKmerTokenizer", (generator_class,), {"_tokenize": overlapping})
    other = sliding(str(tokenizers.root / "generator" / "vocab.txt"))
    assert other("ACGTACG")["input_ids"] != tokenizers.generator("ACGTACG")["input_ids"]
    assert kmer_table_for(other) is None


def test_gene_windower_picks_the_table_and_pickles(tokenizers: Tokenizers) -> None:
    config = DataConfig(max_seq_len_tokens=16, window_strategy="all")
    for tokenizer, kind in ((tokenizers.nt, KmerTable), (tokenizers.generator, ChunkTable)):
        windower = GeneWindower.from_config(tokenizer, config)
        assert isinstance(windower.kmer_table, kind)
        copy = pickle.loads(pickle.dumps(windower))
        sequence = b"ACGTACGTNNRYACGTACGTACGTAAAAAACCCCCCGGGGGGTTTTTTACG"
        got = copy(sequence, np.random.default_rng(0))
        want = encode_block([sequence], tokenizer, 16, "all", config.max_windows_per_gene, np.random.default_rng(0))[0]
        assert [w.tolist() for w in got] == [w.tolist() for w in want]
