"""`gp embed`: per-gene embeddings of a trained model (any form `model_source.load_predictor` takes), for a
store split or for new genes (FASTA, optional id map and GO annotations), written to one Parquet file.

Parquet layout: one row per gene, in input order (store order for a split, FASTA order for new genes):

    gene_id               string
    sequence_vector       fixed_size_list<float32>[2d]  pooled token states: [attention pool, mean] of
                                                        the backbone's last layer ([mean], width d, with
                                                        `model.pooling=mean`), after the GO branch
    fused_vector          fixed_size_list<float32>[h]   the MLP output the concept bottleneck reads
                                                        (h = `model.mlp_hidden_dim`): sequence and GO fused
    concept_activations   fixed_size_list<float32>[n]   the bottleneck's sigmoid activations, what
                                                        `Predictor.predict` returns; concept order below

One list column per vector kind rather than one column per dimension: a backbone's 2d is in the
thousands (NT-500M: 2,560), which as scalar columns would make a schema nobody reads. The file's
schema metadata holds `gp.concept_ids` (JSON list, the activations' order), `gp.model` and `gp.genes`
(where the genes came from). A gene's windows follow the model's `data.window_strategy` with an RNG seeded
by its sequence, so a gene embeds the same from a store and from a FASTA file (up to float rounding where
batch padding differs); with "all", a gene's vectors pool over all its windows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gp_distributed.commands.model_source import load_predictor
from gp_distributed.data.store import open_store
from gp_distributed.errors import InputError
from gp_distributed.inference.new_genes import (
    GeneInputs,
    Unknown,
    note_unknown_go,
    read_input_genes,
)
from gp_distributed.inference.package import Predictor

VECTOR_COLUMNS = ("sequence_vector", "fused_vector", "concept_activations")


@dataclass(frozen=True)
class StoreSplit:
    """The genes of one split of a store ("all": every gene)."""

    store: Path
    split: str


@dataclass(frozen=True)
class Embeddings:
    """N genes' vectors, in input order (see the module docstring for each kind)."""

    gene_ids: list[str]
    sequence_vectors: np.ndarray  # (N, 2d) float32
    fused_vectors: np.ndarray  # (N, mlp_hidden_dim) float32
    concept_activations: np.ndarray  # (N, n) float32


@dataclass(frozen=True)
class EmbedSummary:
    genes: int
    widths: dict[str, int]  # vector column -> its width
    unknown: dict[str, Unknown]


def embed_store_split(predictor: Predictor, store_path: Path, split: str, *, batch_size: int | None = None,
                      show_progress: bool = False) -> Embeddings:
    """The embeddings of a store split ("all": every gene), in store order. The store must read GO inputs
    as the model does: same alphabet and GO input vocabulary (InputError naming the store otherwise)."""
    store = open_store(store_path)
    vocab = predictor.vocabularies
    if store.alphabet != vocab.alphabet or list(store.go_input_ids) != list(vocab.go_input_ids):
        raise InputError(store_path, "its alphabet or GO input vocabulary is not the model's: embed its genes "
                                     "from a FASTA file (--fasta, --go) instead")
    indices = np.arange(store.n_genes) if split == "all" else store.split_indices(split)
    scored = predictor.predict_store(store, indices, batch_size=batch_size, show_progress=show_progress,
                                     embeddings=True)
    all_ids = store.gene_ids()
    return Embeddings([all_ids[i] for i in indices.tolist()], scored.sequence_vectors, scored.fused_vectors,
                      scored.concept_activations)


def embed_new_genes(predictor: Predictor, inputs: GeneInputs, *, batch_size: int | None = None,
                    show_progress: bool = False) -> tuple[Embeddings, dict[str, Unknown]]:
    """The embeddings of the genes of `inputs` (FASTA order), and what was left out, by reason."""
    genes, unknown = read_input_genes(inputs, predictor.vocabularies)
    predictions = predictor.predict(genes, batch_size=batch_size, show_progress=show_progress, embeddings=True)
    note_unknown_go(predictions, unknown)
    return Embeddings(predictions.gene_ids, predictions.sequence_vectors, predictions.fused_vectors,
                      predictions.concept_activations), unknown


def _vector_column(matrix: np.ndarray) -> pa.FixedSizeListArray:
    values = pa.array(np.ascontiguousarray(matrix, dtype=np.float32).ravel(), type=pa.float32())
    return pa.FixedSizeListArray.from_arrays(values, matrix.shape[1])


def write_embeddings(path: Path, embeddings: Embeddings, metadata: dict[str, str]) -> None:
    """Write the Parquet file of the module docstring, all at once: to a hidden file beside `path`,
    renamed into place only when complete, so a failure leaves no half-written `path`."""
    columns = [embeddings.sequence_vectors, embeddings.fused_vectors, embeddings.concept_activations]
    table = pa.table([pa.array(embeddings.gene_ids, type=pa.string()), *map(_vector_column, columns)],
                     names=["gene_id", *VECTOR_COLUMNS])
    table = table.replace_schema_metadata({f"gp.{key}": value for key, value in metadata.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        pq.write_table(table, partial)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def run_embed(model: str, out: Path, genes: StoreSplit | GeneInputs, *, store: Path | None = None,
              tracking_uri: str | None = None, batch_size: int | None = None,
              show_progress: bool = True) -> EmbedSummary:
    """`gp embed`: load `model`, embed `genes` (a store split, or new genes), write `out` (module
    docstring). A checkpoint takes its vocabularies from the split's store, else from `store`, else from
    the store it trained on."""
    vocabulary_store = genes.store if isinstance(genes, StoreSplit) else store
    predictor = load_predictor(model, store=vocabulary_store, tracking_uri=tracking_uri)
    unknown: dict[str, Unknown] = {}
    if isinstance(genes, StoreSplit):
        embeddings = embed_store_split(predictor, genes.store, genes.split, batch_size=batch_size,
                                       show_progress=show_progress)
        source, where = f"{genes.store} ({genes.split})", genes.store
    else:
        embeddings, unknown = embed_new_genes(predictor, genes, batch_size=batch_size, show_progress=show_progress)
        source, where = str(genes.fasta), genes.fasta
    if not embeddings.gene_ids:
        raise InputError(where, "no gene to embed")
    write_embeddings(out, embeddings, {"concept_ids": json.dumps(predictor.vocabularies.concept_ids),
                                       "model": model, "genes": source})
    widths = {name: int(matrix.shape[1]) for name, matrix in zip(VECTOR_COLUMNS, (
        embeddings.sequence_vectors, embeddings.fused_vectors, embeddings.concept_activations))}
    return EmbedSummary(len(embeddings.gene_ids), widths, unknown)
