"""The model package: everything a trained GenePheno model needs to predict outside training, and the
predictor built from it. No DeepSpeed, no Ray, no MLflow here (tracking/pyfunc.py wraps this for MLflow).

Package layout (`write_model_package` writes it; these are the pyfunc model's artifacts, by key):

    checkpoint/trainable.safetensors  LoRA + GO branch + pooling + MLP + bottleneck + head weights
    checkpoint/config.yaml            the resolved training config
    checkpoint/meta.json              step, world size, tracking run id, library versions
    tokenizer/                        the run's tokenizer (`save_pretrained`; loads with AutoTokenizer)
    vocabularies.json                 `Vocabularies`: alphabet, label terms (ids, names, parents,
                                      frequency bins, training information content), GO input terms,
                                      concepts, GO evidence codes excluded at ingest
    backbone.json                     the pointer to the frozen backbone (never copied):
                                      {"preset": name, "seed": PRESET_SEED}: the preset is rebuilt, bit
                                      for bit, from that fixed seed and the packaged tokenizer; or
                                      {"path": "/abs/dir", "config_sha256": ...}: a `model.backbone_path`
                                      model reads its weights from that directory, checked by the hash
                                      of its config.json; load with another `backbone_path` if it moved.

Prediction goes through the one prediction path (`inference.predict.predict_examples`, which
training-time evaluation also calls): genes are windowed by the same rule with the same RNG stream, in
input order, and batched by the training micro-batch size, so a predictor fed a store split in store
order gives the training loop's own validation scores. With `data.window_strategy=random` a gene's window depends on
its position in that stream (as in `gp evaluate`); `first` and `all` make each gene's scores independent
of the other rows, up to float rounding where batch padding differs. Inference runs on CPU, in fp32.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from transformers import AutoTokenizer

from gp_distributed import checkpoint as ckpt
from gp_distributed.config import GPConfig, load_config
from gp_distributed.data.directory_tokenizer import trusts_tokenizer_code
from gp_distributed.data.store import GeneRecord, GeneStore, open_store
from gp_distributed.data.stream import eval_examples
from gp_distributed.data.tokenize import GeneWindower, tokenizer_for
from gp_distributed.errors import InputError
from gp_distributed.evaluation.metrics import information_content
from gp_distributed.hashing import sha256_file
from gp_distributed.inference.predict import BatchShape, ScoredGenes, predict_examples
from gp_distributed.model.backbone import PRESET_SEED
from gp_distributed.model.build import VocabularySizes, load_trained_model
from gp_distributed.model.genepheno import GenePhenoModel
from gp_distributed.model.validate import check_backbone

ARTIFACT_KEYS = ("checkpoint", "tokenizer", "vocabularies", "backbone")
_ARTIFACT_NAMES = {"checkpoint": "checkpoint", "tokenizer": "tokenizer",
                   "vocabularies": "vocabularies.json", "backbone": "backbone.json"}


@dataclass(frozen=True)
class Vocabularies:
    """The model's index spaces, in index order; `label_*` lists have C entries, `concept_*` n, `go_*` G."""

    alphabet: str
    label_ids: list[str]
    label_names: list[str]
    label_parents: list[list[int]]  # direct parents of each label, as label indices
    label_n_genes: list[int]  # training-store genes annotated (after propagation) with each label
    label_bins: list[int]  # frequency-bin index of each label (into bin_labels), from the training store
    bin_labels: list[str]
    information_content: list[float]  # bits per label, from the training split (for Smin on new data)
    go_input_ids: list[str]
    go_input_names: list[str]
    concept_ids: list[str]
    concept_names: list[str]
    go_evidence_exclude: list[str]
    # Packages written before GO input closure existed have neither field: their inputs stay direct.
    go_input_parents: list[list[int]] = field(default_factory=list)  # direct parents within the GO vocabulary
    go_input_closed: bool = False  # training closed GO inputs under is_a/part_of: close new genes' too

    @property
    def sizes(self) -> VocabularySizes:
        return VocabularySizes(len(self.go_input_ids), len(self.concept_ids), len(self.label_ids))

    @classmethod
    def from_store(cls, store: GeneStore) -> Vocabularies:
        train_labels = store.multi_hot("labels", store.split_indices("train"))
        attrs = store.attrs
        return cls(
            alphabet=store.alphabet, label_ids=list(store.label_ids), label_names=list(store.label_names),
            label_parents=[list(p) for p in store.label_parents],
            label_n_genes=[int(n) for n in attrs["label_vocab"]["n_genes"]], label_bins=[int(b) for b in store.label_bins],
            bin_labels=list(store.bin_labels),
            information_content=information_content(train_labels, store.label_parents).tolist(),
            go_input_ids=list(store.go_input_ids), go_input_names=list(attrs["go_input_vocab"]["names"]),
            concept_ids=list(store.concept_ids), concept_names=list(store.concept_names),
            go_evidence_exclude=list(attrs.get("go_evidence_exclude", [])),
            go_input_parents=[list(p) for p in attrs["go_input_vocab"].get("parents", [])],
            go_input_closed=bool(attrs["go_input_vocab"].get("closed", False)),
        )

    @classmethod
    def read(cls, path: Path) -> Vocabularies:
        try:
            return cls(**json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError, TypeError) as error:
            raise InputError(path, f"unreadable model vocabularies: {error}") from None

    def write(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self)))


@dataclass(frozen=True)
class InputGene:
    """One gene to predict: its id, uppercase residues (the store's alphabet) and GO input term ids."""

    gene_id: str
    sequence: bytes
    go_terms: Sequence[str] = ()


@dataclass(frozen=True)
class Predictions:
    """Scores of N genes, in input order. `unknown_go_terms[i]`: gene i's GO ids outside the model's GO
    input vocabulary (ignored by the model, listed here so that nothing is dropped silently)."""

    gene_ids: list[str]
    probabilities: np.ndarray  # (N, C) float32, sigmoid of the phenotype logits, label vocabulary order
    concept_activations: np.ndarray  # (N, n) float32, the bottleneck's activations the head reads
    unknown_go_terms: list[list[str]]
    sequence_vectors: np.ndarray | None = None  # (N, 2d) float32 pooled token states, with `embeddings=True`
    fused_vectors: np.ndarray | None = None  # (N, mlp_hidden_dim) float32 bottleneck input, with `embeddings=True`


class GeneTable:
    """Genes held in memory behind the store's `read_block` contract (what `eval_examples` reads)."""

    def __init__(self, records: Sequence[GeneRecord]):
        self.records = list(records)

    def __len__(self) -> int:
        return len(self.records)

    def read_block(self, start: int, stop: int) -> list[GeneRecord]:
        return self.records[start:stop]


def read_checkpoint_config(checkpoint_dir: Path) -> GPConfig:
    """The resolved config of a complete checkpoint. Refuses (one-line GpError) an incomplete checkpoint
    or another format version (meta.json), and a missing, unparsable or invalid config.yaml, naming the
    file and its line or key."""
    ckpt.read_meta(checkpoint_dir)
    return load_config(Path(checkpoint_dir) / ckpt.CONFIG_FILE)


def backbone_pointer(config: GPConfig) -> dict[str, Any]:
    """Where the frozen backbone of `config` comes from (see the module docstring)."""
    if config.model.backbone_preset is not None:
        return {"preset": config.model.backbone_preset, "seed": PRESET_SEED}
    path = Path(config.model.backbone_path).resolve()
    return {"path": str(path), "config_sha256": sha256_file(path / "config.json")}


def write_model_package(checkpoint_dir: Path, store: GeneStore, out: Path) -> dict[str, Path]:
    """Write the package of `checkpoint_dir` (vocabularies from `store`, the model's training store)
    into the new directory `out`; returns the artifact paths by key (ARTIFACT_KEYS)."""
    checkpoint_dir, out = Path(checkpoint_dir), Path(out)
    config = read_checkpoint_config(checkpoint_dir)
    artifacts = {key: out / name for key, name in _ARTIFACT_NAMES.items()}
    artifacts["checkpoint"].mkdir(parents=True)
    for name in ckpt.SERVING_FILES:
        shutil.copy2(checkpoint_dir / name, artifacts["checkpoint"] / name)
    tokenizer_for(config.model, store.alphabet, config.data.kmer_size).save_pretrained(str(artifacts["tokenizer"]))
    Vocabularies.from_store(store).write(artifacts["vocabularies"])
    artifacts["backbone"].write_text(json.dumps(backbone_pointer(config), indent=1))
    return artifacts


def _with_backbone(config: GPConfig, pointer: Mapping[str, Any], override: Path | None, source: Path) -> GPConfig:
    """The config whose backbone matches the package pointer (or the override directory)."""
    if "preset" in pointer:
        if pointer["preset"] != config.model.backbone_preset or pointer["seed"] != PRESET_SEED:
            raise InputError(source, f"preset {pointer} does not match this gp_distributed (seed {PRESET_SEED})")
        return config
    path = Path(override or pointer["path"]).expanduser().resolve()
    if not (path / "config.json").is_file():
        raise InputError(source, f"backbone weights not found at {path} (load with another backbone_path)")
    if sha256_file(path / "config.json") != pointer["config_sha256"]:
        raise InputError(path / "config.json", "differs from the backbone the model was trained on")
    return config.model_copy(update={"model": config.model.model_copy(update={"backbone_path": path})})


class Predictor:
    """A trained model on CPU in eval mode, with its vocabularies; `predict` scores `InputGene`s."""

    def __init__(self, config: GPConfig, model: GenePhenoModel, windower: GeneWindower, pad_token_id: int,
                 vocabularies: Vocabularies):
        self.config = config
        self.model = model
        self.windower = windower
        self.vocabularies = vocabularies
        self.batch_shape = BatchShape(pad_token_id, len(vocabularies.concept_ids), len(vocabularies.label_ids),
                                      config.data.max_go_terms)
        self._go_index = {term: i for i, term in enumerate(vocabularies.go_input_ids)}

    @classmethod
    def from_artifacts(cls, artifacts: Mapping[str, str | Path], backbone_path: Path | None = None) -> Predictor:
        """Load a package from its artifact paths (by key; MLflow hands them to the pyfunc model)."""
        paths = {key: Path(artifacts[key]) for key in ARTIFACT_KEYS}
        config = read_checkpoint_config(paths["checkpoint"])
        pointer = json.loads(paths["backbone"].read_text())
        config = _with_backbone(config, pointer, backbone_path, paths["backbone"])
        tokenizer = AutoTokenizer.from_pretrained(str(paths["tokenizer"]), local_files_only=True,
                                                  trust_remote_code=trusts_tokenizer_code(config.model))
        return cls._build(config, Vocabularies.read(paths["vocabularies"]), tokenizer, paths["checkpoint"])

    @classmethod
    def from_checkpoint(cls, checkpoint_dir: Path, store_path: Path | None = None) -> Predictor:
        """Load a checkpoint directory; vocabularies from `store_path`, else the store it trained on. A store
        whose vocabularies are not the training store's (`ckpt.PREDICTION_STORE_PARTS` of its fingerprint)
        is refused in one line naming both stores; other genes are allowed (checkpoint.py's contract)."""
        config = read_checkpoint_config(checkpoint_dir)
        store_path = store_path or config.data.store
        if store_path is None:
            raise InputError(checkpoint_dir, "config.yaml names no data.store: give the training store")
        store = open_store(store_path)
        differences = ckpt.store_differences(ckpt.read_meta(checkpoint_dir).store_fingerprint, store.fingerprint,
                                             ckpt.PREDICTION_STORE_PARTS)
        if differences:
            raise InputError(store_path, f"not the vocabularies checkpoint {checkpoint_dir} was trained with (store "
                             f"{config.data.store}): other {', '.join(differences)}; give a store with its vocabularies")
        tokenizer = tokenizer_for(config.model, store.alphabet, config.data.kmer_size)
        return cls._build(config, Vocabularies.from_store(store), tokenizer, Path(checkpoint_dir))

    @classmethod
    def _build(cls, config: GPConfig, vocabularies: Vocabularies, tokenizer: Any, checkpoint_dir: Path) -> Predictor:
        check_backbone(config, tokenizer, training=False)  # one-line errors before any weight is read
        model = load_trained_model(config, vocabularies.sizes, tokenizer, checkpoint_dir)
        windower = GeneWindower.from_config(tokenizer, config.data)
        return cls(config, model, windower, int(tokenizer.pad_token_id), vocabularies)

    def association_matrix(self) -> np.ndarray:
        """(n, C) concept -> phenotype weights of the head."""
        return self.model.association_matrix().float().numpy()

    def go_indices(self, go_terms: Iterable[str]) -> tuple[np.ndarray, list[str]]:
        """(sorted GO input indices, the ids outside the vocabulary, sorted). When training closed GO
        inputs under is_a/part_of, the known terms are closed here too (within the vocabulary), so a
        gene gets the inputs it would have had in the training store."""
        terms = set(go_terms)
        known = {self._go_index[t] for t in terms if t in self._go_index}
        if self.vocabularies.go_input_closed:
            parents, stack = self.vocabularies.go_input_parents, list(known)
            while stack:
                for parent in parents[stack.pop()]:
                    if parent not in known:
                        known.add(parent)
                        stack.append(parent)
        return np.array(sorted(known), dtype=np.int32), sorted(t for t in terms if t not in self._go_index)

    def table(self, genes: Sequence[InputGene]) -> tuple[GeneTable, list[list[str]]]:
        """Genes as a `GeneTable` (labels and concepts empty) and each gene's unknown GO ids."""
        records, unknown = [], []
        empty = np.zeros(0, dtype=np.int32)
        for index, gene in enumerate(genes):
            go_input, missing = self.go_indices(gene.go_terms)
            records.append(GeneRecord(index, gene.gene_id, "", "", gene.sequence, empty, go_input, empty))
            unknown.append(missing)
        return GeneTable(records), unknown

    def predict_store(self, reader: GeneStore | GeneTable, gene_indices: np.ndarray, *, batch_size: int | None = None,
                      show_progress: bool = False, embeddings: bool = False) -> ScoredGenes:
        """Scores of the genes `gene_indices` of a store (or a `GeneTable`), in that order; with
        `embeddings`, their sequence and fused vectors too (`predict_examples`)."""
        examples = eval_examples(reader, np.asarray(gene_indices), self.windower, seed=self.config.train.seed)  # type: ignore[arg-type]  # a GeneTable reads like a store
        return predict_examples(self.model, examples, self.batch_shape,
                                batch_size=batch_size or self.config.train.micro_batch_size,
                                n_examples=len(gene_indices), show_progress=show_progress, embeddings=embeddings)

    def predict(self, genes: Sequence[InputGene], *, batch_size: int | None = None,
                show_progress: bool = False, embeddings: bool = False) -> Predictions:
        table, unknown = self.table(genes)
        scored = self.predict_store(table, np.arange(len(table)), batch_size=batch_size, show_progress=show_progress,
                                    embeddings=embeddings)
        return Predictions([g.gene_id for g in genes], scored.probabilities, scored.concept_activations, unknown,
                           scored.sequence_vectors, scored.fused_vectors)
