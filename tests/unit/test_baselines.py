"""k-mer features and sequence baselines: exact counts, planted toys, shapes, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from gp_distributed.evaluation import kmer_features
from gp_distributed.evaluation.baselines import (
    BASELINES,
    KmerLogisticBaseline,
    KmerNearestNeighbourBaseline,
    NaiveFrequencyBaseline,
    run_baseline,
)
from gp_distributed.evaluation.kmer_features import ALPHABETS, kmer_composition

PROTEIN = np.frombuffer(ALPHABETS["protein"], dtype=np.uint8)


def random_proteins(rng: np.random.Generator, n: int, min_len: int, max_len: int) -> list[bytes]:
    return [rng.choice(PROTEIN, int(rng.integers(min_len, max_len + 1))).tobytes() for _ in range(n)]


def reference_counts(sequence: bytes, k: int, alphabet: str) -> dict[int, int]:
    """Per-k-mer loop, the obviously correct (and slow) definition."""
    letters = ALPHABETS[alphabet].decode()
    counts: dict[int, int] = {}
    text = sequence.decode().upper()
    for start in range(len(text) - k + 1):
        kmer = text[start : start + k]
        if all(letter in letters for letter in kmer):
            column = 0
            for letter in kmer:
                column = column * len(letters) + letters.index(letter)
            counts[column] = counts.get(column, 0) + 1
    return counts


# --- k-mer composition -------------------------------------------------------------------------


def test_protein_dimers_hand_computed() -> None:
    # ACDA: AC = 0*20+1, CD = 1*20+2, DA = 2*20+0, one third each.
    features = kmer_composition([b"ACDA"], k=2, alphabet="protein")
    assert features.shape == (1, 400)
    assert features.dtype == np.float32
    assert features.indices.tolist() == [1, 22, 40]
    np.testing.assert_array_equal(features.data, np.float32([1 / 3, 1 / 3, 1 / 3]))


def test_dna_hand_computed_and_default_k() -> None:
    # ACGTA, k=2: AC=1, CG=6, GT=11, TA=12; AAAAAAA with default k=6: two AAAAAA k-mers at column 0.
    features = kmer_composition([b"ACGTA"], k=2, alphabet="dna")
    assert features.indices.tolist() == [1, 6, 11, 12]
    np.testing.assert_array_equal(features.data, np.full(4, 0.25, dtype=np.float32))
    default = kmer_composition([b"AAAAAAA", b"ACGTAC"], alphabet="dna")
    assert default.shape == (2, 4**6)
    assert default[0].indices.tolist() == [0] and default[0].data.tolist() == [1.0]
    # ACGTAC = 0,1,2,3,0,1 in base 4.
    assert default[1].indices.tolist() == [((((0 * 4 + 1) * 4 + 2) * 4 + 3) * 4 + 0) * 4 + 1]


def test_protein_default_k_is_three() -> None:
    assert kmer_composition([b"ACD"]).shape == (1, 8000)


def test_nonstandard_residues_skipped_and_case_folded() -> None:
    # X and U break every k-mer they touch; only the two AC k-mers remain.
    features = kmer_composition([b"ACXACU", b"acda", b"BZOJ"], k=2, alphabet="protein")
    assert features[0].indices.tolist() == [1] and features[0].data.tolist() == [1.0]
    np.testing.assert_array_equal(features[1].toarray(), kmer_composition([b"ACDA"], k=2).toarray())
    assert features[2].nnz == 0  # ambiguity and rare codes: B, Z, O, J
    dna = kmer_composition([b"ACNGT", b"acgt"], k=2, alphabet="dna")
    assert dna[0].indices.tolist() == [1, 11]  # AC and GT; CN and NG skipped
    assert dna[1].indices.tolist() == [1, 6, 11]


def test_no_kmer_spans_two_sequences_and_short_rows_are_empty() -> None:
    features = kmer_composition([b"AC", b"DA", b"A", b""], k=2)
    assert features[0].indices.tolist() == [1]
    assert features[1].indices.tolist() == [40]
    assert features[2].nnz == 0 and features[3].nnz == 0
    assert kmer_composition([], k=2).shape == (0, 400)


def test_matches_per_kmer_reference_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    letters = np.frombuffer(b"ACDEFGHIKLMNPQRSTVWYXUacd", dtype=np.uint8)
    sequences = [rng.choice(letters, int(rng.integers(0, 40))).tobytes() for _ in range(40)]
    expected = np.zeros((len(sequences), 8000))
    for row, sequence in enumerate(sequences):
        counts = reference_counts(sequence, 3, "protein")
        for column, count in counts.items():
            expected[row, column] = count / sum(counts.values())
    whole = kmer_composition(sequences, k=3)
    np.testing.assert_allclose(whole.toarray(), expected, rtol=1e-6)
    # Tiny chunks must give the same matrix as one chunk.
    monkeypatch.setattr(kmer_features, "_CHUNK_RESIDUES", 50)
    chunked = kmer_composition(sequences, k=3)
    np.testing.assert_array_equal(chunked.toarray(), whole.toarray())


def test_bad_parameters_rejected() -> None:
    with pytest.raises(ValueError, match="alphabet"):
        kmer_composition([b"ACD"], k=2, alphabet="rna")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be"):
        kmer_composition([b"ACD"], k=0)
    with pytest.raises(ValueError, match="k-mers"):
        kmer_composition([b"ACD"], k=8)  # 20**8 columns


# --- baselines ---------------------------------------------------------------------------------


def test_naive_equals_column_means_exactly() -> None:
    rng = np.random.default_rng(2)
    labels = (rng.random((37, 9)) < 0.3).astype(np.uint8)
    sequences = random_proteins(rng, 37, 5, 10)
    scores = NaiveFrequencyBaseline().fit(sequences, labels).predict_proba(sequences[:4])
    assert scores.dtype == np.float32 and scores.shape == (4, 9)
    for row in scores:
        np.testing.assert_array_equal(row, labels.mean(axis=0).astype(np.float32))


def test_knn_duplicates_get_their_twins_labels() -> None:
    rng = np.random.default_rng(3)
    train = random_proteins(rng, 60, 250, 350)
    labels = (rng.random((60, 12)) < 0.4).astype(bool)
    twins = [5, 17, 33, 41, 59]
    eval_sequences = [train[i] for i in twins]

    nearest = KmerNearestNeighbourBaseline(n_neighbours=1).fit(train, labels).predict_proba(eval_sequences)
    np.testing.assert_array_equal(nearest, labels[twins].astype(np.float32))

    # With 10 neighbours the twin (similarity 1) outweighs nine unrelated ones (similarity ~0.05).
    voted = KmerNearestNeighbourBaseline().fit(train, labels).predict_proba(eval_sequences)
    np.testing.assert_array_equal(voted > 0.5, labels[twins])
    for row, twin in zip(voted, twins, strict=True):
        if labels[twin].any() and not labels[twin].all():
            assert row[labels[twin]].min() > row[~labels[twin]].max()


def test_knn_without_shared_kmers_falls_back_to_frequency() -> None:
    labels = np.array([[1, 0], [1, 1], [0, 0]], dtype=np.uint8)
    model = KmerNearestNeighbourBaseline(kmer_size=2).fit([b"ACDE", b"ACDF", b"ACDG"], labels)
    scores = model.predict_proba([b"WWWW", b"ACDE"])
    np.testing.assert_array_equal(scores[0], np.float32([2 / 3, 1 / 3]))
    # ACDE shares 2 of its 3 dimers with ACDF and ACDG: cosines 1, 2/3, 2/3 (sum 7/3).
    np.testing.assert_allclose(scores[1], [(1 + 2 / 3) / (7 / 3), (2 / 3) / (7 / 3)], rtol=1e-6)


def motif_toy(rng: np.random.Generator, n: int) -> tuple[list[bytes], np.ndarray]:
    """Random proteins; term j is positive exactly when motif j was planted (each ~35%)."""
    motifs = [b"WCWMH", b"YHWCM", b"MWHYC", b"CMYWW"]
    sequences, labels = [], np.zeros((n, len(motifs) + 1), dtype=np.uint8)
    for row in range(n):
        background = bytearray(rng.choice(PROTEIN, 120).tobytes())
        for term, motif in enumerate(motifs):
            if rng.random() < 0.35:
                at = int(rng.integers(0, len(background) - len(motif)))
                background[at : at + len(motif)] = motif
                labels[row, term] = 1
        sequences.append(bytes(background))
    return sequences, labels  # the last term is never positive: it must fall back to frequency 0


def test_logistic_beats_naive_on_planted_motifs() -> None:
    rng = np.random.default_rng(4)
    train, train_labels = motif_toy(rng, 300)
    test, test_labels = motif_toy(rng, 150)
    planted = range(train_labels.shape[1] - 1)
    auc = {}
    # 32 SVD components keep the test fast; the default 256 only matters at bundle scale.
    for name, params in (("naive", {}), ("kmer-lr", {"n_components": 32})):
        scores = run_baseline(name, train, train_labels, test, **params)
        auc[name] = np.mean([roc_auc_score(test_labels[:, j], scores[:, j]) for j in planted])
    assert auc["naive"] == 0.5
    assert auc["kmer-lr"] > 0.8, auc


def test_logistic_solves_each_terms_sklearn_problem() -> None:
    """The joint L-BFGS fit equals scikit-learn's LogisticRegression fitted term by term."""
    rng = np.random.default_rng(5)
    train, labels = motif_toy(rng, 120)
    model = KmerLogisticBaseline(n_components=8, C=0.5).fit(train, labels)
    counts = kmer_composition(train, 3, "protein")
    features = model.scaler_.transform(model.svd_.transform(model.tfidf_.transform(counts)))
    ours = model.predict_proba(train)
    assert model.fitted_terms_.tolist() == [0, 1, 2, 3]
    for term in model.fitted_terms_:
        reference = LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000).fit(features, labels[:, term])
        np.testing.assert_allclose(ours[:, term], reference.predict_proba(features)[:, 1], atol=2e-3)
    np.testing.assert_array_equal(ours[:, 4], np.zeros(len(train), dtype=np.float32))


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_shapes_range_and_determinism(name: str) -> None:
    rng = np.random.default_rng(6)
    train, labels = motif_toy(rng, 80)
    test = random_proteins(rng, 7, 1, 90) + [b"", b"XXXX"]
    params = {"n_components": 16} if name == "kmer-lr" else {}
    first = run_baseline(name, train, labels, test, **params)
    second = run_baseline(name, train, labels, test, **params)
    assert first.shape == (len(test), labels.shape[1]) and first.dtype == np.float32
    assert np.all((first >= 0) & (first <= 1))
    np.testing.assert_array_equal(first, second)
    assert run_baseline(name, train, labels, [], **params).shape == (0, labels.shape[1])


def test_dna_alphabet_runs_end_to_end() -> None:
    rng = np.random.default_rng(7)
    bases = np.frombuffer(b"ACGT", dtype=np.uint8)
    train = [rng.choice(bases, 200).tobytes() for _ in range(30)]
    labels = (rng.random((30, 3)) < 0.5).astype(np.uint8)
    scores = run_baseline("kmer-knn", train, labels, train[:2], alphabet="dna", n_neighbours=1)
    np.testing.assert_array_equal(scores, labels[:2].astype(np.float32))


def test_bad_labels_and_names_rejected() -> None:
    sequences = [b"ACDE", b"ACDF"]
    with pytest.raises(ValueError, match="shape"):
        NaiveFrequencyBaseline().fit(sequences, np.zeros((3, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="0/1"):
        NaiveFrequencyBaseline().fit(sequences, np.array([[0, 2], [1, 0]]))
    with pytest.raises(ValueError, match="unknown baseline"):
        run_baseline("blast", sequences, np.zeros((2, 1), dtype=np.uint8), sequences)
