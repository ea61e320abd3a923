"""The gene store: one Zarr v3 group per dataset. The only module that imports zarr.

Layout (schema version 1; every ragged field is flat values + int64 offsets of length n_genes + 1):

    seq/residues            uint8   uppercase ASCII residues of all genes, concatenated; sharded
    seq/offsets             int64
    genes/id/values         uint8   UTF-8 gene ids, concatenated (Zarr's string dtypes have no stable spec)
    genes/id/offsets        int64
    genes/symbol/values     uint8
    genes/symbol/offsets    int64
    genes/split             uint8   0 train, 1 valid, 2 test; genes are ordered by (split, id)
    labels/indices          int32   propagated phenotype term indices per gene
    labels/offsets          int64
    go_input/indices        int32   GO annotation terms used as model input
    go_input/offsets        int64
    go_concepts/indices     int32   coarse GO concept targets of the bottleneck
    go_concepts/offsets     int64

Root attributes hold the vocabularies (ids and names in index order), label parents (for Smin and
prediction propagation), exclusive pairs, frequency-bin edges, the split recipe, the source files with
sha256, the ingest summary, the schema version and the store's `fingerprint` (data/fingerprint.py).
Residues carry a CRC32C per chunk, so a corrupted chunk fails loudly on read.

Writes go to a temporary sibling directory that is renamed into place only once complete, so a
failed ingest never leaves a partial store at the destination.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from gp_distributed.data.fingerprint import store_fingerprint
from gp_distributed.data.schema import SPLIT_NAMES
from gp_distributed.errors import InputError

STORE_SCHEMA_VERSION = 1
_RAGGED_FIELDS = ("labels", "go_input", "go_concepts")


@dataclass(frozen=True)
class StoreContent:
    """Everything an ingest produces, in final gene order. Lists are per gene, aligned."""

    gene_ids: list[str]
    gene_symbols: list[str]
    splits: np.ndarray  # (n_genes,) uint8
    sequences: list[bytes]
    labels: list[np.ndarray]  # int32 term indices per gene
    go_input: list[np.ndarray]
    go_concepts: list[np.ndarray]
    attributes: dict[str, Any]


@dataclass(frozen=True)
class GeneRecord:
    index: int
    gene_id: str
    symbol: str
    split: str
    sequence: bytes
    labels: np.ndarray
    go_input: np.ndarray
    go_concepts: np.ndarray


@dataclass(frozen=True)
class GeneBlock:
    """Genes [start, stop) as flat arrays, n = stop - start, with local offsets: gene start + i is
    residues[seq_offsets[i] : seq_offsets[i + 1]], and likewise in each ragged field."""

    start: int
    stop: int
    residues: bytes  # uppercase ASCII residues of the n genes, concatenated
    seq_offsets: np.ndarray  # (n + 1,) int64, from 0 to len(residues)
    labels: tuple[np.ndarray, np.ndarray]  # (int32 phenotype term indices, (n + 1,) int64 offsets)
    go_input: tuple[np.ndarray, np.ndarray]  # (int32 GO input term indices, (n + 1,) int64 offsets)
    go_concepts: tuple[np.ndarray, np.ndarray]  # (int32 concept indices, (n + 1,) int64 offsets)

    def sequences(self) -> list[bytes]:
        """The n genes' residues, one bytes object each."""
        residues = self.residues
        return [residues[lo:hi] for lo, hi in itertools.pairwise(self.seq_offsets.tolist())]

    def rows(self, field: str) -> list[np.ndarray]:
        """The n genes' index arrays of a ragged field ("labels", "go_input", "go_concepts"): views."""
        values, offsets = getattr(self, field)
        return [values[lo:hi] for lo, hi in itertools.pairwise(offsets.tolist())]


@dataclass(frozen=True)
class ShardInfo:
    """A streaming unit: genes [start, stop) of one split, read as one contiguous block."""

    index: int
    split: str
    start: int
    stop: int


def _offsets_of(lengths: Sequence[int]) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(np.asarray(lengths, dtype=np.int64), out=offsets[1:])
    return offsets


def _flat(parts: Sequence[np.ndarray], dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene arrays -> (flat values, int64 offsets), as a ragged field is stored."""
    values = np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)
    return values, _offsets_of([len(p) for p in parts])


def _write_ragged(group: zarr.Group, values_name: str, parts: Sequence[np.ndarray], dtype: str) -> None:
    values, offsets = _flat(parts, dtype)
    group.create_array(values_name, data=values, chunks=(max(len(values), 1),), compressors=ZstdCodec(level=3))
    group.create_array("offsets", data=offsets, chunks=(len(offsets),), compressors=ZstdCodec(level=3))


def _write_text_column(group: zarr.Group, texts: Sequence[str]) -> None:
    _write_ragged(group, "values", [np.frombuffer(t.encode("utf-8"), dtype=np.uint8) for t in texts], "uint8")


def write_store(
    content: StoreContent,
    out: Path,
    *,
    residues_per_chunk: int,
    chunks_per_shard: int,
    overwrite: bool = False,
) -> None:
    """Write `content` to `out` atomically (temp sibling, then rename). Same content -> same bytes."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise InputError(out, "output already exists (pass --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        _write_group(content, staging, residues_per_chunk, chunks_per_shard)
        _swap_into_place(staging, out)
    except OSError as error:  # disk full, quota, permissions: nothing is left behind
        raise InputError(out, f"cannot write the store: {error.strerror or error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap_into_place(staging: Path, out: Path) -> None:
    if not out.exists():
        os.replace(staging, out)
        return
    retired = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    os.replace(out, retired)
    os.replace(staging, out)
    shutil.rmtree(retired, ignore_errors=True)


def _write_group(content: StoreContent, path: Path, residues_per_chunk: int, chunks_per_shard: int) -> None:
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    residues = np.frombuffer(b"".join(content.sequences), dtype=np.uint8)
    chunk = min(residues_per_chunk, max(len(residues), 1))
    seq = root.create_group("seq")
    seq.create_array(
        "residues",
        shape=residues.shape,
        dtype="uint8",
        chunks=(chunk,),
        shards=(chunk * chunks_per_shard,),
        compressors=[ZstdCodec(level=3), Crc32cCodec()],
    )
    if len(residues):
        seq["residues"][:] = residues
    offsets = _offsets_of([len(s) for s in content.sequences])
    seq.create_array("offsets", data=offsets, chunks=(len(offsets),), compressors=ZstdCodec(level=3))

    genes = root.create_group("genes")
    _write_text_column(genes.create_group("id"), content.gene_ids)
    _write_text_column(genes.create_group("symbol"), content.gene_symbols)
    genes.create_array("split", data=np.asarray(content.splits, dtype=np.uint8), chunks=(max(len(content.splits), 1),))
    for name in _RAGGED_FIELDS:
        _write_ragged(root.create_group(name), "indices", getattr(content, name), "int32")
    attrs = content.attributes
    fingerprint = store_fingerprint(attrs["alphabet"], attrs["label_vocab"]["ids"], attrs["go_input_vocab"]["ids"],
                                    attrs["concept_vocab"]["ids"], content.gene_ids, content.splits,
                                    {name: _flat(getattr(content, name), "int32") for name in _RAGGED_FIELDS})
    # One write of zarr.json: attrs.update() rewrites the whole (MB-sized) document once per key.
    root.update_attributes({"schema_version": STORE_SCHEMA_VERSION, **attrs, "fingerprint": fingerprint})


class GeneStore:
    """Read side of the store: validated on open; random access by gene; contiguous block reads."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not (self.path / "zarr.json").is_file():
            raise InputError(self.path, "not a gene store (no zarr.json)")
        try:
            self._root = zarr.open_group(str(self.path), mode="r", zarr_format=3)
            self.attrs: dict[str, Any] = self._root.attrs.asdict()
            self._load_index_arrays()
        except InputError:
            raise
        except Exception as error:  # zarr raises many kinds; the user needs the store name and reason
            raise InputError(self._damaged_metadata() or self.path,
                             f"unreadable gene store: {type(error).__name__}: {error}") from None
        self._validate()

    def _damaged_metadata(self) -> Path | None:
        """The first zarr.json in the store that is not a JSON object (a torn or overwritten write)."""
        for metadata in sorted(self.path.rglob("zarr.json")):
            try:
                if isinstance(json.loads(metadata.read_bytes()), dict):
                    continue
            except (OSError, ValueError):
                pass
            return metadata
        return None

    def _load_index_arrays(self) -> None:
        root = self._root
        self._residues = root["seq/residues"]
        self.seq_offsets = np.asarray(root["seq/offsets"][:])
        self._text = {
            name: (bytes(np.asarray(root[f"genes/{name}/values"][:])), np.asarray(root[f"genes/{name}/offsets"][:]))
            for name in ("id", "symbol")
        }
        self.splits = np.asarray(root["genes/split"][:])
        self._ragged = {
            name: (np.asarray(root[f"{name}/indices"][:]), np.asarray(root[f"{name}/offsets"][:]))
            for name in _RAGGED_FIELDS
        }

    def _fail(self, message: str) -> None:
        raise InputError(self.path, message)

    def _validate(self) -> None:
        version = self.attrs.get("schema_version")
        if version != STORE_SCHEMA_VERSION:
            self._fail(f"schema version {version!r}, this gp_distributed reads {STORE_SCHEMA_VERSION}")
        n = self.n_genes
        checks = {"seq/offsets": self.seq_offsets, "genes/split": None}
        checks.update({f"genes/{k}/offsets": v[1] for k, v in self._text.items()})
        checks.update({f"{k}/offsets": v[1] for k, v in self._ragged.items()})
        for name, offsets in checks.items():
            if offsets is None:
                continue
            if len(offsets) != n + 1 or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
                self._fail(f"{name}: offsets must start at 0, increase, and have n_genes + 1 entries")
        if self.seq_offsets[-1] != self._residues.shape[0]:
            self._fail("seq/offsets: last offset does not match seq/residues length")
        for name, (values, offsets) in self._ragged.items():
            if offsets[-1] != len(values):
                self._fail(f"{name}/offsets: last offset does not match {name}/indices length")
        if len(self.splits) != n or (n and self.splits.max() >= len(SPLIT_NAMES)):
            self._fail("genes/split: wrong length or unknown split code")
        if np.any(np.diff(self.splits.astype(np.int16)) < 0):
            self._fail("genes/split: genes must be ordered by split")
        sizes = {"labels": len(self.label_ids), "go_input": len(self.go_input_ids), "go_concepts": len(self.concept_ids)}
        for name, (values, _) in self._ragged.items():
            if len(values) and (values.min() < 0 or values.max() >= sizes[name]):
                self._fail(f"{name}/indices: index outside the vocabulary of {sizes[name]} terms")

    # --- vocabularies and metadata -------------------------------------------------------------
    @property
    def n_genes(self) -> int:
        return len(self.seq_offsets) - 1

    @property
    def alphabet(self) -> str:
        return self.attrs["alphabet"]

    @property
    def label_ids(self) -> list[str]:
        return self.attrs["label_vocab"]["ids"]

    @property
    def label_names(self) -> list[str]:
        return self.attrs["label_vocab"]["names"]

    @property
    def label_parents(self) -> list[list[int]]:
        return self.attrs["label_vocab"]["parents"]

    @property
    def label_bins(self) -> np.ndarray:
        return np.asarray(self.attrs["label_vocab"]["bins"], dtype=np.int64)

    @property
    def bin_labels(self) -> list[str]:
        return self.attrs["frequency_bins"]["labels"]

    @property
    def go_input_ids(self) -> list[str]:
        return self.attrs["go_input_vocab"]["ids"]

    @property
    def concept_ids(self) -> list[str]:
        return self.attrs["concept_vocab"]["ids"]

    @property
    def concept_names(self) -> list[str]:
        return self.attrs["concept_vocab"]["names"]

    @property
    def exclusive_pairs(self) -> np.ndarray:
        return np.asarray(self.attrs["exclusive_pairs"], dtype=np.int64).reshape(-1, 2)

    def split_indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.splits == SPLIT_NAMES.index(split))

    @functools.cached_property
    def fingerprint(self) -> dict[str, str]:
        """The store's identity (`data.fingerprint`): recorded at ingest, computed for older stores."""
        recorded = self.attrs.get("fingerprint")
        if isinstance(recorded, dict):
            return dict(recorded)
        return store_fingerprint(self.alphabet, self.label_ids, self.go_input_ids, self.concept_ids, self.gene_ids(),
                                 self.splits, self._ragged)

    # --- gene access ---------------------------------------------------------------------------
    def gene_ids(self) -> list[str]:
        return self._texts("id", 0, self.n_genes)

    def ragged(self, name: str, index: int) -> np.ndarray:
        values, offsets = self._ragged[name]
        return values[offsets[index] : offsets[index + 1]]

    def multi_hot(self, name: str, indices: np.ndarray) -> np.ndarray:
        """(len(indices), vocab) uint8 matrix of a ragged field for the given genes."""
        width = {"labels": len(self.label_ids), "go_input": len(self.go_input_ids), "go_concepts": len(self.concept_ids)}
        matrix = np.zeros((len(indices), width[name]), dtype=np.uint8)
        for row, gene in enumerate(indices):
            matrix[row, self.ragged(name, int(gene))] = 1
        return matrix

    def gene(self, index: int) -> GeneRecord:
        return self.read_block(index, index + 1)[0]

    def read_block_arrays(self, start: int, stop: int) -> GeneBlock:
        """Genes [start, stop) as flat arrays: one contiguous residue read, slices of the ragged fields,
        no per-gene objects (the training stream's read). IndexError for a block outside the store;
        InputError naming the residue shard files when a chunk fails its checksum."""
        if not 0 <= start <= stop <= self.n_genes:
            raise IndexError(f"gene block [{start}, {stop}) outside 0..{self.n_genes}")
        seq_offsets = self.seq_offsets[start : stop + 1]
        residues = self._read_residues(int(seq_offsets[0]), int(seq_offsets[-1]))
        ragged: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, (values, offsets) in self._ragged.items():
            local = offsets[start : stop + 1]
            ragged[name] = (values[local[0] : local[-1]], local - local[0])
        return GeneBlock(start, stop, residues, seq_offsets - seq_offsets[0], **ragged)

    def read_block(self, start: int, stop: int) -> list[GeneRecord]:
        """Genes [start, stop) as records: `read_block_arrays`, then ids and symbols decoded per gene."""
        block = self.read_block_arrays(start, stop)
        ids, symbols = self._texts("id", start, stop), self._texts("symbol", start, stop)
        splits = [SPLIT_NAMES[code] for code in self.splits[start:stop].tolist()]
        fields = zip(range(start, stop), ids, symbols, splits, block.sequences(), block.rows("labels"),
                     block.rows("go_input"), block.rows("go_concepts"))
        return [GeneRecord(*gene) for gene in fields]

    def _texts(self, name: str, start: int, stop: int) -> list[str]:
        values, offsets = self._text[name]
        return [values[lo:hi].decode("utf-8") for lo, hi in itertools.pairwise(offsets[start : stop + 1].tolist())]

    def _read_residues(self, lo: int, hi: int) -> bytes:
        try:
            return bytes(np.asarray(self._residues[lo:hi]))
        except ValueError as error:  # zarr's CRC32C check: name the shard files the range touches
            shard_size = self._residues.shards[0]
            files = ", ".join(f"seq/residues/c/{k}" for k in range(lo // shard_size, (max(hi, lo + 1) - 1) // shard_size + 1))
            raise InputError(self.path, f"corrupted residue data in {files}: {error}") from None

    def shards(self, split: str, genes_per_shard: int | None = None) -> list[ShardInfo]:
        """Contiguous gene blocks of one split, in store order; the unit of per-rank streaming."""
        size = genes_per_shard or int(self.attrs["genes_per_shard"])
        members = self.split_indices(split)
        if len(members) == 0:
            return []
        first, last = int(members[0]), int(members[-1]) + 1
        return [
            ShardInfo(index=k, split=split, start=lo, stop=min(lo + size, last))
            for k, lo in enumerate(range(first, last, size))
        ]

    def summary(self) -> dict[str, Any]:
        return dict(self.attrs["summary"])


def open_store(path: Path | str) -> GeneStore:
    return GeneStore(Path(path))


def format_summary(summary: dict[str, Any]) -> list[str]:
    """Human-readable lines of an ingest summary (the CLI prints them)."""
    splits = summary["genes_per_split"]
    lines = [
        f"genes kept: {summary['genes_kept']} (train {splits['train']}, valid {splits['valid']}, test {splits['test']})",
        f"phenotype terms kept: {summary['terms_kept']} (min_genes {summary['min_genes']})",
    ]
    lines += [f"  terms in bin {label}: {count}" for label, count in summary["terms_per_bin"].items()]
    lines.append(f"GO input terms: {summary['go_input_terms']}; GO concepts: {summary['concepts_kept']}")
    lines.append(f"exclusive pairs: {summary['exclusive_pairs']}; residues: {summary['residues']}")
    dropped = summary.get("dropped", {})
    lines.append("dropped: " + (", ".join(f"{k}: {v}" for k, v in sorted(dropped.items())) or "nothing"))
    return lines
