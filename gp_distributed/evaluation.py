"""Scoring a trained checkpoint or a baseline on a store split, in one process (no DeepSpeed needed to
predict): the harness behind `gp evaluate` and `gp baseline`, reporting the same per-bin table."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from gp_distributed import checkpoint as ckpt
from gp_distributed.baselines import run_baseline
from gp_distributed.config import GPConfig
from gp_distributed.data.collate import collate
from gp_distributed.data.store import GeneStore, open_store
from gp_distributed.data.stream import eval_examples
from gp_distributed.data.tokenize import GeneWindower
from gp_distributed.metrics import evaluate_by_bin, information_content
from gp_distributed.model.genepheno import GenePhenoModel


@dataclass
class TrainedModel:
    config: GPConfig
    model: GenePhenoModel
    windower: GeneWindower
    pad_token_id: int


def load_trained_model(checkpoint_dir: Path, store: GeneStore) -> TrainedModel:
    """Rebuild the model of a checkpoint: backbone from its pretrained source, trained weights from
    `trainable.safetensors`, config from `config.yaml`. The store must have the model's vocabularies."""
    from gp_distributed.model_package import read_checkpoint_config
    from gp_distributed.worker import build_model

    checkpoint_dir = Path(checkpoint_dir)
    config = read_checkpoint_config(checkpoint_dir)
    model, windower, pad_token_id = build_model(config, store)
    # A store with other vocabularies fails here, naming the weights file and the mismatching module.
    model.load_trainable_state_dict(ckpt.read_trainable(checkpoint_dir), str(checkpoint_dir / "trainable.safetensors"))
    model.eval()
    return TrainedModel(config, model, windower, pad_token_id)


@torch.no_grad()
def predict_genes(trained: TrainedModel, store: GeneStore, gene_indices: np.ndarray, *,
                  batch_size: int | None = None, show_progress: bool = False) -> np.ndarray:
    """(len(gene_indices), C) phenotype probabilities, in the given gene order. Batches default to the
    training micro-batch size, so scores equal the training loop's own evaluation bit for bit."""
    batch_size = batch_size or trained.config.train.micro_batch_size
    examples = list(eval_examples(store, np.asarray(gene_indices), trained.windower, seed=trained.config.train.seed))
    scores = []
    for start in tqdm(range(0, len(examples), batch_size), disable=not show_progress, unit="batch"):
        batch = collate(examples[start : start + batch_size], trained.pad_token_id, len(store.concept_ids),
                        len(store.label_ids), trained.config.data.max_go_terms)
        scores.append(torch.sigmoid(trained.model(batch).label_logits.float()).numpy())
    return np.concatenate(scores) if scores else np.zeros((0, len(store.label_ids)), np.float32)


def score_genes(store: GeneStore, gene_indices: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """The per-bin metrics of `scores` (rows = `gene_indices`) against the store's labels; information
    content from the training split. The one scoring path of training-time evaluation and `gp evaluate`."""
    train_labels = store.multi_hot("labels", store.split_indices("train"))
    return evaluate_by_bin(
        store.multi_hot("labels", gene_indices), scores, store.label_bins, store.bin_labels,
        information_content=information_content(train_labels, store.label_parents), parents=store.label_parents,
    )


def score_split(store: GeneStore, split: str, scores: np.ndarray) -> dict[str, Any]:
    """`score_genes` for every gene of `split`, in store order."""
    return score_genes(store, store.split_indices(split), scores)


def evaluate_checkpoint(checkpoint_dir: Path, store_path: Path, split: str, *, show_progress: bool = True) -> dict[str, Any]:
    store = open_store(store_path)
    trained = load_trained_model(checkpoint_dir, store)
    scores = predict_genes(trained, store, store.split_indices(split), show_progress=show_progress)
    return score_split(store, split, scores)


def evaluate_baseline(name: str, store_path: Path, split: str) -> dict[str, Any]:
    store = open_store(store_path)
    train = store.split_indices("train")
    target = store.split_indices(split)
    train_sequences = [r.sequence for r in store.read_block(int(train[0]), int(train[-1]) + 1)] if len(train) else []
    target_sequences = [store.gene(int(i)).sequence for i in target]
    params = {} if name == "naive" else {"alphabet": store.alphabet}  # the naive baseline ignores sequences
    scores = run_baseline(name, train_sequences, store.multi_hot("labels", train), target_sequences, **params)
    return score_split(store, split, scores)


def write_report(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, sort_keys=True, default=float))
