"""Genes that are not in a store (FASTA, optional id map and GO annotations), read onto a trained
model's vocabularies: what `gp predict`, `gp explain`, `gp embed` and `gp evaluate --new-data` score.

Inputs are read with the ingest readers (same validation, same `InputError`s). Genes are the FASTA
records in file order; with an id map, the records it maps, named by the map's gene ids (the ids the
GO file uses). GO annotations are filtered by the evidence codes the model's training excluded, mapped
through the GO ontology when one is given (alt ids, replacements; closed under is_a/part_of when the
model's training closed its GO inputs, else the closure happens within the model's GO vocabulary), and
restricted to the model's GO input vocabulary. Everything left out is counted with examples
(`Unknown`), never dropped silently.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from gp_distributed.inference.package import InputGene, Predictions, Vocabularies
from gp_distributed.ingest.fasta import read_fasta
from gp_distributed.ingest.go_annotations import GoFormat, read_go_annotations
from gp_distributed.ingest.id_map import read_id_map
from gp_distributed.ontology.obo import load_ontology

_EXAMPLES = 5


@dataclass
class Unknown:
    """Items left out for one reason: how many, and the first few."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, item: str) -> None:
        self.count += 1
        if len(self.examples) < _EXAMPLES and item not in self.examples:
            self.examples.append(item)


def format_unknown(unknown: dict[str, Unknown]) -> list[str]:
    """One line per reason: `reason: count (e.g. a, b, c)`."""
    return [f"{reason}: {u.count}" + (f" (e.g. {', '.join(u.examples)})" if u.examples else "")
            for reason, u in sorted(unknown.items()) if u.count]


@dataclass(frozen=True)
class GeneInputs:
    """The files describing genes to score (label files aside): FASTA, optional id map and GO."""

    fasta: Path
    id_map: Path | None = None
    go: Path | None = None
    go_format: GoFormat = "gene2go"
    go_ontology: Path | None = None
    go_taxon: int | None = None


def _sequences(inputs: GeneInputs, alphabet: str, unknown: dict[str, Unknown]) -> list[tuple[str, bytes]]:
    """(gene id, residues) in FASTA order; through the id map when one is given."""
    sequences = read_fasta(inputs.fasta, alphabet)  # type: ignore[arg-type]  # the store's alphabet
    if inputs.id_map is None:
        return list(sequences.items())
    id_map = read_id_map(inputs.id_map)
    gene_of = {accession: gene for gene, accession in id_map.gene_to_accession.items()}
    for gene, accession in id_map.gene_to_accession.items():
        if accession not in sequences:
            unknown["id map genes whose accession is not in the FASTA"].add(gene)
    for accession in sequences:
        if accession not in gene_of:
            unknown["FASTA records not in the id map (not scored)"].add(accession)
    return [(gene_of[accession], seq) for accession, seq in sequences.items() if accession in gene_of]


def _go_terms(inputs: GeneInputs, genes: set[str], vocab: Vocabularies,
              unknown: dict[str, Unknown]) -> dict[str, set[str]]:
    """GO ids per gene, mapped through the GO ontology when given, evidence filtered like training's."""
    if inputs.go is None:
        return {}
    table = read_go_annotations(inputs.go, inputs.go_format, taxon=inputs.go_taxon,
                                evidence_exclude=tuple(vocab.go_evidence_exclude))
    ontology = load_ontology(inputs.go_ontology, relations=("is_a", "part_of")) if inputs.go_ontology else None
    terms: dict[str, set[str]] = defaultdict(set)
    for record in table.records:
        if record.gene_id not in genes:
            unknown["GO annotations of genes not scored"].add(record.gene_id)
            continue
        term = ontology.resolve(record.go_id) if ontology is not None else record.go_id
        if term is None:
            unknown["GO ids unknown or obsolete in the GO ontology"].add(f"{record.go_id} (line {record.line})")
            continue
        terms[record.gene_id].add(term)
    if ontology is not None and vocab.go_input_closed:  # ancestors of terms the model never saw count too
        return {gene: ontology.propagate(direct) for gene, direct in terms.items()}
    return terms


def read_input_genes(inputs: GeneInputs, vocab: Vocabularies) -> tuple[list[InputGene], dict[str, Unknown]]:
    """The genes of `inputs` in FASTA order, and what was left out, by reason."""
    unknown: dict[str, Unknown] = defaultdict(Unknown)
    sequences = _sequences(inputs, vocab.alphabet, unknown)
    go = _go_terms(inputs, {gene for gene, _ in sequences}, vocab, unknown)
    genes = [InputGene(gene, sequence, sorted(go.get(gene, ()))) for gene, sequence in sequences]
    return genes, unknown


def note_unknown_go(predictions: Predictions, unknown: dict[str, Unknown]) -> None:
    """Count the GO ids the model's GO input vocabulary lacks (the model ignored them)."""
    for gene, missing in zip(predictions.gene_ids, predictions.unknown_go_terms):
        for term in missing:
            unknown["GO ids outside the model's GO input vocabulary (ignored)"].add(f"{term} ({gene})")
