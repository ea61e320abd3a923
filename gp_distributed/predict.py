"""`gp predict`: score the genes of a FASTA file (with optional GO annotations and id map) with a trained
model, write a TSV and a CAFA-format file.

`--model` accepts `models:/NAME@ALIAS` or `models:/NAME/VERSION` (the registry), `runs:/ID/model`, a
local MLflow model directory, a checkpoint directory, or a run directory (its latest complete
checkpoint). Checkpoints take their vocabularies from the store they trained on (or `store`); MLflow
models carry theirs. MLflow URIs are looked up in `tracking_uri`, resolved like training's.

Inputs are read with the ingest readers (same validation, same `InputError`s). Genes are the FASTA
records in file order; with an id map, the records it maps, named by the map's gene ids (the ids the
GO file uses). GO annotations are filtered by the evidence codes the model's training excluded, mapped
through the GO ontology when one is given (alt ids, replacements), and restricted to the model's GO
input vocabulary. Everything left out is counted with examples (`Unknown`), never dropped silently.

Outputs: TSV `gene term name probability` (header line; per gene, terms at or above
`min_probability`, most probable first) and CAFA `gene term score` (`cafa_format`). Probabilities are
the model's own (not propagated to ancestors; Fmax evaluators, ours and cafaeval, propagate by max).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gp_distributed.cafa_format import write_cafa_predictions
from gp_distributed.checkpoint import ENGINE_DIR, latest_complete_checkpoint
from gp_distributed.errors import InputError
from gp_distributed.ingest.fasta import read_fasta
from gp_distributed.ingest.go_annotations import GoFormat, read_go_annotations
from gp_distributed.ingest.id_map import read_id_map
from gp_distributed.model_package import InputGene, Predictions, Predictor, Vocabularies
from gp_distributed.ontology import load_ontology

_MLFLOW_SCHEMES = ("models:/", "runs:/")
# Files of the checkpoint contract (checkpoint.py) written before meta.json, which completes it.
_CHECKPOINT_PARTS = (ENGINE_DIR, "worker_state", "trainable.safetensors", "config.yaml")
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


def existing_tracking_uri(tracking_uri: str | None) -> str:
    """The absolute tracking URI (`tracking.resolve_tracking_uri`) to read from. InputError when it is a
    SQLite database that does not exist: reading must not create an empty one (MLflow would, and say
    so on stderr) only to report that the model is not in it."""
    from gp_distributed.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri, Path.cwd())
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise InputError(uri, "no MLflow database here (pass --tracking-uri or set MLFLOW_TRACKING_URI)")
    return uri


def _checkpoint_of(path: Path) -> Path:
    """The checkpoint directory `path` names: itself, or a run directory's latest complete checkpoint."""
    if (path / "meta.json").is_file():
        return path
    if not path.is_dir():
        raise InputError(path, "no such model directory (expected models:/NAME@ALIAS, runs:/RUN_ID/model, "
                               "an MLflow model, a checkpoint or a run directory)")
    if any((path / name).exists() for name in _CHECKPOINT_PARTS):
        raise InputError(path, "incomplete checkpoint (no meta.json: its writing did not finish)")
    checkpoint = latest_complete_checkpoint(path)
    if checkpoint is None:
        if any(path.glob("checkpoint_*")):
            raise InputError(path, "run directory without a complete checkpoint (none of its checkpoint_* is whole)")
        raise InputError(path, "not a models:/ or runs:/ URI, an MLflow model, a checkpoint or a run directory")
    return checkpoint


def load_predictor(model: str, *, store: Path | None = None, tracking_uri: str | None = None,
                   backbone_path: Path | None = None) -> Predictor:
    """The predictor of `model` (see the module docstring for the accepted forms)."""
    if model.startswith(_MLFLOW_SCHEMES):
        from gp_distributed.tracking import load_pyfunc_predictor

        return load_pyfunc_predictor(model, existing_tracking_uri(tracking_uri), backbone_path)
    path = Path(model)
    if (path / "MLmodel").is_file():
        from gp_distributed.tracking import load_pyfunc_predictor, resolve_tracking_uri

        return load_pyfunc_predictor(str(path.resolve()), resolve_tracking_uri(tracking_uri, Path.cwd()), backbone_path)
    return Predictor.from_checkpoint(_checkpoint_of(path), store)


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


def write_predictions_tsv(path: Path, predictions: Predictions, vocab: Vocabularies, min_probability: float) -> int:
    """Write `gene term name probability` rows (module docstring); returns the number of data rows."""
    rows = 0
    with Path(path).open("w", encoding="utf-8") as out:
        out.write("gene\tterm\tname\tprobability\n")
        for gene, scores in zip(predictions.gene_ids, predictions.probabilities):
            kept = np.flatnonzero(scores >= min_probability)
            for j in kept[np.argsort(-scores[kept], kind="stable")]:
                out.write(f"{gene}\t{vocab.label_ids[j]}\t{vocab.label_names[j]}\t{float(scores[j])!r}\n")
                rows += 1
    return rows


@dataclass(frozen=True)
class PredictSummary:
    genes: int
    tsv_rows: int
    cafa_rows: int
    unknown: dict[str, Unknown]


def run_predict(model: str, inputs: GeneInputs, out_tsv: Path, *, cafa: Path | None = None,
                store: Path | None = None, tracking_uri: str | None = None, min_probability: float = 0.01,
                batch_size: int | None = None, show_progress: bool = True) -> PredictSummary:
    """`gp predict`: load the model, read the inputs, predict in batches, write the TSV (and CAFA file)."""
    predictor = load_predictor(model, store=store, tracking_uri=tracking_uri)
    vocab = predictor.vocabularies
    genes, unknown = read_input_genes(inputs, vocab)
    if not genes:
        raise InputError(inputs.fasta, "no gene to score (check the id map)")
    predictions = predictor.predict(genes, batch_size=batch_size, show_progress=show_progress)
    note_unknown_go(predictions, unknown)
    Path(out_tsv).parent.mkdir(parents=True, exist_ok=True)
    rows = write_predictions_tsv(out_tsv, predictions, vocab, min_probability)
    cafa_rows = 0
    if cafa is not None:
        Path(cafa).parent.mkdir(parents=True, exist_ok=True)
        cafa_rows = write_cafa_predictions(cafa, predictions.gene_ids, vocab.label_ids,
                                           predictions.probabilities.astype(np.float64), min_probability)
    return PredictSummary(len(genes), rows, cafa_rows, dict(unknown))
