"""A gene store's identity: what a model trained on it depends on, as a few hashes (pure; no zarr).

A fingerprint maps each part to a value (the alphabet) or a hex sha256:

    alphabet         residue alphabet ("protein" / "dna"): decides the tokenizer
    label_vocab      phenotype term ids in index order: the head's output index space
    go_input_vocab   GO input term ids in index order: the GO branch's embedding rows
    concept_vocab    GO concept ids in index order: the bottleneck's units
    genes            gene ids with their split codes, in store order: what is trained and evaluated on
    annotations      the per-gene label, GO input and concept indices: the training targets and inputs

Sequences are not hashed (reading every residue of a large store would cost minutes); the store's
`sources` attribute keeps the sha256 of the FASTA it was built from. `data/store.py` records the
fingerprint at ingest (store attribute `fingerprint`) and computes it for stores written before;
`checkpoint.py` compares them and says which parts matter for resuming and for prediction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from gp_distributed.hashing import sha256_bytes, sha256_json


def store_fingerprint(alphabet: str, label_ids: Sequence[str], go_input_ids: Sequence[str],
                      concept_ids: Sequence[str], gene_ids: Sequence[str], splits: np.ndarray,
                      ragged: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, str]:
    """The fingerprint (module docstring) of a store's content. `ragged` maps each ragged field name
    ("labels", "go_input", "go_concepts") to its (int indices, int64 offsets) arrays over all genes."""
    annotation_bytes = []
    for name in sorted(ragged):
        values, offsets = ragged[name]
        # Fixed little-endian widths, so the hash does not depend on how the arrays were read or built.
        annotation_bytes += [name.encode("utf-8"), np.asarray(offsets, dtype="<i8").tobytes(),
                             np.asarray(values, dtype="<i4").tobytes()]
    return {
        "alphabet": alphabet,
        "label_vocab": sha256_json(list(label_ids)),
        "go_input_vocab": sha256_json(list(go_input_ids)),
        "concept_vocab": sha256_json(list(concept_ids)),
        "genes": sha256_json([list(gene_ids), np.asarray(splits).astype(int).tolist()]),
        "annotations": sha256_bytes(annotation_bytes),
    }
