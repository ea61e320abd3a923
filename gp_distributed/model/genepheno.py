"""GenePheno: backbone (+LoRA) -> optional GO branch -> pooling -> MLP -> concept bottleneck -> phenotype head.

Shapes: W windows, T tokens, d backbone hidden size, B genes, G GO slots, n concepts, C phenotypes.
Pooling: each stream (sequence tokens; GO terms when the branch is on) is pooled by attention and by
mean over its real positions ("attention+mean"; "mean" keeps the mean only); a gene's windows are pooled
separately and then averaged. x = [seq_attn, seq_mean, go_attn, go_mean] is (B, 4d) with GO, (B, 2d)
without (half of that with "mean").

Checkpoint contract: `trainable_state_dict()` holds everything training changes and nothing else: the
LoRA weights (keys "backbone.<module path>.lora_A.weight", ...) and the full state of every
non-backbone module ("go_branch.*", "sequence_pool.*", "go_pool.*", "mlp.*", "bottleneck.*", "head.*").
The frozen backbone comes from its preset or directory, not from checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from gp_distributed.config import ModelConfig
from gp_distributed.data.collate import Batch
from gp_distributed.errors import InputError
from gp_distributed.model.adapters import (
    adapter_state_dict,
    apply_lora,
    load_adapter_state_dict,
)
from gp_distributed.model.backbone import build_backbone, token_states
from gp_distributed.model.bottleneck import ConceptBottleneck
from gp_distributed.model.go_branch import GoBranch
from gp_distributed.model.head import PhenotypeHead

_BACKBONE_PREFIX = "backbone."


@dataclass(frozen=True)
class ModelOutput:
    label_logits: torch.Tensor  # (B, C) phenotype logits; 0 is the decision threshold
    concept_logits: torch.Tensor  # (B, n) coarse GO concept logits (target of L_GO)
    concept_activations: torch.Tensor  # (B, n) sigmoid(concept_logits), the head's input
    # Gene embeddings (`gp embed`): the pooled sequence streams, and the MLP's output, which fuses them
    # with the pooled GO streams (the bottleneck's input).
    sequence_vector: torch.Tensor | None = None  # (B, 2d) [attention, mean] pooled tokens; (B, d) with "mean"
    fused_vector: torch.Tensor | None = None  # (B, mlp_hidden_dim)


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of states (N, L, d) over positions where mask (N, L) is True -> (N, d)."""
    weights = mask.to(states.dtype).unsqueeze(-1)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class AttentionPool(nn.Module):
    """Softmax-weighted sum over real positions, scores from a learned linear map: (N, L, d) -> (N, d)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.score = nn.Linear(hidden_size, 1)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.score(states).squeeze(-1)  # (N, L)
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1).unsqueeze(-1)
        return (weights * states).sum(1)


def windows_to_genes(window_vectors: torch.Tensor, window_gene_index: torch.Tensor, n_genes: int) -> torch.Tensor:
    """Mean of the window vectors (W, d) of each gene -> (B, d)."""
    sums = window_vectors.new_zeros(n_genes, window_vectors.shape[1])
    sums.index_add_(0, window_gene_index, window_vectors)
    counts = torch.bincount(window_gene_index, minlength=n_genes).clamp(min=1).to(sums.dtype)
    return sums / counts.unsqueeze(1)


def pool_stream(states: torch.Tensor, mask: torch.Tensor, pool: AttentionPool | None) -> list[torch.Tensor]:
    """[attention-pooled (N, d) when `pool` is set, masked mean (N, d)] of states (N, L, d)."""
    pooled = [pool(states, mask)] if pool is not None else []
    return [*pooled, masked_mean(states, mask)]


class GenePhenoModel(nn.Module):
    """The GenePheno network over one backbone; see the module docstring for the data flow.

    `n_go_vocab` is the GO input vocabulary size (ignored with the GO branch off), `n_concepts` the
    bottleneck width, `n_labels` the number of phenotype terms. Backbone base weights are frozen; LoRA
    (when enabled) and every other module train. `on_gpu` / `bf16`: see `build_backbone`.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        n_go_vocab: int,
        n_concepts: int,
        n_labels: int,
        tokenizer: PreTrainedTokenizerBase,
        *,
        on_gpu: bool = False,
        bf16: bool = False,
    ):
        super().__init__()
        backbone, hidden_size, _ = build_backbone(model_config, tokenizer, on_gpu=on_gpu, bf16=bf16)
        self.backbone = apply_lora(backbone, model_config.lora, backbone.config.model_type)
        self.hidden_size = hidden_size
        self.lora_enabled = model_config.lora.enabled
        self.use_attention_pool = model_config.pooling == "attention+mean"
        self.go_branch = (
            GoBranch(n_go_vocab, hidden_size, model_config.go_branch, model_config.dropout)
            if model_config.go_branch.enabled
            else None
        )
        with_go_pool = self.use_attention_pool and self.go_branch is not None
        self.sequence_pool = AttentionPool(hidden_size) if self.use_attention_pool else None
        self.go_pool = AttentionPool(hidden_size) if with_go_pool else None
        n_streams = 2 if self.go_branch is not None else 1
        pooled_size = n_streams * hidden_size * (2 if self.use_attention_pool else 1)
        if self.go_branch is not None:
            pooled_size += model_config.go_branch.bag_dim
        self.mlp = nn.Sequential(
            nn.LayerNorm(pooled_size),
            nn.Linear(pooled_size, model_config.mlp_hidden_dim),
            nn.GELU(),
            nn.Dropout(model_config.dropout),
        )
        self.bottleneck = ConceptBottleneck(model_config.mlp_hidden_dim, n_concepts, model_config.free_concepts)
        self.head = PhenotypeHead(n_concepts, n_labels, model_config.free_concepts)

    def forward(self, batch: Batch) -> ModelOutput:
        token_mask = batch.attention_mask.bool()  # (W, T)
        tokens = token_states(self.backbone, batch.input_ids, batch.attention_mask)  # (W, T, d)
        n_genes = batch.num_genes
        go_parts: list[torch.Tensor] = []
        if self.go_branch is not None:
            tokens, go_states, go_valid, go_bag = self.go_branch(
                tokens, token_mask, batch.window_gene_index, batch.go_ids, batch.go_mask
            )
            go_parts = pool_stream(go_states, go_valid, self.go_pool)  # each (B, d)
            if go_bag is not None:
                go_parts.append(go_bag)  # (B, bag_dim)
        sequence_parts = [
            windows_to_genes(window_vectors, batch.window_gene_index, n_genes)  # (W, d) -> (B, d)
            for window_vectors in pool_stream(tokens, token_mask, self.sequence_pool)
        ]
        sequence_vector = torch.cat(sequence_parts, dim=-1)  # (B, 2d) or (B, d)
        features = self.mlp(torch.cat([sequence_vector, *go_parts], dim=-1))  # (B, mlp_hidden_dim)
        concept_logits, concept_activations, free_activations = self.bottleneck(features)
        label_logits = self.head(torch.cat([concept_activations, free_activations], dim=-1))
        return ModelOutput(label_logits, concept_logits, concept_activations,
                           sequence_vector, features)

    @torch.no_grad()
    def set_output_priors(self, label_frequency: torch.Tensor, concept_frequency: torch.Tensor) -> None:
        """Start the head and bottleneck biases at the log-odds of each term's training frequency.

        With zero biases every phenotype starts at probability 0.5, and Adam moves a bias by about one
        learning rate per step, so a rare term would need thousands of steps just to learn how rare it is.
        Starting from the prior (as RetinaNet does for rare classes) lets training spend its steps on
        telling genes apart.
        """
        def log_odds(frequency: torch.Tensor) -> torch.Tensor:
            p = frequency.clamp(1e-4, 1 - 1e-4)
            return torch.log(p) - torch.log1p(-p)

        self.head.linear.bias.copy_(log_odds(label_frequency.to(self.head.linear.bias.dtype)))
        n_concepts = self.bottleneck.n_concepts  # free units (if any) have no prior: their init stays
        self.bottleneck.linear.bias[:n_concepts].copy_(log_odds(concept_frequency.to(self.bottleneck.linear.bias.dtype)))

    def association_matrix(self) -> torch.Tensor:
        """Concept -> phenotype associations (n, C) of the head."""
        return self.head.association_matrix()

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """LoRA weights + the full state of every non-backbone module (tensors share the live storage)."""
        state: dict[str, torch.Tensor] = {}
        if self.lora_enabled:
            state = {_BACKBONE_PREFIX + key: value for key, value in adapter_state_dict(self.backbone).items()}
        for name, module in self.named_children():
            if name != "backbone":
                state.update({f"{name}.{key}": value for key, value in module.state_dict().items()})
        return state

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor], source: str = "<trainable state>") -> None:
        """Load what `trainable_state_dict()` saved; keys and shapes must match exactly.

        A mismatch (other architecture, other vocabulary or label set, LoRA rank) raises `InputError`
        naming `source`, the file the state came from.
        """
        adapter = {k[len(_BACKBONE_PREFIX) :]: v for k, v in state.items() if k.startswith(_BACKBONE_PREFIX)}
        if self.lora_enabled:
            load_adapter_state_dict(self.backbone, adapter, source)
        elif adapter:
            raise InputError(source, f"holds LoRA weights ({next(iter(adapter))}) but LoRA is disabled")
        children = {name: module for name, module in self.named_children() if name != "backbone"}
        for name, module in children.items():
            prefix = name + "."
            part = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            try:
                module.load_state_dict(part, strict=True)
            except RuntimeError as error:
                raise InputError(source, f"{name}: {error}") from None
        known = (_BACKBONE_PREFIX, *(name + "." for name in children))
        unexpected = sorted(key for key in state if not key.startswith(known))
        if unexpected:
            raise InputError(source, f"unexpected entries {unexpected[:3]}")
