"""The per-worker training loop, as named phases: setup, restore, train_step, evaluate, save_checkpoint.

`train_loop_per_worker(config_tree)` is what Ray Train runs on every worker; `run_in_process` runs the
same loop with a world of one (gloo on 127.0.0.1) for debugging and tests. There is one training path:
a DeepSpeed engine built from the typed config. Everything a worker needs arrives in its argument.
"""

from __future__ import annotations

import math
import os
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gp_distributed import checkpoint as ckpt
from gp_distributed.config import (
    GPConfig,
    config_from_tree,
    config_to_yaml,
    is_storage_uri,
)
from gp_distributed.console import StepProgress
from gp_distributed.data.collate import Batch
from gp_distributed.data.sharding import eval_gene_slice
from gp_distributed.data.store import GeneStore, open_store
from gp_distributed.data.stream import Example, TrainStream, eval_examples
from gp_distributed.data.tokenize import GeneWindower, tokenizer_for
from gp_distributed.errors import GpError
from gp_distributed.evaluation.scoring import flatten_results, score_genes
from gp_distributed.inference.predict import BatchShape, predict_examples
from gp_distributed.model.build import VocabularySizes, new_training_model
from gp_distributed.model.genepheno import GenePhenoModel
from gp_distributed.tracking.tracker import Tracker, log_run_inputs, start_tracker
from gp_distributed.train.engine import (
    build_engine,
    convert_to_universal,
    current_learning_rate,
    gathered_parameters,
    load_engine,
    save_engine,
)
from gp_distributed.train.losses import genepheno_loss
from gp_distributed.train.memory import peak_rss_gib, reset_peak_rss
from gp_distributed.train.ranks import (
    WorkerContext,
    all_reduce_means_and_maxes,
    broadcast_from_rank0,
    gather_to_rank0,
    init_single_process_group,
)
from gp_distributed.train.selection import SELECTION_METRIC, ModelSelection
from gp_distributed.train.session import (
    LocalReporter,
    RayReporter,
    Reporter,
    ray_worker_context,
)


@dataclass
class TrainState:
    config: GPConfig
    context: WorkerContext
    store: GeneStore
    windower: GeneWindower
    pad_token_id: int
    model: GenePhenoModel
    engine: Any  # deepspeed.DeepSpeedEngine (typed loosely: engine.py is the only deepspeed import)
    stream: TrainStream
    exclusive_pairs: torch.Tensor
    step: int = 0
    tracking_run_id: str | None = None
    selection: ModelSelection = field(default_factory=ModelSelection)
    step_valid_fmax: float | None = None  # validation Fmax evaluated at the current step, if any
    baseline_rss_gib: float = 0.0  # resident peak before the model was built
    setup_peak_rss_gib: float = 0.0  # resident peak of building the model and engine (and restoring)


def build_training_model(config: GPConfig, store: GeneStore) -> tuple[GenePhenoModel, GeneWindower, int]:
    """Model (identical initial weights on every rank: seeded), window encoder and pad id for a store."""
    tokenizer = tokenizer_for(config.model, store.alphabet, config.data.kmer_size)
    train_genes = store.split_indices("train")
    concepts = store.multi_hot("go_concepts", train_genes)
    annotated = concepts.sum(axis=1) > 0  # concept targets exist only for genes with GO annotations
    model = new_training_model(
        config, VocabularySizes(len(store.go_input_ids), len(store.concept_ids), len(store.label_ids)), tokenizer,
        label_frequency=store.multi_hot("labels", train_genes).mean(axis=0),
        concept_frequency=concepts[annotated].mean(axis=0) if annotated.any() else concepts.mean(axis=0),
    )
    return model, GeneWindower.from_config(tokenizer, config.data), int(tokenizer.pad_token_id)


def setup(config: GPConfig, context: WorkerContext, *, load_universal: bool = False) -> TrainState:
    baseline_rss_gib = peak_rss_gib()  # the process before any model exists (imports, Ray, torch)
    store = open_store(config.data.store)
    model, windower, pad_token_id = build_training_model(config, store)
    engine = build_engine(model, config, context.world_size, load_universal=load_universal)
    # Dropout streams differ per rank but are fixed by (seed, rank); resume restores them exactly.
    torch.manual_seed(config.train.seed * 1000 + context.world_rank)
    stream = TrainStream(
        store, windower, rank=context.world_rank, world_size=context.world_size,
        seed=config.train.seed, shuffle_buffer_genes=config.data.shuffle_buffer_genes,
    )
    pairs = torch.as_tensor(store.exclusive_pairs, dtype=torch.long)
    return TrainState(config, context, store, windower, pad_token_id, model, engine, stream, pairs,
                      baseline_rss_gib=baseline_rss_gib)


def is_elastic_resume(meta: ckpt.CheckpointMeta, context: WorkerContext) -> bool:
    """ZeRO 1-3 shards only load at the world size that wrote them; stage 0 loads anywhere."""
    return meta.world_size != context.world_size and meta.zero_stage > 0


def restore(state: TrainState, directory: Path, meta: ckpt.CheckpointMeta) -> None:
    """Weights, optimizer, scheduler, step, this rank's stream cursor and RNG states. All ranks call.

    At another world size (elastic resume) the engine loads DeepSpeed's universal conversion of the
    checkpoint (made by each rank into its own temporary folder, so nodes need no shared disk); the old
    per-rank stream cursors do not map onto the new ranks, so streams restart at the epoch the slowest
    old rank had reached and each rank's RNG is re-seeded from (seed, rank, step).
    """
    if is_elastic_resume(meta, state.context):
        with tempfile.TemporaryDirectory(prefix="gp-universal-") as scratch:
            tag = convert_to_universal(directory / ckpt.ENGINE_DIR, ckpt.engine_tag(meta.step), Path(scratch))
            client_state = load_engine(state.engine, Path(scratch), tag)
    else:
        client_state = load_engine(state.engine, directory / ckpt.ENGINE_DIR, ckpt.engine_tag(meta.step))
    state.step = int(client_state["step"])
    state.selection = ModelSelection.from_state_dict(client_state.get("selection"))
    state.tracking_run_id = meta.tracking_run_id
    if meta.world_size == state.context.world_size:
        worker_state = ckpt.read_worker_state(directory, state.context.world_rank)
        state.stream.load_state_dict(worker_state["stream"])
        ckpt.restore_rng_state(worker_state["rng"])
    else:
        epoch = min(ckpt.read_worker_state(directory, r)["stream"]["epoch"] for r in range(meta.world_size))
        state.stream.start_epoch(epoch)
        torch.manual_seed((state.config.train.seed * 1_000_003 + state.context.world_rank * 1009 + state.step) % 2**31)
    state.context.print0(f"resumed from {directory.name} at step {state.step} "
                         f"(saved by {meta.world_size} workers, now {state.context.world_size})")


def _micro_batch(state: TrainState) -> Batch:
    examples = [next(state.stream) for _ in range(state.config.train.micro_batch_size)]
    return _collate(state, examples)


def _collate(state: TrainState, examples: list[Example]) -> Batch:
    return BatchShape(state.pad_token_id, len(state.store.concept_ids), len(state.store.label_ids),
                      state.config.data.max_go_terms).collate(examples)


def train_step(state: TrainState) -> dict[str, float]:
    """One optimizer step (grad_accum_steps micro-batches); returns this rank's step metrics."""
    started = time.perf_counter()
    totals = {"loss": 0.0, "loss_mlc": 0.0, "loss_exclusive": 0.0, "loss_concept": 0.0}
    genes = tokens = 0
    accumulation = state.config.train.grad_accum_steps
    for _ in range(accumulation):
        batch = _micro_batch(state).to(state.engine.device)
        output = state.engine(batch)
        # Genes without GO annotations have no concept targets: leave them out of the bottleneck loss.
        has_concepts = (batch.concept_targets.sum(dim=1, keepdim=True) > 0)
        # Losses in fp32 whatever the compute precision (bf16 logits lose the small margins ZLPR sums).
        terms = genepheno_loss(output.label_logits.float(), batch.label_targets, output.concept_logits.float(),
                               batch.concept_targets, state.exclusive_pairs.to(batch.label_targets.device),
                               state.config.loss, concept_mask=has_concepts)
        state.engine.backward(terms.total)
        state.engine.step()
        for key, value in zip(totals, (terms.total, terms.mlc, terms.exclusive, terms.concept)):
            totals[key] += float(value.detach()) / accumulation
        genes += batch.num_genes
        tokens += int(batch.attention_mask.sum())
    state.step += 1
    seconds = time.perf_counter() - started
    return {**totals, "learning_rate": current_learning_rate(state.engine),
            "genes_per_second": genes / seconds, "tokens_per_second": tokens / seconds, "step_seconds": seconds}


def predict_split(state: TrainState, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Sigmoid scores of this rank's share of `split` through the one prediction path, gathered on rank 0
    as (gene indices, scores). All ranks call; returns None on other ranks."""
    members = state.store.split_indices(split)
    mine = members[eval_gene_slice(len(members), state.context.world_rank, state.context.world_size)]
    size = state.config.train.micro_batch_size
    min_batches, filler = 0, None
    if state.config.train.zero_stage == 3:  # every rank runs as many forwards as the busiest one
        min_batches = int(all_reduce_means_and_maxes({}, {"batches": float(-(-len(mine) // size))})["batches"])
        filler = list(eval_examples(state.store, members[:1], state.windower, seed=0))
    shape = BatchShape(state.pad_token_id, len(state.store.concept_ids), len(state.store.label_ids),
                       state.config.data.max_go_terms)
    state.engine.module.eval()
    scored = predict_examples(state.engine, eval_examples(state.store, mine, state.windower, seed=state.config.train.seed),
                              shape, batch_size=size, device=state.engine.device, min_batches=min_batches, filler=filler)
    state.engine.module.train()
    gathered = gather_to_rank0((scored.gene_indices, scored.probabilities), state.context)
    if gathered is None:
        return None
    return np.concatenate([g[0] for g in gathered]), np.concatenate([g[1] for g in gathered])


def evaluate(state: TrainState, split: str) -> dict[str, Any] | None:
    """Per-bin Fmax / AUC / AUPR / Smin of `split` on rank 0 (None elsewhere). All ranks call."""
    predicted = predict_split(state, split)
    if predicted is None:
        return None
    gene_indices, scores = predicted
    return score_genes(state.store, gene_indices, scores)


def save_checkpoint(state: TrainState, directory: Path) -> None:
    """Every rank writes its files into `directory` (the checkpoint contract). All ranks call. A write
    error (disk full, quota) stops the run with one line; the checkpoint is never completed, so resume
    uses the previous one."""
    try:
        client_state = {"step": state.step, "selection": state.selection.state_dict()}
        save_engine(state.engine, directory / ckpt.ENGINE_DIR, ckpt.engine_tag(state.step), client_state)
        ckpt.write_worker_state(directory, state.context.world_rank, state.stream.state_dict())
        inject_fault(state.config, state, "checkpoint")
        trainable = [p for p in state.model.parameters() if p.requires_grad]
        with gathered_parameters(trainable, state.config.train.zero_stage):  # ZeRO-3: whole tensors on rank 0
            if state.context.is_rank0:
                ckpt.write_trainable(directory, state.model.trainable_state_dict())
        if state.context.is_rank0:
            meta = ckpt.CheckpointMeta(state.step, state.context.world_size, state.config.train.zero_stage,
                                       state.tracking_run_id, store_fingerprint=state.store.fingerprint,
                                       valid_fmax=state.step_valid_fmax)
            ckpt.write_meta(directory, meta, config_to_yaml(state.config))
    except OSError as error:
        raise GpError(f"checkpoint at step {state.step}: cannot write {error.filename or directory}: "
                      f"{error.strerror or error}; the previous checkpoint is intact") from None
    except RuntimeError as error:  # torch.save's zip writer reports a failed write(2) this way
        raise GpError(f"checkpoint at step {state.step}: cannot write under {directory} (disk full?): "
                      f"{str(error).strip().splitlines()[0]}; the previous checkpoint is intact") from None


def inject_fault(config: GPConfig, state: TrainState, during: str) -> None:
    """Fault drill (config `faults`): SIGKILL this worker at a given step (after the optimizer step, or
    inside that step's checkpoint write), once per marker file."""
    faults = config.faults
    if (faults.kill_at_step != state.step or faults.kill_rank != state.context.world_rank
            or faults.kill_during != during):
        return
    if faults.once_marker is not None:
        if faults.once_marker.exists():
            return
        faults.once_marker.write_text(f"killed rank {faults.kill_rank} during {during} {state.step}\n")
    os.kill(os.getpid(), signal.SIGKILL)


def train(config: GPConfig, context: WorkerContext, reporter: Reporter) -> dict[str, Any]:
    """The loop: setup, restore, steps with periodic evaluation and checkpoints, final evaluation."""
    with reporter.resume_checkpoint() as resume_dir:
        meta = ckpt.read_meta(resume_dir) if resume_dir is not None else None
        state = setup(config, context, load_universal=meta is not None and is_elastic_resume(meta, context))
        if meta is not None:
            restore(state, resume_dir, meta)
    # Memory metrics: the peak of building the model (the whole unpartitioned model exists then), and,
    # per step, the peak since training began (the ZeRO-partitioned steady state).
    state.setup_peak_rss_gib = peak_rss_gib()
    reset_peak_rss()
    train_config = config.train
    # Rank 0 logs to MLflow (continuing the run a resumed checkpoint names); other ranks get a null tracker.
    # The outage backlog is a local file: a run in object storage keeps held-back metrics in memory only.
    backlog_dir = (None if is_storage_uri(train_config.storage_path)
                   else ckpt.run_directory(train_config.storage_path, train_config.run_name))
    tracker = start_tracker(config.tracking, train_config.run_name, is_rank0=context.is_rank0,
                            resume_run_id=state.tracking_run_id, backlog_dir=backlog_dir)
    state.tracking_run_id = tracker.run_id
    log_run_inputs(tracker, config, state.store.summary())
    try:
        metrics = _train_steps(state, reporter, tracker)
    except BaseException:
        tracker.end("FAILED")
        raise
    tracker.end()
    return metrics


def _train_steps(state: TrainState, reporter: Reporter, tracker: Tracker) -> dict[str, Any]:
    config, context, train_config = state.config, state.context, state.config.train
    metrics: dict[str, Any] = {}
    # Rank 0 speaks for the run (one line per logged step, evaluation and checkpoint); others are silent.
    progress = StepProgress(train_config.max_steps, state.step, enabled=context.is_rank0,
                            bar=reporter.progress_bar(train_config.max_steps, state.step) if context.is_rank0 else None)
    if state.step >= train_config.max_steps or state.selection.stopped_early:
        context.print0(f"run already complete at step {state.step}")
    while state.step < train_config.max_steps and not state.selection.stopped_early:
        step_metrics = train_step(state)
        inject_fault(config, state, "step")
        metrics = {"step": state.step, **all_reduce_means_and_maxes(step_metrics, {
            "memory/peak_rss_gib": peak_rss_gib(), "memory/setup_peak_rss_gib": state.setup_peak_rss_gib,
            "memory/baseline_rss_gib": state.baseline_rss_gib})}
        progress.step(state.step, metrics["loss"], metrics["learning_rate"],
                      metrics["genes_per_second"] * context.world_size)
        last = state.step == train_config.max_steps
        state.step_valid_fmax = None
        splits = ((["valid"] if state.step % train_config.eval_every == 0 or last else [])
                  + (["test"] if last and train_config.test_at_end else []))
        for split in splits:
            results = evaluate(state, split)
            if results is not None:
                metrics.update(flatten_results(results, split))
                progress.note(evaluation_line(state.step, split, results))
        if "valid" in splits:
            # Rank 0 scored the split; every rank must agree on stopping, so the value is broadcast.
            state.step_valid_fmax = broadcast_from_rank0(metrics.get(SELECTION_METRIC, math.nan))
            state.selection.observe(state.step, state.step_valid_fmax, train_config.early_stopping_patience)
            if state.selection.stopped_early and not last:
                context.print0(f"early stopping at step {state.step}: validation Fmax has not improved for "
                               f"{train_config.early_stopping_patience} evaluations (best "
                               f"{state.selection.best_valid_fmax:.4f} at step {state.selection.best_step})")
        tracker.log_metrics(metrics, step=state.step)
        # The final evaluation travels with the final checkpoint: Ray Train V2 keeps only metrics
        # reported together with a checkpoint.
        if state.step % train_config.ckpt_every == 0 or last or state.selection.stopped_early:
            name = ckpt.checkpoint_dir_name(state.step)
            with reporter.staging_dir(name) as staging:
                save_checkpoint(state, staging)
                reporter.report(metrics, staging, name)
            progress.note(f"step {state.step}: checkpoint {name}")
    progress.close()
    return metrics


def evaluation_line(step: int, split: str, results: dict[str, Any]) -> str:
    """One console line for an evaluation: the split's overall Fmax and AUC."""
    overall = results["all"]
    return (f"step {step}: {split} Fmax {100 * overall['fmax']:.2f}% AUC {100 * overall['auc']:.2f}% "
            f"({int(overall['genes'])} genes)")


def train_loop_per_worker(config_tree: dict[str, Any]) -> None:
    """Ray Train's entry point on every worker."""
    config = config_from_tree(config_tree, "worker config")
    train(config, ray_worker_context(), RayReporter())


def run_in_process(config: GPConfig, run_dir: Path) -> dict[str, Any]:
    """The same loop with a world of one in this process (`scaling.num_workers=0`)."""
    context = init_single_process_group()
    reporter = LocalReporter(run_dir, config.train.keep_last_checkpoints, context, keep_best=config.train.select_best)
    return train(config, context, reporter)
