"""Tokenisation gives exact ids (ESM-2 and Nucleotide Transformer v2 vocabularies), windows and batches."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from gp_distributed.config import ModelConfig
from gp_distributed.data.collate import collate
from gp_distributed.data.stream import Example
from gp_distributed.data.tokenize import (
    PROTEIN_VOCAB,
    GeneWindower,
    build_tokenizer,
    dna_vocab,
    encode_block,
    encode_windows,
    residue_table_for,
    tokenizer_for,
)
from gp_distributed.errors import ConfigError

# facebook/esm2_t6_8M_UR50D vocab.txt, one token per line
ESM2_VOCAB = (
    "<cls> <pad> <eos> <unk> L A G V S E R T I D P K Q N F Y M H W C X B U Z O . - <null_1> <mask>".split()
)


def _kmer_id(kmer: str) -> int:
    """NT v2 id of a 6-mer: 6 special tokens, then base-4 numbers with A=0 T=1 C=2 G=3."""
    return 6 + sum("ATCG".index(base) * 4 ** (len(kmer) - 1 - i) for i, base in enumerate(kmer))


A, T, C, G, N = 4102, 4103, 4104, 4105, 4106  # single-nucleotide tokens after the 4096 6-mers


@pytest.fixture(scope="module")
def protein():
    return build_tokenizer("protein")


@pytest.fixture(scope="module")
def dna():
    return build_tokenizer("dna", 6)


def test_protein_vocabulary_is_esm2(protein) -> None:
    assert list(PROTEIN_VOCAB) == ESM2_VOCAB
    assert len(protein) == 33
    assert protein.convert_ids_to_tokens(list(range(33))) == ESM2_VOCAB
    assert (protein.cls_token_id, protein.pad_token_id, protein.eos_token_id) == (0, 1, 2)
    assert (protein.unk_token_id, protein.mask_token_id) == (3, 32)


def test_protein_ids(protein) -> None:
    assert protein("MKTV")["input_ids"] == [0, 20, 15, 11, 7, 2]
    assert protein("XBUZO")["input_ids"] == [0, 24, 25, 26, 27, 28, 2]
    assert protein("MJ")["input_ids"] == [0, 20, 3, 2]  # J is not in the vocabulary


def test_dna_vocabulary_is_nucleotide_transformer_v2(dna) -> None:
    assert len(dna) == 4107
    assert dna.convert_ids_to_tokens([0, 1, 2, 3, 4, 5, 6, 4101]) == [
        "<unk>", "<pad>", "<mask>", "<cls>", "<eos>", "<bos>", "AAAAAA", "GGGGGG",
    ]  # fmt: skip
    assert dna.convert_ids_to_tokens([A, T, C, G, N]) == ["A", "T", "C", "G", "N"]
    assert (dna.pad_token_id, dna.cls_token_id) == (1, 3)
    assert len(dna_vocab(3)) == 6 + 64 + 5
    assert len(dna_vocab(1)) == 6 + 4 + 1  # k=1: the k-mers are the single bases


def test_dna_ids(dna) -> None:
    assert _kmer_id("ATCGAA") == 438
    # Left-to-right 6-mers, then the short tail as single nucleotides (NT's own example, k=6).
    assert dna("ATCGAATGGCGATGCAC")["input_ids"] == [3, 438, _kmer_id("TGGCGA"), T, G, C, A, C]
    # An N cuts the frame: ATCGAA T | N | GGCGAT G C A C
    assert dna("ATCGAATNGGCGATGCAC")["input_ids"] == [3, 438, T, N, _kmer_id("GGCGAT"), G, C, A, C]
    # Other IUPAC codes read as N.
    assert dna("ARYAAAAAAA")["input_ids"] == [3, A, N, N, 6, A]
    assert dna("TAAAAAA")["input_ids"] == [3, _kmer_id("TAAAAA"), A]
    assert dna("")["input_ids"] == [3]


def test_save_and_load_give_identical_ids(tmp_path: Path, dna, protein) -> None:
    for name, tokenizer, text in (("dna", dna, "ACGTNACGTRACGTACGTTT"), ("protein", protein, "MKTAYIAKQR")):
        tokenizer.save_pretrained(tmp_path / name)
        loaded = AutoTokenizer.from_pretrained(tmp_path / name, local_files_only=True)
        assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
        assert loaded.pad_token_id == tokenizer.pad_token_id


def _windows(tokenizer, sequence: bytes, length: int, strategy: str, max_windows: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [w.tolist() for w in encode_windows(sequence, tokenizer, length, strategy, max_windows, rng)]


def test_protein_windows(protein) -> None:
    sequence = b"MKTAYIAKQR"  # ids 20 15 11 5 19 12 5 15 16 10
    body = protein(sequence.decode(), add_special_tokens=False)["input_ids"]
    assert body == [20, 15, 11, 5, 19, 12, 5, 15, 16, 10]
    # 6 tokens per window = <cls> + 4 residues + <eos>
    assert _windows(protein, sequence, 6, "first") == [[0, *body[:4], 2]]
    assert _windows(protein, sequence, 6, "all") == [[0, *body[0:4], 2], [0, *body[4:8], 2], [0, *body[8:], 2]]
    # Capped at 2: full windows at evenly spaced offsets 0 and 6.
    assert _windows(protein, sequence, 6, "all", max_windows=2) == [[0, *body[0:4], 2], [0, *body[6:10], 2]]
    for seed in range(5):
        (window,) = _windows(protein, sequence, 6, "random", seed=seed)
        start = int(np.random.default_rng(seed).integers(0, 7))
        assert window == [0, *body[start : start + 4], 2]
    for strategy in ("first", "random", "all"):  # a sequence that fits is one whole window
        assert _windows(protein, sequence, 12, strategy) == [[0, *body, 2]]
    assert _windows(protein, b"", 6, "all") == [[0, 2]]
    assert _windows(protein, np.frombuffer(sequence, dtype=np.uint8), 6, "first") == [[0, *body[:4], 2]]


def test_dna_windows_count_tokens_not_bases(dna) -> None:
    sequence = b"AAAAAA" * 5 + b"TT"  # 5 six-mers + 2 single tokens = 7 body tokens
    windows = _windows(dna, sequence, 4, "all")  # <cls> + 3 tokens
    assert windows == [[3, 6, 6, 6], [3, 6, 6, T], [3, T]]


def test_window_errors(protein) -> None:
    with pytest.raises(ValueError, match="no room"):
        _windows(protein, b"MKV", 2, "first")
    with pytest.raises(ValueError, match="strategy"):
        _windows(protein, b"MKV", 8, "sliding")


def test_gene_windower_matches_encode_windows_and_pickles(protein) -> None:
    windower = pickle.loads(pickle.dumps(GeneWindower(protein, 6, "random", 4)))  # crosses to Ray workers
    got = windower(b"MKTAYIAKQR", np.random.default_rng(3))
    expected = encode_windows(b"MKTAYIAKQR", protein, 6, "random", 4, np.random.default_rng(3))
    assert [w.tolist() for w in got] == [w.tolist() for w in expected]


def test_tokenizer_for_checks_the_preset_alphabet(tmp_path: Path, dna) -> None:
    assert len(tokenizer_for(ModelConfig(backbone_preset="tiny-dna"), "dna", 6)) == 4107
    with pytest.raises(ConfigError, match="tiny-protein reads protein"):
        tokenizer_for(ModelConfig(backbone_preset="tiny-protein"), "dna", 6)
    dna.save_pretrained(tmp_path)
    from_directory = tokenizer_for(ModelConfig(backbone_preset=None, backbone_path=tmp_path), "dna", 3)
    assert len(from_directory) == 4107  # the directory's tokenizer wins over kmer_size


def test_collate_pads_and_indexes_windows() -> None:
    examples = [
        Example(7, [np.array([0, 5, 2]), np.array([0, 6, 6, 6, 2])], np.array([0, 4]), np.array([1]), np.array([0, 2])),
        Example(9, [np.array([0, 2])], np.zeros(0, dtype=np.int64), np.array([], dtype=np.int64), np.array([1])),
    ]
    batch = collate(examples, pad_token_id=1, n_concepts=3, n_labels=4)
    assert batch.input_ids.tolist() == [[0, 5, 2, 1, 1], [0, 6, 6, 6, 2], [0, 2, 1, 1, 1]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert batch.window_gene_index.tolist() == [0, 0, 1]
    assert batch.go_ids.tolist() == [[1, 5], [0, 0]]
    assert batch.go_mask.tolist() == [[True, True], [False, False]]
    assert batch.concept_targets.tolist() == [[0, 1, 0], [0, 0, 0]]
    assert batch.label_targets.tolist() == [[1, 0, 1, 0], [0, 1, 0, 0]]
    assert batch.gene_index.tolist() == [7, 9]
    assert batch.num_genes == 2
    truncated = collate(examples, pad_token_id=1, n_concepts=3, n_labels=4, max_go_terms=1)
    assert truncated.go_ids.tolist() == [[1], [0]]
    with pytest.raises(ValueError, match="label index out of range"):
        collate(examples, pad_token_id=1, n_concepts=3, n_labels=2)
    no_go = collate(examples[1:], pad_token_id=1, n_concepts=3, n_labels=4)
    assert no_go.go_ids.tolist() == [[0]] and no_go.go_mask.tolist() == [[False]]
    negative = Example(9, [np.array([0, 2])], np.zeros(0, dtype=np.int64), np.array([-1]), np.array([1]))
    with pytest.raises(ValueError, match=r"concept index out of range \[0, 3\) in batch row 1"):
        collate([examples[0], negative], pad_token_id=1, n_concepts=3, n_labels=4)
    assert [t.dtype for t in (batch.input_ids, batch.attention_mask, batch.window_gene_index, batch.go_ids)] == [
        torch.long] * 4
    assert batch.label_targets.dtype == batch.concept_targets.dtype == torch.float32
    assert batch.go_mask.dtype == torch.bool


def test_residue_table_gives_exactly_the_tokenizer_ids() -> None:
    """The per-residue fast path (numpy lookup) is an optimisation, never a different tokenisation."""
    protein = build_tokenizer("protein")
    table = residue_table_for(protein)
    assert table is not None and residue_table_for(build_tokenizer("dna", 6)) is None  # k-mers group letters
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"ACDEFGHIKLMNPQRSTVWYXUOBZ", dtype=np.uint8)
    for length in [0, 1, 5, 300, 2000]:
        sequence = rng.choice(letters, size=length).tobytes()
        for strategy in ("first", "random", "all"):
            fast = encode_windows(sequence, protein, 64, strategy, 4, np.random.default_rng(1), table)
            slow = encode_windows(sequence, protein, 64, strategy, 4, np.random.default_rng(1))
            assert [w.tolist() for w in fast] == [w.tolist() for w in slow], (length, strategy)
    # A letter outside the vocabulary falls back to the tokenizer (its <unk>), with the same result.
    odd = b"ACJJDE"
    assert [w.tolist() for w in encode_windows(odd, protein, 64, "first", 1, np.random.default_rng(0), table)] == \
        [w.tolist() for w in encode_windows(odd, protein, 64, "first", 1, np.random.default_rng(0))]


@pytest.mark.parametrize("letters", [b"ACDEFGHIKLMNPQRSTVWYXUOBZ", b"ACDEFGHIKLMNPQRSTVWYJ"])  # J: no ESM-2 token
def test_protein_block_is_each_gene_in_turn(protein, letters: bytes) -> None:
    """A block through the residue table (or, holding a J, through the tokenizer) gives every gene's
    windows and the RNG state of encode_windows called gene after gene."""
    rng = np.random.default_rng(4)
    sequences = [rng.choice(np.frombuffer(letters, dtype=np.uint8), size=size).tobytes()
                 for size in (0, 1, 7, 30, 64, 65, 200, 3)]
    for strategy in ("first", "random", "all"):
        block_rng, gene_rng = np.random.default_rng(9), np.random.default_rng(9)
        got = encode_block(sequences, protein, 10, strategy, 3, block_rng, residue_table_for(protein))
        want = [encode_windows(sequence, protein, 10, strategy, 3, gene_rng) for sequence in sequences]
        assert [[w.tolist() for w in gene] for gene in got] == [[w.tolist() for w in gene] for gene in want]
        assert block_rng.bit_generator.state == gene_rng.bit_generator.state
    assert encode_block([], protein, 10, "all", 3, np.random.default_rng(0)) == []


@pytest.mark.parametrize("letters", [b"ACDEFGHIKLMNPQRSTVWYX", b"ACDEFGHIKLMNPQRSTVWYJ"])
def test_joined_block_is_the_block_of_its_genes(protein, letters: bytes) -> None:
    """The stream's call: one bytes object and gene offsets, through the table or (a J) the tokenizer."""
    rng = np.random.default_rng(2)
    sequences = [rng.choice(np.frombuffer(letters, dtype=np.uint8), size=size).tobytes() for size in (5, 0, 40, 9)]
    offsets = np.array([0, 5, 5, 45, 54], dtype=np.int64)
    windower = GeneWindower(protein, 12, "all", 2, residue_table_for(protein))
    got = windower.encode_joined(b"".join(sequences), offsets, np.random.default_rng(3))
    want = encode_block(sequences, protein, 12, "all", 2, np.random.default_rng(3), residue_table_for(protein))
    assert [[w.tolist() for w in gene] for gene in got] == [[w.tolist() for w in gene] for gene in want]
    assert [len(gene) for gene in got] == [1, 1, 2, 1]  # 40 residues: 4 windows of 10 capped to 2
    assert windower.encode_joined(b"", np.zeros(1, dtype=np.int64), np.random.default_rng(3)) == []
