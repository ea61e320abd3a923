"""The gene store: atomic writes, byte-identical rewrites, validation on open, block reads."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from gp_distributed.data.store import (
    STORE_SCHEMA_VERSION,
    StoreContent,
    open_store,
    write_store,
)
from gp_distributed.errors import InputError


def _content(n_genes: int = 7) -> StoreContent:
    rng = np.random.default_rng(0)
    sequences = [bytes(rng.choice(list(b"ACDEFGHIK"), size=int(rng.integers(5, 40))).tolist()) for _ in range(n_genes)]
    return StoreContent(
        gene_ids=[f"G{i}" for i in range(n_genes)],
        gene_symbols=[f"SYM{i}" if i % 2 else "" for i in range(n_genes)],
        splits=np.array(sorted(i % 3 for i in range(n_genes)), dtype=np.uint8),
        sequences=sequences,
        labels=[np.array(sorted({i % 4, 4}), dtype=np.int32) for i in range(n_genes)],
        go_input=[np.arange(i % 3, dtype=np.int32) for i in range(n_genes)],
        go_concepts=[np.array([i % 2], dtype=np.int32) for i in range(n_genes)],
        attributes={
            "alphabet": "protein",
            "label_vocab": {"ids": [f"HP:{i:07d}" for i in range(5)], "names": list("abcde"),
                            "parents": [[4], [4], [4], [4], []], "bins": [0, 0, 1, 1, 3], "n_genes": [2] * 5},
            "go_input_vocab": {"ids": ["GO:1", "GO:2"], "names": ["x", "y"]},
            "concept_vocab": {"ids": ["GO:8", "GO:9"], "names": ["p", "q"], "depth": 2},
            "exclusive_pairs": [[0, 1]],
            "frequency_bins": {"edges": [11, 31, 101, 301], "labels": ["11-30", "31-100", "101-300", ">=301"]},
            "genes_per_shard": 2,
            "summary": {"genes_kept": n_genes},
        },
    )


def _tree_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def test_round_trip_by_gene_and_block(tmp_path: Path) -> None:
    content = _content()
    write_store(content, tmp_path / "s.zarr", residues_per_chunk=1024, chunks_per_shard=2)
    store = open_store(tmp_path / "s.zarr")
    assert store.n_genes == 7
    assert store.attrs["schema_version"] == STORE_SCHEMA_VERSION
    for i in range(7):
        record = store.gene(i)
        assert record.sequence == content.sequences[i]
        assert record.gene_id == f"G{i}" and record.symbol == content.gene_symbols[i]
        np.testing.assert_array_equal(record.labels, content.labels[i])
        np.testing.assert_array_equal(record.go_input, content.go_input[i])
        np.testing.assert_array_equal(record.go_concepts, content.go_concepts[i])
        assert record.index == i and record.split == ("train", "valid", "test")[content.splits[i]]
    block = store.read_block(2, 6)
    assert [r.sequence for r in block] == content.sequences[2:6] and [r.index for r in block] == [2, 3, 4, 5]
    assert [r.gene_id for r in block] == ["G2", "G3", "G4", "G5"] and store.gene_ids() == content.gene_ids
    assert store.multi_hot("labels", np.array([0, 1])).tolist() == [[1, 0, 0, 0, 1], [0, 1, 0, 0, 1]]


def test_block_arrays_are_the_genes_with_local_offsets(tmp_path: Path) -> None:
    content = _content()
    write_store(content, tmp_path / "s.zarr", residues_per_chunk=1024, chunks_per_shard=2)
    store = open_store(tmp_path / "s.zarr")
    block = store.read_block_arrays(2, 6)
    assert (block.start, block.stop) == (2, 6)
    assert block.residues == b"".join(content.sequences[2:6])
    assert block.seq_offsets.tolist() == np.cumsum([0, *map(len, content.sequences[2:6])]).tolist()
    assert block.sequences() == content.sequences[2:6]
    for name in ("labels", "go_input", "go_concepts"):
        values, offsets = getattr(block, name)
        genes = getattr(content, name)[2:6]
        assert values.tolist() == np.concatenate(genes).tolist() and values.dtype == np.int32
        assert offsets.tolist() == np.cumsum([0, *map(len, genes)]).tolist()
        assert [row.tolist() for row in block.rows(name)] == [gene.tolist() for gene in genes]
    empty = store.read_block_arrays(7, 7)
    assert empty.residues == b"" and empty.seq_offsets.tolist() == [0] and empty.rows("labels") == []
    with pytest.raises(IndexError, match=r"\[5, 8\) outside 0..7"):
        store.read_block_arrays(5, 8)


def test_shards_are_contiguous_blocks_within_a_split(tmp_path: Path) -> None:
    write_store(_content(), tmp_path / "s.zarr", residues_per_chunk=1024, chunks_per_shard=2)
    store = open_store(tmp_path / "s.zarr")
    train = store.split_indices("train")
    shards = store.shards("train")
    assert [(s.start, s.stop) for s in shards] == [(0, 2), (2, 3)]
    assert sum(s.stop - s.start for s in shards) == len(train)
    assert store.shards("valid", genes_per_shard=10)[0].stop == store.split_indices("valid")[-1] + 1


def test_same_content_gives_identical_bytes(tmp_path: Path) -> None:
    write_store(_content(), tmp_path / "a.zarr", residues_per_chunk=1024, chunks_per_shard=2)
    write_store(_content(), tmp_path / "b.zarr", residues_per_chunk=1024, chunks_per_shard=2)
    assert _tree_digest(tmp_path / "a.zarr") == _tree_digest(tmp_path / "b.zarr")


def test_existing_output_is_refused_then_replaced_with_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "s.zarr"
    write_store(_content(5), out, residues_per_chunk=1024, chunks_per_shard=2)
    with pytest.raises(InputError, match="already exists"):
        write_store(_content(7), out, residues_per_chunk=1024, chunks_per_shard=2)
    write_store(_content(7), out, residues_per_chunk=1024, chunks_per_shard=2, overwrite=True)
    assert open_store(out).n_genes == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]  # no staging or retired copies left


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    broken = _content()
    broken.attributes["not_json"] = object()  # attribute serialisation fails after arrays were written
    with pytest.raises(TypeError):
        write_store(broken, tmp_path / "s.zarr", residues_per_chunk=1024, chunks_per_shard=2)
    assert list(tmp_path.iterdir()) == []


def test_open_rejects_a_directory_that_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a gene store"):
        open_store(tmp_path)


def test_open_rejects_wrong_schema_version(tmp_path: Path) -> None:
    content = _content()
    content.attributes["schema_version"] = 99
    write_store(content, tmp_path / "s.zarr", residues_per_chunk=1024, chunks_per_shard=2)
    with pytest.raises(InputError, match="schema version 99"):
        open_store(tmp_path / "s.zarr")


def test_open_rejects_index_outside_vocabulary(tmp_path: Path) -> None:
    content = _content()
    content.labels[0] = np.array([42], dtype=np.int32)
    write_store(content, tmp_path / "s.zarr", residues_per_chunk=1024, chunks_per_shard=2)
    with pytest.raises(InputError, match="labels/indices: index outside"):
        open_store(tmp_path / "s.zarr")


@pytest.mark.parametrize("read", ["read_block", "read_block_arrays"])
def test_corrupted_residue_chunk_fails_on_read(tmp_path: Path, read: str) -> None:
    write_store(_content(), tmp_path / "s.zarr", residues_per_chunk=1024, chunks_per_shard=2)
    shard = next((tmp_path / "s.zarr" / "seq" / "residues" / "c").rglob("*"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 3] ^= 0xFF
    shard.write_bytes(bytes(data))
    store = open_store(tmp_path / "s.zarr")
    with pytest.raises(InputError, match=r"corrupted residue data in seq/residues/c/0: .*checksum"):
        getattr(store, read)(0, store.n_genes)
