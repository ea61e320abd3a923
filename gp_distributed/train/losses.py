"""GenePheno objectives (DESIGN.md section 1): L = L_MLC + lambda_exclusive * L_ex + lambda_concept * L_GO.

Shapes: B genes in the batch, C labels (phenotype terms or GO concepts), E exclusive pairs. Logits are
raw scores s (0 is the decision threshold: sigmoid(s) >= 0.5); targets are {0, 1} of any dtype. An
optional `label_mask` (bool, broadcastable to (B, C), True = the label counts) removes labels that are
unknown for a gene from both its positives and its negatives. Every reduction returns a 0-dim tensor
averaged over the B genes (B >= 1), and every loss is finite for finite logits of any magnitude: sums
of exponentials go through `logsumexp` / `softplus`, and empty sets are handled without NaN gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gp_distributed.config import LossConfig


def _positive_negative_masks(
    targets: torch.Tensor, label_mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    positive = targets > 0.5
    negative = ~positive
    if label_mask is not None:
        positive = positive & label_mask
        negative = negative & label_mask
    return positive, negative


def _log1p_sum_exp(values: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
    """log(1 + sum_{k in members} exp(values_k)) per row, (B, C) -> (B,); an empty set gives exactly 0.

    The "1" is a zero logit appended as an extra column, so no row is all -inf and the gradient of
    logsumexp (a softmax) stays finite.
    """
    masked = values.masked_fill(~members, float("-inf"))
    zero_column = values.new_zeros(values.shape[0], 1)
    return torch.logsumexp(torch.cat([zero_column, masked], dim=1), dim=1)


def multilabel_contrastive_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 1.0,
    label_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Contrastive multi-label loss, mean over genes; ZLPR (Su et al.) at temperature 1.

    Per gene, with positives P and negatives N:
    tau * [log(1 + sum_{j in N} exp(s_j / tau)) + log(1 + sum_{i in P} exp(-s_i / tau))].
    It pushes every negative below 0 and every positive above 0, coupling all labels of a gene. A gene
    without positives (or negatives) only gets the other term.
    logits, targets: (B, C). Returns a 0-dim tensor.
    """
    positive, negative = _positive_negative_masks(targets, label_mask)
    scaled = logits / temperature  # (B, C)
    per_gene = _log1p_sum_exp(scaled, negative) + _log1p_sum_exp(-scaled, positive)  # (B,)
    return temperature * per_gene.mean()


def _masked_logsumexp(values: torch.Tensor, members: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logsumexp over members per row (B, 1), whether the row has any member (B, 1)).

    Rows without members get a finite placeholder (logsumexp of the whole row) instead of -inf, whose
    backward would be NaN; callers must zero those rows' terms with the returned flag.
    """
    has_member = members.any(dim=1, keepdim=True)  # (B, 1)
    selectable = members | ~has_member
    lse = torch.logsumexp(values.masked_fill(~selectable, float("-inf")), dim=1, keepdim=True)
    return lse, has_member


def per_positive_infonce_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 1.0,
    label_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pairwise (per-positive InfoNCE) multi-label loss with its mirror term, mean over genes.

    Per gene, with positives P, negatives N and u = s / tau:
      positive side  A = (1/|P|) sum_{i in P} log(1 + sum_{j in N} exp(u_j - u_i)),
      negative side  B = (1/|N|) sum_{j in N} log(1 + sum_{i in P} exp(u_j - u_i)),
      loss = tau * (A + B); an empty side contributes 0.
    Each side is a mean over its own members (not a sum divided by |P| + |N|): with ~C negatives and
    a handful of positives, a shared denominator would scale the positive side by 1/C and make the loss
    depend on the vocabulary size. Memory is O(B * C), not the naive O(B * |P| * |N|), through
    log(1 + sum_j exp(u_j - u_i)) = softplus(LSE_{j in N}(u_j) - u_i) and its mirror
    log(1 + sum_i exp(u_j - u_i)) = softplus(u_j + LSE_{i in P}(-u_i)).
    Note that it only ranks positives above negatives: unlike the contrastive loss it has no fixed
    threshold at 0. logits, targets: (B, C). Returns a 0-dim tensor.
    """
    positive, negative = _positive_negative_masks(targets, label_mask)
    scaled = logits / temperature  # (B, C)
    lse_negative, has_negative = _masked_logsumexp(scaled, negative)  # (B, 1) each
    lse_positive, has_positive = _masked_logsumexp(-scaled, positive)
    # Rows lacking the other side get the placeholder LSE; `& has_*` drops those terms.
    positive_terms = F.softplus(lse_negative - scaled) * (positive & has_negative)  # (B, C)
    negative_terms = F.softplus(scaled + lse_positive) * (negative & has_positive)
    positive_side = positive_terms.sum(dim=1) / positive.sum(dim=1).clamp(min=1)  # (B,)
    negative_side = negative_terms.sum(dim=1) / negative.sum(dim=1).clamp(min=1)
    return temperature * (positive_side + negative_side).mean()


def bce_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 1.0,
    label_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Binary cross-entropy with logits, mean over the counted (gene, label) entries.

    `temperature` is accepted for a uniform signature and ignored (BCE has none). (B, C) -> 0-dim.
    """
    del temperature
    entries = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")  # (B, C)
    if label_mask is None:
        return entries.mean()
    weights = label_mask.expand_as(entries).to(logits.dtype)
    return (entries * weights).sum() / weights.sum().clamp(min=1.0)


_MULTILABEL_LOSSES = {
    "contrastive": multilabel_contrastive_loss,
    "infonce": per_positive_infonce_loss,
    "bce": bce_loss,
}


def exclusivity_loss(logits: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """Mean over genes of sum_{(i, j) in pairs} softplus(s_i + s_j).

    Pushes both members of a mutually exclusive pair down whenever their sum is high, even if both are
    annotated (the pairs are a soft constraint). logits: (B, C); pairs: (E, 2) int64 label indices.
    E = 0 gives a zero that is still connected to `logits` in the autograd graph.
    """
    pair_sums = logits[:, pairs[:, 0]] + logits[:, pairs[:, 1]]  # (B, E)
    return F.softplus(pair_sums).sum(dim=1).mean()


@dataclass(frozen=True)
class LossTerms:
    """The total loss and its unweighted parts (each 0-dim; log them detached)."""

    total: torch.Tensor
    mlc: torch.Tensor  # multi-label loss on the phenotype logits (contrastive, infonce or bce)
    exclusive: torch.Tensor
    concept: torch.Tensor  # the same multi-label loss on the GO-concept bottleneck logits


def genepheno_loss(
    label_logits: torch.Tensor,
    label_targets: torch.Tensor,
    concept_logits: torch.Tensor | None,
    concept_targets: torch.Tensor | None,
    exclusive_pairs: torch.Tensor,
    config: LossConfig,
    *,
    label_mask: torch.Tensor | None = None,
    concept_mask: torch.Tensor | None = None,
) -> LossTerms:
    """total = L_MLC + config.lambda_exclusive * L_ex + config.lambda_concept * L_GO.

    label_logits, label_targets: (B, C); concept_logits, concept_targets: (B, n) or both None (no
    bottleneck supervision: L_GO = 0); exclusive_pairs: (E, 2) int64. `config.kind` picks the
    multi-label loss used for both L_MLC and L_GO, `config.temperature` its tau. `concept_mask`
    (broadcastable to (B, n)) can exclude genes without GO annotations from L_GO, since their concepts
    are unknown rather than negative.
    """
    multilabel = _MULTILABEL_LOSSES[config.kind]
    mlc = multilabel(label_logits, label_targets, config.temperature, label_mask)
    exclusive = exclusivity_loss(label_logits, exclusive_pairs)
    if (concept_logits is None) != (concept_targets is None):
        raise ValueError("concept_logits and concept_targets must both be given or both be None")
    if concept_logits is None:
        concept = label_logits.new_zeros(())
    else:
        concept = multilabel(concept_logits, concept_targets, config.temperature, concept_mask)
    total = mlc + config.lambda_exclusive * exclusive + config.lambda_concept * concept
    return LossTerms(total=total, mlc=mlc, exclusive=exclusive, concept=concept)
