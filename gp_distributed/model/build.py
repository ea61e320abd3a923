"""The one place a GenePheno model is built: from a config, the store's vocabulary sizes and, to
predict, a checkpoint's trained weights. Training (`train.worker`) and every prediction path
(`inference.package.Predictor`: gp evaluate / predict / explain, the pyfunc model) call it.

Initial weights are a pure function of `train.seed` (identical on every rank); the frozen backbone
comes from its preset or `backbone_path`, never from a checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from gp_distributed import checkpoint as ckpt
from gp_distributed.config import GPConfig, resolved_precision
from gp_distributed.model.genepheno import GenePhenoModel


@dataclass(frozen=True)
class VocabularySizes:
    go_inputs: int  # G, GO input terms
    concepts: int  # n, bottleneck units
    labels: int  # C, phenotype terms


def new_model(config: GPConfig, sizes: VocabularySizes, tokenizer: PreTrainedTokenizerBase, *,
              training: bool = False) -> GenePhenoModel:
    """A freshly initialised model; seeds the global torch RNG with `train.seed` (the training start).
    `training`: built for this config's training devices (attention and weights dtype for GPU / bf16);
    otherwise for CPU prediction in fp32."""
    torch.manual_seed(config.train.seed)
    on_gpu = training and config.scaling.use_gpu
    bf16 = training and resolved_precision(config) == "bf16"
    return GenePhenoModel(config.model, sizes.go_inputs, sizes.concepts, sizes.labels, tokenizer, on_gpu=on_gpu,
                          bf16=bf16)


def new_training_model(config: GPConfig, sizes: VocabularySizes, tokenizer: PreTrainedTokenizerBase,
                       label_frequency: np.ndarray, concept_frequency: np.ndarray) -> GenePhenoModel:
    """`new_model` with head and bottleneck biases at the training log-odds of each term."""
    model = new_model(config, sizes, tokenizer, training=True)
    model.set_output_priors(torch.from_numpy(label_frequency), torch.from_numpy(concept_frequency))
    return model


def load_trained_model(config: GPConfig, sizes: VocabularySizes, tokenizer: PreTrainedTokenizerBase,
                       checkpoint_dir: Path) -> GenePhenoModel:
    """The model of a checkpoint in eval mode: built as training built it (on a forked RNG, so the
    caller's random streams are untouched), then every trained weight read from the checkpoint. A
    checkpoint of other vocabularies fails naming its weights file and the mismatching module."""
    with torch.random.fork_rng():
        model = new_model(config, sizes, tokenizer)
    source = Path(checkpoint_dir) / ckpt.TRAINABLE_FILE
    model.load_trainable_state_dict(ckpt.read_trainable(checkpoint_dir), str(source))
    return model.eval()
