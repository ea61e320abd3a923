"""The training stream: every gene once per epoch per rank set, exact resume from state_dict()."""

import json
from pathlib import Path

import numpy as np
import pytest

from gp_distributed.config import DataConfig
from gp_distributed.data.store import StoreContent, open_store, write_store
from gp_distributed.data.stream import TrainStream, eval_examples
from gp_distributed.data.tokenize import GeneWindower, build_tokenizer, encode_windows


def _encode(sequence: bytes, rng: np.random.Generator) -> list[np.ndarray]:
    start = int(rng.integers(0, max(len(sequence) - 3, 1)))  # a random crop, so RNG use is exercised
    return [np.frombuffer(sequence[start : start + 4], dtype=np.uint8).astype(np.int64)]


@pytest.fixture
def store(tmp_path: Path):
    n = 40
    splits = np.array([0] * 30 + [1] * 5 + [2] * 5, dtype=np.uint8)
    content = StoreContent(
        gene_ids=[f"G{i:03d}" for i in range(n)],
        gene_symbols=[""] * n,
        splits=splits,
        sequences=[bytes([65 + i % 20]) * (8 + i) for i in range(n)],
        labels=[np.array([i % 3], dtype=np.int32) for i in range(n)],
        go_input=[np.zeros(0, dtype=np.int32)] * n,
        go_concepts=[np.zeros(0, dtype=np.int32)] * n,
        attributes={
            "alphabet": "protein",
            "label_vocab": {"ids": ["A:1", "A:2", "A:3"], "names": ["a", "b", "c"], "parents": [[], [], []],
                            "bins": [0, 0, 0], "n_genes": [1, 1, 1]},
            "go_input_vocab": {"ids": [], "names": []},
            "concept_vocab": {"ids": [], "names": [], "depth": 2},
            "exclusive_pairs": [],
            "genes_per_shard": 4,
            "summary": {},
        },
    )
    write_store(content, tmp_path / "s.zarr", residues_per_chunk=1024, chunks_per_shard=2)
    return open_store(tmp_path / "s.zarr")


def _stream(store, rank: int = 0, world_size: int = 1) -> TrainStream:
    return TrainStream(store, _encode, rank=rank, world_size=world_size, seed=5, shuffle_buffer_genes=6)


def test_one_epoch_over_all_ranks_visits_every_training_gene_once(store) -> None:
    seen = []
    for rank in range(2):
        stream = _stream(store, rank, 2)
        while True:
            example = next(stream)
            if stream.epoch > 0:
                break
            seen.append(example.gene_index)
    assert sorted(seen) == list(range(30))


def test_order_is_shuffled_and_deterministic(store) -> None:
    first = [next(_stream(store)).gene_index for _ in range(1)]
    a = [e.gene_index for e, _ in zip(_stream(store), range(60))]
    b = [e.gene_index for e, _ in zip(_stream(store), range(60))]
    assert a == b and a[0] == first[0]
    assert a[:30] != sorted(a[:30])
    assert sorted(a[:30]) == list(range(30))  # epoch 0 complete before epoch 1 starts


def test_resume_from_state_dict_is_exact(store) -> None:
    reference = _stream(store)
    expected = [next(reference) for _ in range(75)]
    interrupted = _stream(store)
    for _ in range(23):
        next(interrupted)
    state = interrupted.state_dict()
    resumed = _stream(store)
    resumed.load_state_dict(state)
    got = [next(resumed) for _ in range(75 - 23)]
    for want, have in zip(expected[23:], got):
        assert want.gene_index == have.gene_index
        assert [w.tolist() for w in want.windows] == [w.tolist() for w in have.windows]


def test_state_of_another_rank_is_refused(store) -> None:
    state = _stream(store, 0, 2).state_dict()
    with pytest.raises(ValueError, match="rank 0/2 given to rank 1/2"):
        _stream(store, 1, 2).load_state_dict(state)


def test_eval_examples_are_in_order(store) -> None:
    indices = store.split_indices("valid")
    got = [e.gene_index for e in eval_examples(store, indices, _encode, seed=0)]
    assert got == indices.tolist()


def _windower(strategy: str = "random") -> GeneWindower:
    tokenizer = build_tokenizer("protein")  # the fixture's J (gene 9, 29) is not ESM-2's: its block takes the tokenizer
    return GeneWindower.from_config(tokenizer, DataConfig(max_seq_len_tokens=8, window_strategy=strategy,
                                                          max_windows_per_gene=2))


def _same(a, b) -> bool:
    return (a.gene_index == b.gene_index and [w.tolist() for w in a.windows] == [w.tolist() for w in b.windows]
            and a.labels.tolist() == b.labels.tolist())


@pytest.mark.parametrize("strategy", ["random", "all"])
def test_resume_through_json_is_exact_with_block_tokenisation(store, strategy: str) -> None:
    """A checkpoint stores the state as JSON; resuming anywhere (mid-epoch, at the epoch boundary, in a
    later epoch, mid-group of picks) yields exactly what the uninterrupted stream yields."""
    windower = _windower(strategy)

    def stream() -> TrainStream:
        return TrainStream(store, windower, rank=1, world_size=2, seed=3, shuffle_buffer_genes=5)

    reference = stream()
    expected = [next(reference) for _ in range(300)]
    for stop in (0, 1, 15, 16, 47, 255, 256, 257):
        interrupted = stream()
        for _ in range(stop):
            next(interrupted)
        resumed = stream()
        resumed.load_state_dict(json.loads(json.dumps(interrupted.state_dict())))
        got = [next(resumed) for _ in range(300 - stop)]
        assert all(_same(want, have) for want, have in zip(expected[stop:], got)), stop


def test_streamed_windows_are_the_genes_windows(store) -> None:
    """"first" is deterministic: every streamed gene has encode_windows' windows. "random" windows are
    cut from the tokenizer's ids and redrawn each epoch."""
    windower = _windower("first")
    stream = TrainStream(store, windower, rank=0, world_size=1, seed=0, shuffle_buffer_genes=7)
    for example in (next(stream) for _ in range(40)):
        expected = encode_windows(store.gene(example.gene_index).sequence, windower.tokenizer, 8, "first", 2,
                                  np.random.default_rng(0))
        assert [w.tolist() for w in example.windows] == [w.tolist() for w in expected]
    stream = TrainStream(store, _windower("random"), rank=0, world_size=1, seed=0, shuffle_buffer_genes=7)
    by_epoch: dict[int, dict[int, list[int]]] = {0: {}, 1: {}}
    while stream.epoch < 2:
        epoch, example = stream.epoch, next(stream)
        by_epoch.setdefault(epoch, {})[example.gene_index] = example.windows[0].tolist()
    for gene, window in by_epoch[0].items():
        body = windower.tokenizer(store.gene(gene).sequence.decode(), add_special_tokens=False)["input_ids"]
        start = next(i for i in range(len(body) - 5) if body[i : i + 6] == window[1:-1])
        assert window == [0, *body[start : start + 6], 2]
    assert by_epoch[0] != by_epoch[1]


def test_a_state_without_picks_used_resumes_deterministically(store) -> None:
    state = _stream(store).state_dict()
    del state["picks_used"]  # written before picks were drawn in groups
    runs = []
    for _ in range(2):
        stream = _stream(store)
        stream.load_state_dict(state)
        runs.append([next(stream).gene_index for _ in range(40)])
    assert runs[0] == runs[1] and sorted(runs[0][:30]) == list(range(30))


def test_state_buffering_a_gene_of_another_split_is_refused(store) -> None:
    stream = _stream(store)
    next(stream)
    state = stream.state_dict()
    state["buffer_gene_indices"][0] = 35  # a valid-split gene
    with pytest.raises(ValueError, match=r"outside this stream's shards: \[35\]"):
        _stream(store).load_state_dict(state)
