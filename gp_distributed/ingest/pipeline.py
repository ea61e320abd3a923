"""`gp ingest`: raw files -> validated, propagated, filtered, split records -> one Zarr gene store.

Phases (each a function): read inputs, map genes to sequences, resolve and propagate phenotype labels,
filter terms by `min_genes`, build GO inputs and depth-k GO concepts, split, mine exclusive pairs,
order genes by (split, id), write atomically. Skips a user expects (genes without sequence, obsolete
terms, excluded evidence) are counted and reported; `strict` turns them into errors.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from gp_distributed.config import IngestConfig
from gp_distributed.data.schema import SPLIT_NAMES
from gp_distributed.data.store import StoreContent, write_store
from gp_distributed.errors import ConfigError, InputError
from gp_distributed.hashing import sha256_file
from gp_distributed.ingest.fasta import read_fasta
from gp_distributed.ingest.go_annotations import read_go_annotations
from gp_distributed.ingest.id_map import read_id_map
from gp_distributed.ingest.labels import read_labels
from gp_distributed.ingest.splits import assign_splits, split_counts
from gp_distributed.ontology.exclusive_pairs import (
    mine_exclusive_pairs,
    read_exclusive_pairs_tsv,
)
from gp_distributed.ontology.obo import (
    Ontology,
    bin_labels,
    frequency_bin,
    load_ontology,
)

DEFAULT_LABEL_ROOTS = {"hpo": "HP:0000118", "mgi": "MP:0000001", "impc": "MP:0000001"}
_REQUIRED_INPUTS = ("fasta", "labels", "ontology", "out")


@dataclass
class _Skips:
    """Counts of records dropped by reason; with `strict`, the first one raises instead."""

    strict: bool
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, reason: str, path: Path, line: int | None = None, n: int = 1) -> None:
        if self.strict:
            raise InputError(path, f"{reason} (strict mode turns skips into errors)", line)
        self.counts[reason] += n


def _check_inputs(config: IngestConfig) -> None:
    for name in _REQUIRED_INPUTS:
        if getattr(config, name) is None:
            raise ConfigError("ingest", f"ingest.{name}", "required (flag --" + name.replace("_", "-") + ")")
    if (config.go is None) != (config.go_ontology is None):
        raise ConfigError("ingest", "ingest.go_ontology", "--go and --go-ontology go together")
    if config.labels_format == "tsv" and config.label_root is None:
        raise ConfigError("ingest", "ingest.label_root", "required with --labels-format tsv")
    for name in ("fasta", "id_map", "labels", "ontology", "go", "go_ontology", "exclusive_pairs"):
        path = getattr(config, name)
        if path is not None and not Path(path).is_file():
            raise InputError(path, "no such file")
    if Path(config.out).exists() and not config.overwrite:
        raise InputError(config.out, "output already exists (pass --overwrite to replace it)")


@dataclass(frozen=True)
class _Sequences:
    by_gene: dict[str, bytes]  # label gene id -> residues
    symbols: dict[str, str]
    known_genes: frozenset[str] | None  # genes the id map names; None without an id map


def _genes_with_sequences(config: IngestConfig, skips: _Skips) -> _Sequences:
    """Label gene id -> sequence (through the id map when given) and symbols from the id map."""
    sequences = read_fasta(config.fasta, config.alphabet)
    if config.id_map is None:
        return _Sequences(sequences, {}, None)
    id_map = read_id_map(config.id_map)
    by_gene = {}
    for gene, accession in id_map.gene_to_accession.items():
        if accession in sequences:
            by_gene[gene] = sequences[accession]
        else:
            skips.add("id map accession not in FASTA", config.id_map)
    return _Sequences(by_gene, dict(id_map.gene_to_symbol), frozenset(id_map.gene_to_accession))


def _label_terms_per_gene(
    config: IngestConfig, phenotypes: Ontology, sequences: _Sequences, skips: _Skips
) -> tuple[dict[str, set[str]], dict[str, str]]:
    """Propagated label terms (under the root, root excluded) for every gene that has a sequence."""
    root = config.label_root or DEFAULT_LABEL_ROOTS[config.labels_format]
    if root not in phenotypes:
        raise InputError(config.ontology, f"label root {root} is not a term of this ontology")
    table = read_labels(config.labels, config.labels_format, mgi_targeted_only=config.mgi_targeted_only)
    for reason, count in table.skipped.items():
        skips.counts[reason] += count
    under_root = phenotypes.descendants(root)
    direct: dict[str, set[str]] = defaultdict(set)
    without_sequence: set[str] = set()
    for record in table.records:
        if sequences.known_genes is not None and record.gene_id not in sequences.known_genes:
            raise InputError(config.labels, f"gene {record.gene_id} is not in the id map {Path(config.id_map).name}", record.line)
        if record.gene_id not in sequences.by_gene:
            if record.gene_id not in without_sequence:
                skips.add("gene without sequence", config.labels, record.line)
                without_sequence.add(record.gene_id)
            continue
        term = phenotypes.resolve(record.term_id)
        if term is None:
            if not phenotypes.is_obsolete(record.term_id):
                raise InputError(config.labels, f"unknown term {record.term_id} (not in {Path(config.ontology).name})", record.line)
            skips.add("label term obsolete", config.labels, record.line)
            continue
        if term not in under_root or term == root:
            skips.counts["label term outside root"] += 1
            continue
        direct[record.gene_id].add(term)
    propagated = {gene: (phenotypes.propagate(terms) & under_root) - {root} for gene, terms in direct.items()}
    return propagated, dict(table.gene_to_symbol)


def _go_per_gene(
    config: IngestConfig, genes: set[str], skips: _Skips
) -> tuple[dict[str, set[str]], dict[str, set[str]], Ontology | None]:
    """(direct GO input terms per gene, depth-k GO concepts per gene, GO ontology)."""
    if config.go is None:
        return {}, {}, None
    go = load_ontology(config.go_ontology, relations=("is_a", "part_of"))
    table = read_go_annotations(
        config.go, config.go_format, taxon=config.go_taxon, evidence_exclude=config.go_evidence_exclude
    )
    for reason, count in table.skipped.items():
        skips.counts[reason] += count
    direct: dict[str, set[str]] = defaultdict(set)
    for record in table.records:
        if record.gene_id not in genes:
            skips.counts["GO annotation of a gene not kept"] += 1
            continue
        term = go.resolve(record.go_id)
        if term is None:
            skips.add("GO term unknown or obsolete", config.go, record.line)
            continue
        direct[record.gene_id].add(term)
    concepts = {
        gene: {t for t in go.propagate(terms) if go.depth(t) == config.concept_depth} for gene, terms in direct.items()
    }
    return direct, concepts, go


def _vocabulary(gene_terms: dict[str, set[str]], min_genes: int) -> list[str]:
    counts = Counter(term for terms in gene_terms.values() for term in terms)
    return sorted(term for term, count in counts.items() if count >= min_genes)


def _indices(terms: set[str], index: dict[str, int]) -> np.ndarray:
    return np.array(sorted(index[t] for t in terms if t in index), dtype=np.int32)


def build_store_content(config: IngestConfig, progress: tqdm) -> StoreContent:
    """Read and combine every input into the store's content (no writing)."""
    skips = _Skips(strict=config.strict)
    progress.set_description("reading phenotype ontology")
    phenotypes = load_ontology(config.ontology, relations=("is_a",))
    progress.update()
    progress.set_description("reading sequences")
    sequences = _genes_with_sequences(config, skips)
    gene_sequence = sequences.by_gene
    progress.update()
    progress.set_description("reading labels")
    gene_labels, label_symbols = _label_terms_per_gene(config, phenotypes, sequences, skips)
    symbols = {**label_symbols, **sequences.symbols}
    progress.update()

    label_vocab = _vocabulary(gene_labels, config.min_genes)
    label_index = {term: i for i, term in enumerate(label_vocab)}
    kept_genes = sorted(g for g, terms in gene_labels.items() if any(t in label_index for t in terms))
    if len(kept_genes) < len(gene_labels):
        skips.add("gene without a term of >= min_genes genes", config.labels, n=len(gene_labels) - len(kept_genes))
    if not kept_genes:
        raise InputError(config.labels, "no gene left after mapping sequences and filtering terms")

    progress.set_description("reading GO annotations")
    go_direct, go_concepts, go = _go_per_gene(config, set(kept_genes), skips)
    progress.update()
    kept_go = {g: go_direct.get(g, set()) for g in kept_genes}
    if go is not None and config.go_input_closure:
        kept_go = {g: go.propagate(terms) for g, terms in kept_go.items()}
    go_input_vocab = _vocabulary(kept_go, 1)
    concept_vocab = _vocabulary({g: go_concepts.get(g, set()) for g in kept_genes}, config.min_concept_genes)

    progress.set_description("splitting and mining exclusive pairs")
    label_rows = [_indices(gene_labels[g], label_index) for g in kept_genes]
    splits = assign_splits(kept_genes, label_rows, len(label_vocab), config.split)
    # Store order: by split, then gene id, so each split is one contiguous range for streaming.
    order = sorted(range(len(kept_genes)), key=lambda i: (splits[i], kept_genes[i]))
    pairs = set(mine_exclusive_pairs(phenotypes, label_vocab))
    if config.exclusive_pairs is not None:
        user_pairs = read_exclusive_pairs_tsv(config.exclusive_pairs, phenotypes)
        pairs |= {tuple(sorted(p)) for p in user_pairs if p[0] in label_index and p[1] in label_index}
    progress.update()

    gene_counts = np.bincount(np.concatenate(label_rows), minlength=len(label_vocab))
    bins = [frequency_bin(int(c), config.frequency_bin_edges) for c in gene_counts]
    labels_of_bins = bin_labels(config.frequency_bin_edges)
    go_index = {t: i for i, t in enumerate(go_input_vocab)}
    concept_index = {t: i for i, t in enumerate(concept_vocab)}
    ordered_genes = [kept_genes[i] for i in order]
    ordered_splits = splits[order]
    summary = {
        "genes_kept": len(kept_genes),
        "genes_per_split": dict(split_counts(ordered_splits)),
        "terms_kept": len(label_vocab),
        "min_genes": config.min_genes,
        "terms_per_bin": {label: int(sum(1 for b in bins if b == k)) for k, label in enumerate(labels_of_bins)},
        "go_input_terms": len(go_input_vocab),
        "concepts_kept": len(concept_vocab),
        "exclusive_pairs": len(pairs),
        "residues": int(sum(len(gene_sequence[g]) for g in kept_genes)),
        "dropped": dict(sorted(skips.counts.items())),
    }
    attributes: dict[str, Any] = {
        "alphabet": config.alphabet,
        "label_vocab": {
            "ids": label_vocab,
            "names": [phenotypes.name(t) for t in label_vocab],
            "n_genes": [int(c) for c in gene_counts],
            "bins": bins,
            "parents": [sorted(label_index[p] for p in phenotypes.parents(t) if p in label_index) for t in label_vocab],
        },
        "label_root": config.label_root or DEFAULT_LABEL_ROOTS[config.labels_format],
        "go_input_vocab": {
            "ids": go_input_vocab,
            "names": [go.name(t) for t in go_input_vocab] if go else [],
            # Direct parents within the vocabulary, so new genes' GO sets are closed like training's.
            "parents": [sorted(go_index[p] for p in go.parents(t) if p in go_index) for t in go_input_vocab] if go else [],
            "closed": bool(go is not None and config.go_input_closure),
        },
        "concept_vocab": {
            "ids": concept_vocab,
            "names": [go.name(t) for t in concept_vocab] if go else [],
            "depth": config.concept_depth,
        },
        "exclusive_pairs": [[label_index[a], label_index[b]] for a, b in sorted(pairs)],
        "frequency_bins": {"edges": list(config.frequency_bin_edges), "labels": labels_of_bins},
        "split": {**config.split.model_dump(mode="json"), "names": list(SPLIT_NAMES)},
        "genes_per_shard": config.genes_per_shard,
        "go_evidence_exclude": list(config.go_evidence_exclude),
        "sources": _sources(config),
        "summary": summary,
    }
    return StoreContent(
        gene_ids=ordered_genes,
        gene_symbols=[symbols.get(g, "") for g in ordered_genes],
        splits=ordered_splits,
        sequences=[gene_sequence[g] for g in ordered_genes],
        labels=[label_rows[i] for i in order],
        go_input=[_indices(kept_go[g], go_index) for g in ordered_genes],
        go_concepts=[_indices(go_concepts.get(g, set()), concept_index) for g in ordered_genes],
        attributes=attributes,
    )


def _sources(config: IngestConfig) -> dict[str, dict[str, str]]:
    """Source files by role: base name (not the path, so stores are identical across machines) and sha256."""
    sources = {}
    for role in ("fasta", "id_map", "labels", "ontology", "go", "go_ontology", "exclusive_pairs"):
        path = getattr(config, role)
        if path is not None:
            sources[role] = {"file": Path(path).name, "sha256": sha256_file(Path(path))}
    return sources


def run_ingest(config: IngestConfig, *, show_progress: bool = True) -> dict[str, Any]:
    """Validate inputs, build the content, write the store atomically; returns the ingest summary."""
    _check_inputs(config)
    with tqdm(total=6, disable=not show_progress, unit="phase", leave=False) as progress:
        content = build_store_content(config, progress)
        progress.set_description("writing store")
        write_store(
            content,
            Path(config.out),
            residues_per_chunk=config.residues_per_chunk,
            chunks_per_shard=config.chunks_per_shard,
            overwrite=config.overwrite,
        )
        progress.update()
    return content.attributes["summary"]
