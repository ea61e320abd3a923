"""The GO branch: a gene's GO input terms as a second token stream, fused with the sequence by
cross-attention in both directions (GenePheno Fig. 2, step 2).

Shapes: W windows, T tokens per window, d hidden size, B genes, G GO slots per gene (padded).
Every gene's GO stream starts with a learned "null" term, so a gene without GO annotations still has
one key to attend to and one vector to pool: no all-masked softmax, no NaN.

Two options shape what the branch learns from a from-scratch GO table (GoBERT's pretrained GO
embeddings cannot be downloaded here): `input_dropout` hides a random share of a gene's GO terms at
each training step (annotation sets are incomplete; the model must not lean on any one term), and
`bag_dim` > 0 adds a mean-pooled bag of a separate, wider GO-term table (B, bag_dim) beside the
cross-attended streams, so the GO set reaches the MLP at more than the backbone's width (the tiny
presets are 64 wide). With inputs closed under is_a/part_of, the bag of a term's set already sums its
ancestors' vectors: strength shared through the GO DAG.
"""

from __future__ import annotations

import torch
from torch import nn

from gp_distributed.config import GoBranchConfig
from gp_distributed.errors import ConfigError


def gene_token_slots(
    states: torch.Tensor, mask: torch.Tensor, window_gene_index: torch.Tensor, n_genes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Regroup window token states (W, T, d) per gene: (B, K*T, d) and mask (B, K*T), K = most windows of a gene.

    A gene's windows are laid side by side in their batch order; slots of absent windows are masked.
    """
    n_windows, n_tokens, hidden = states.shape
    counts = torch.bincount(window_gene_index, minlength=n_genes)  # (B,)
    # Rank of each window among its gene's windows, from a stable sort by gene.
    order = torch.argsort(window_gene_index, stable=True)
    first_of_gene = torch.cumsum(counts, 0) - counts  # (B,) position of each gene's first window in `order`
    rank = torch.empty_like(window_gene_index)
    rank[order] = torch.arange(n_windows, device=states.device) - first_of_gene[window_gene_index[order]]
    max_windows = int(counts.max())
    slots = states.new_zeros(n_genes, max_windows, n_tokens, hidden)
    slot_mask = mask.new_zeros(n_genes, max_windows, n_tokens)
    slots[window_gene_index, rank] = states
    slot_mask[window_gene_index, rank] = mask
    return slots.reshape(n_genes, max_windows * n_tokens, hidden), slot_mask.reshape(n_genes, -1)


class GoBranch(nn.Module):
    """GO-term embeddings + a small transformer over them + sequence<->GO cross-attention.

    `n_go_vocab` terms get rows 1..n_go_vocab of the embedding table (row 0 is padding, kept at zero).
    The transformer has `config.num_layers` pre-norm layers (0: embeddings used as they are), FFN width 2d.
    """

    def __init__(self, n_go_vocab: int, hidden_size: int, config: GoBranchConfig, dropout: float):
        super().__init__()
        if hidden_size % config.num_heads:
            message = f"{config.num_heads} heads do not divide the backbone hidden size {hidden_size}"
            raise ConfigError("config", "model.go_branch.num_heads", message)
        self.term_embedding = nn.Embedding(n_go_vocab + 1, hidden_size, padding_idx=0)
        self.input_dropout = config.input_dropout
        # EmbeddingBag leaves padding slots (index 0) out of the mean; a gene without GO gets zeros.
        self.bag = (nn.EmbeddingBag(n_go_vocab + 1, config.bag_dim, mode="mean", padding_idx=0)
                    if config.bag_dim else None)
        self.bag_norm = nn.LayerNorm(config.bag_dim) if config.bag_dim else None
        self.null_term = nn.Parameter(torch.randn(hidden_size))
        layer = nn.TransformerEncoderLayer(
            hidden_size, config.num_heads, dim_feedforward=2 * hidden_size, dropout=dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )  # fmt: skip
        self.encoder = (
            nn.TransformerEncoder(layer, config.num_layers, enable_nested_tensor=False)
            if config.num_layers
            else None
        )
        heads = config.num_heads
        self.sequence_to_go = nn.MultiheadAttention(hidden_size, heads, dropout=dropout, batch_first=True)
        self.go_to_sequence = nn.MultiheadAttention(hidden_size, heads, dropout=dropout, batch_first=True)
        self.sequence_norm = nn.LayerNorm(hidden_size)
        self.go_norm = nn.LayerNorm(hidden_size)

    def forward(
        self,
        token_states: torch.Tensor,  # (W, T, d)
        token_mask: torch.Tensor,  # (W, T) bool, True on real tokens
        window_gene_index: torch.Tensor,  # (W,) long in [0, B)
        go_ids: torch.Tensor,  # (B, G) long, 0 = padding
        go_mask: torch.Tensor,  # (B, G) bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Fused streams: sequence (W, T, d), GO (B, G+1, d), the GO mask (B, G+1) (slot 0: null term)
        and the GO bag (B, bag_dim) (None without `bag_dim`)."""
        n_genes = go_ids.shape[0]
        if self.training and self.input_dropout > 0:
            go_mask = go_mask & (torch.rand(go_mask.shape, device=go_mask.device) >= self.input_dropout)
            go_ids = go_ids.masked_fill(~go_mask, 0)
        go_bag = self.bag_norm(self.bag(go_ids)).to(token_states.dtype) if self.bag is not None else None
        null = self.null_term.to(token_states.dtype).expand(n_genes, 1, -1)
        go_states = torch.cat([null, self.term_embedding(go_ids).to(token_states.dtype)], dim=1)  # (B, G+1, d)
        go_valid = torch.cat([go_mask.new_ones(n_genes, 1), go_mask], dim=1)  # (B, G+1)
        if self.encoder is not None:
            go_states = self.encoder(go_states, src_key_padding_mask=~go_valid)

        # sequence -> GO: each window's tokens query the GO terms of its own gene
        window_go, window_go_valid = go_states[window_gene_index], go_valid[window_gene_index]  # (W, G+1, ·)
        attended, _ = self.sequence_to_go(
            token_states, window_go, window_go, key_padding_mask=~window_go_valid, need_weights=False
        )
        fused_tokens = self.sequence_norm(token_states + attended)  # (W, T, d)

        # GO -> sequence: each GO term queries all tokens of all windows of its gene
        gene_tokens, gene_token_mask = gene_token_slots(token_states, token_mask, window_gene_index, n_genes)
        attended, _ = self.go_to_sequence(
            go_states, gene_tokens, gene_tokens, key_padding_mask=~gene_token_mask, need_weights=False
        )
        fused_go = self.go_norm(go_states + attended)  # (B, G+1, d)
        return fused_tokens, fused_go, go_valid, go_bag
