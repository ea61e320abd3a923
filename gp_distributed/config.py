"""The one typed configuration tree. YAML mirrors it; defaults live here, a YAML holds what differs.

Unknown keys, wrong types and contradictions fail on the driver before anything starts, with the
dotted key path in a one-line `ConfigError`. Derived values (global batch size, ...) are computed
here and nowhere else.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gp_distributed.config_yaml import parse_override, read_yaml, set_dotted
from gp_distributed.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Contradiction(ValueError):
    """Raised by a validator about one key: `key` is its dotted path below the validated section, so the
    one-line `ConfigError` names the exact key (`train.warmup_steps`), not only its section."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


_STORAGE_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SUPPORTED_STORAGE_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")


def is_storage_uri(value: object) -> bool:
    """Whether a `train.storage_path` names an object store (`s3://...`) rather than a file system path."""
    return isinstance(value, str) and bool(_STORAGE_URI.match(value))


Alphabet = Literal["protein", "dna"]  # the residue alphabets a store can hold
# The in-process backbone presets (model/backbone.py builds them) and the alphabet each reads.
PRESET_ALPHABETS: dict[str, Alphabet] = {
    "tiny-protein": "protein",
    "esm2-35m": "protein",
    "tiny-dna": "dna",
    "nt-500m": "dna",
    "generator-1.2b": "dna",
}
BackbonePreset = Literal[tuple(PRESET_ALPHABETS)]  # type: ignore[valid-type]  # built from the table above


class SplitConfig(_Strict):
    """How genes are split into train / valid / test, deterministically from `seed`."""

    method: Literal["hash", "stratified"] = "hash"
    valid_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 0

    @model_validator(mode="after")
    def _fractions_leave_training_genes(self) -> SplitConfig:
        if self.valid_fraction + self.test_fraction >= 1.0:
            raise ValueError("valid_fraction + test_fraction must be < 1 (no training genes left)")
        return self


class IngestConfig(_Strict):
    """Inputs and rules of `gp ingest` (raw files -> one Zarr store)."""

    fasta: Path | None = Field(None, description="sequences, FASTA or FASTA.gz")
    id_map: Path | None = Field(None, description="TSV: label gene id -> FASTA accession")
    labels: Path | None = Field(None, description="gene -> phenotype term annotations")
    labels_format: Literal["hpo", "mgi", "impc", "tsv"] = Field("hpo", description="format of the label file")
    ontology: Path | None = Field(None, description="phenotype ontology (HP or MP) OBO")
    label_root: str | None = Field(None, description="keep descendants of this term; None: HP:0000118 / MP:0000001 by format")
    go: Path | None = Field(None, description="GO annotations (gene2go, GAF or TSV)")
    go_format: Literal["gene2go", "gaf", "tsv"] = Field("gene2go", description="format of the GO file")
    go_ontology: Path | None = Field(None, description="GO OBO (go-basic)")
    go_evidence_exclude: tuple[str, ...] = Field(("IMP", "IGI"), description="mutant-phenotype evidence leaks labels")
    go_input_closure: bool = Field(True, description="close GO inputs under is_a/part_of (true-path rule on the "
                                   "input side): a gene annotated to a term also has its ancestors")
    go_taxon: int | None = Field(None, description="gene2go: keep this NCBI taxon only")
    exclusive_pairs: Path | None = Field(None, description="user TSV of mutually exclusive term pairs")
    mgi_targeted_only: bool = Field(False, description="MGI: keep targeted (tm) alleles only")
    alphabet: Alphabet = Field("protein", description="sequence alphabet")
    min_genes: int = Field(11, ge=1, description="drop phenotype terms annotated to fewer genes")
    concept_depth: int = Field(2, ge=1, description="coarse GO concept depth (shortest path to a root)")
    min_concept_genes: int = Field(11, ge=1, description="drop concepts annotated to fewer genes")
    frequency_bin_edges: tuple[int, ...] = Field((11, 31, 101, 301), description="bin i = [edge_i, edge_{i+1})")
    split: SplitConfig = SplitConfig()
    genes_per_shard: int = Field(256, ge=1, description="streaming unit: a contiguous block of genes")
    residues_per_chunk: int = Field(1 << 20, ge=1024, description="Zarr inner chunk of the flat residue array")
    chunks_per_shard: int = Field(16, ge=1, description="Zarr shard = this many inner chunks")
    out: Path | None = Field(None, description="store directory to create")
    strict: bool = Field(False, description="turn reported skips (e.g. genes without sequence) into errors")
    overwrite: bool = Field(False, description="replace an existing store")

    @model_validator(mode="after")
    def _bins_increase(self) -> IngestConfig:
        edges = self.frequency_bin_edges
        if not edges or any(b <= a for a, b in itertools.pairwise(edges)):
            raise _Contradiction("frequency_bin_edges", "must be a non-empty increasing list")
        return self


class DataConfig(_Strict):
    """What training reads and how sequences become token windows."""

    store: Path | None = None
    max_seq_len_tokens: int = Field(512, ge=8)
    window_strategy: Literal["first", "random", "all"] = "random"
    max_windows_per_gene: int = Field(4, ge=1)  # cap for "all"
    kmer_size: int = Field(6, ge=1, le=8)  # DNA tokeniser only
    shuffle_buffer_genes: int = Field(1024, ge=1)
    max_go_terms: int = Field(1024, ge=1)  # GO inputs per gene fed to the GO branch (closed sets: max 867 on the bundles)


class LoraConfig(_Strict):
    enabled: bool = True
    rank: int = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: str | None = None  # regex over backbone module names; None: per-architecture default


class GoBranchConfig(_Strict):
    enabled: bool = True
    num_layers: int = Field(1, ge=0)
    num_heads: int = Field(4, ge=1)
    input_dropout: float = Field(0.0, ge=0.0, lt=1.0)  # share of a gene's GO terms hidden per training step
    bag_dim: int = Field(0, ge=0)  # width of a mean-pooled GO-term bag fed to the MLP (0: none); go_branch.py


class ModelConfig(_Strict):
    """Backbone (a preset built in-process, or a local Hugging Face directory) and the GenePheno heads."""

    backbone_preset: BackbonePreset | None = "tiny-protein"
    backbone_path: Path | None = None
    # Code shipped in backbone_path runs if trusted per part (None: the trust_remote_code shorthand); see pretrained.py
    trust_remote_code: bool = False
    trust_remote_code_tokenizer: bool | None = None
    trust_remote_code_model: bool | None = None
    attn_implementation: Literal["auto", "sdpa", "flash_attention_2", "eager"] = "auto"
    load_dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # auto: bf16 checkpoints stay bf16 in bf16 runs
    pooling: Literal["attention+mean", "mean"] = "attention+mean"
    mlp_hidden_dim: int = Field(256, ge=1)
    free_concepts: int = Field(0, ge=0)  # unsupervised bottleneck units beside the GO concepts (bottleneck.py)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    gradient_checkpointing: bool = False
    lora: LoraConfig = LoraConfig()
    go_branch: GoBranchConfig = GoBranchConfig()

    @model_validator(mode="after")
    def _one_backbone_source(self) -> ModelConfig:
        if (self.backbone_preset is None) == (self.backbone_path is None):
            raise _Contradiction("backbone_path", "set exactly one of model.backbone_preset and model.backbone_path "
                                 "(backbone_preset=null to use a path)")
        return self


class LossConfig(_Strict):
    """L = L_MLC + lambda_exclusive * L_ex + lambda_concept * L_GO (DESIGN.md section 1)."""

    kind: Literal["contrastive", "infonce", "bce"] = "contrastive"
    temperature: float = Field(1.0, gt=0.0)
    lambda_exclusive: float = Field(0.1, ge=0.0)
    lambda_concept: float = Field(0.5, ge=0.0)


class TrainConfig(_Strict):
    max_steps: int = Field(200, ge=1)  # optimizer steps
    micro_batch_size: int = Field(8, ge=1)  # genes per worker per forward
    grad_accum_steps: int = Field(1, ge=1)
    learning_rate: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.01, ge=0.0)
    warmup_steps: int = Field(10, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0.0, le=1.0)  # cosine decay floor, as a fraction of learning_rate
    grad_clip: float = Field(1.0, ge=0.0)  # 0 disables clipping
    zero_stage: int = Field(2, ge=0, le=3)
    # ZeRO-3 only: how many parameters stay gathered beyond a rank's partition (DeepSpeed's
    # stage3_max_live_parameters and stage3_max_reuse_distance; its default 1e9 keeps a 1.2B model's
    # frozen weights gathered from forward to backward) and how many are prefetched ahead.
    zero3_live_parameters: int = Field(100_000_000, ge=0)
    zero3_prefetch_parameters: int = Field(50_000_000, ge=0)
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on GPU, fp32 on CPU
    eval_every: int = Field(100, ge=1)  # optimizer steps
    ckpt_every: int = Field(100, ge=1)  # optimizer steps
    keep_last_checkpoints: int = Field(2, ge=1)
    # The checkpoint with the best validation Fmax is the run's model (kept besides the last ones, and
    # the one registered); needs a validation score at every checkpoint (ckpt_every a multiple of eval_every).
    select_best: bool = False
    early_stopping_patience: int | None = Field(None, ge=1)  # evaluations without a better validation Fmax
    test_at_end: bool = True  # score the test split at the end; off while choosing settings on validation
    seed: int = 0
    run_name: str = Field("genepheno-demo", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    # A local or shared directory (made absolute against the driver's working directory), or an object
    # store URI, `s3://bucket/prefix` (credentials and endpoint from the environment, see is_storage_uri).
    storage_path: Path | str = Path("runs")

    @field_validator("storage_path", mode="before")
    @classmethod
    def _path_unless_uri(cls, value: Any) -> Any:
        if isinstance(value, str) and not is_storage_uri(value):
            return Path(value)
        if isinstance(value, str) and not _SUPPORTED_STORAGE_URI.match(value):
            raise ValueError(f"{value!r}: only s3://bucket[/prefix] object storage is supported "
                             "(a shared file system is a plain path)")
        return value

    @model_validator(mode="after")
    def _warmup_fits(self) -> TrainConfig:
        if self.warmup_steps >= self.max_steps:
            raise _Contradiction("warmup_steps", f"must be < train.max_steps ({self.max_steps})")
        return self

    @model_validator(mode="after")
    def _every_checkpoint_is_scored(self) -> TrainConfig:
        if self.select_best and self.ckpt_every % self.eval_every:
            raise _Contradiction("ckpt_every", f"must be a multiple of train.eval_every ({self.eval_every}) with "
                                 "train.select_best=true (each checkpoint needs a validation score)")
        return self


class ScalingConfig(_Strict):
    num_workers: int = Field(2, ge=0)  # 0: run the worker loop in-process (debugging), world size 1
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0.0)
    address: str | None = None  # Ray address; None: join the cluster we were submitted to, else start local
    max_failures: int = Field(2, ge=0)  # Ray Train worker-group restarts
    # How Ray places the workers' resource bundles: PACK fills nodes first, SPREAD spreads them as it
    # can, STRICT_SPREAD puts each worker on a node of its own (fails to schedule with fewer nodes).
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"


class TrackingConfig(_Strict):
    enabled: bool = True
    tracking_uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else sqlite under the working directory
    experiment: str = "genepheno"
    registered_model_name: str = "genepheno"
    # Where a new experiment keeps its artifacts (models, reports), e.g. s3://bucket/mlflow; None: beside
    # a sqlite database, else the tracking server's default. An existing experiment keeps its own.
    artifact_location: str | None = None


class FaultInjectionConfig(_Strict):
    """Fault drills for recovery tests: SIGKILL rank `kill_rank` right after optimizer step
    `kill_at_step` (`kill_during: step`), or while it writes that step's checkpoint, after its engine
    shards and before the files that complete it (`kill_during: checkpoint`; `kill_at_step` must then
    be a checkpoint step). With `once_marker`, only when that file does not exist yet (it is then
    created), so the retried worker group runs through."""

    kill_at_step: int | None = Field(None, ge=1)
    kill_during: Literal["step", "checkpoint"] = "step"
    kill_rank: int = Field(0, ge=0)
    once_marker: Path | None = None


class GPConfig(_Strict):
    ingest: IngestConfig = IngestConfig()
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
    scaling: ScalingConfig = ScalingConfig()
    tracking: TrackingConfig = TrackingConfig()
    faults: FaultInjectionConfig = FaultInjectionConfig()

    @model_validator(mode="after")
    def _precision_matches_device(self) -> GPConfig:
        if self.train.precision == "bf16" and not self.scaling.use_gpu:
            raise _Contradiction("train.precision", "bf16 needs scaling.use_gpu=true (fp32 on CPU)")
        if self.model.load_dtype == "bfloat16" and resolved_precision(self) != "bf16":
            raise _Contradiction("model.load_dtype", "bfloat16 needs bf16 training (on GPU)")
        return self

    @model_validator(mode="after")
    def _object_storage_has_workers(self) -> GPConfig:
        """The in-process loop (`scaling.num_workers=0`) writes checkpoints to a local directory only."""
        if is_storage_uri(self.train.storage_path) and self.scaling.num_workers == 0:
            raise _Contradiction("train.storage_path", "object storage needs Ray workers (scaling.num_workers >= 1); "
                                 "the in-process run (--workers 0) keeps checkpoints in a local directory")
        return self

    @model_validator(mode="after")
    def _fault_can_fire(self) -> GPConfig:
        """A fault drill that can never fire would pass while testing nothing."""
        faults = self.faults
        if faults.kill_at_step is None:
            return self
        world_size = max(self.scaling.num_workers, 1)  # 0 workers: one in-process rank
        if faults.kill_rank >= world_size:
            raise _Contradiction("faults.kill_rank", f"rank {faults.kill_rank} does not exist with "
                                 f"scaling.num_workers={self.scaling.num_workers} (ranks 0..{world_size - 1})")
        if faults.kill_at_step > self.train.max_steps:
            raise _Contradiction("faults.kill_at_step", f"step {faults.kill_at_step} is after "
                                 f"train.max_steps={self.train.max_steps}: the fault would never fire")
        return self


def global_batch_size(config: GPConfig, world_size: int) -> int:
    """Genes per optimizer step across the whole job: micro x accumulation x data-parallel workers."""
    return config.train.micro_batch_size * config.train.grad_accum_steps * max(world_size, 1)


def resolved_precision(config: GPConfig) -> Literal["fp32", "bf16"]:
    if config.train.precision == "auto":
        return "bf16" if config.scaling.use_gpu else "fp32"
    return config.train.precision


def config_from_tree(tree: dict[str, Any], source: str) -> GPConfig:
    """Validate a plain tree; the first problem becomes a one-line ConfigError with its key path."""
    try:
        return GPConfig.model_validate(tree)
    except ValidationError as error:
        first = error.errors()[0]
        parts = [str(part) for part in first["loc"]]
        message = first["msg"]
        cause = first.get("ctx", {}).get("error")
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        elif isinstance(cause, _Contradiction):
            parts.append(cause.key)
            message = str(cause)
        elif isinstance(cause, ValueError):
            message = str(cause)  # without pydantic's "Value error, " prefix
        raise ConfigError(source, ".".join(parts), message) from None


def load_config(
    path: Path | None = None,
    overrides: Sequence[str] = (),
    typed_values: Mapping[str, Any] | None = None,
) -> GPConfig:
    """Read a YAML file (or the defaults), apply `typed_values` (already-typed values from CLI flags,
    by dotted key), then `key.sub=value` overrides (typed as YAML types them); validate strictly."""
    tree = read_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "defaults"
    for key, value in (typed_values or {}).items():
        set_dotted(tree, key, value)
    for override in overrides:
        key, value = parse_override(override)
        set_dotted(tree, key, value)
    if overrides or typed_values:
        source += " + overrides"
    return config_from_tree(tree, source)


_URI_PASSWORD = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@:\s]*):[^/@\s]*@")


def redact_credentials(text: str) -> str:
    """`scheme://user:password@host` -> `scheme://user:***@host` (e.g. a tracking URI with basic auth)."""
    return _URI_PASSWORD.sub(r"\g<scheme>\g<user>:***@", text)


def config_to_yaml(config: GPConfig) -> str:
    """The fully resolved config, as saved next to checkpoints and in tracking: passwords in URIs are
    redacted (a checkpoint or an MLflow artifact must not carry credentials)."""
    return redact_credentials(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
