"""Losses: equal to plain-loop float64 references, right gradient signs, finite at extreme logits."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from gp_distributed.config import LossConfig
from gp_distributed.train.losses import (
    bce_loss,
    exclusivity_loss,
    genepheno_loss,
    multilabel_contrastive_loss,
    per_positive_infonce_loss,
)

LossFn = Callable[..., torch.Tensor]


def _random_case(seed: int, genes: int = 5, labels: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.randn(genes, labels, generator=generator, dtype=torch.float64)
    targets = (torch.rand(genes, labels, generator=generator) < 0.4).to(torch.float64)
    targets[0] = 1.0  # an all-positive gene
    targets[1] = 0.0  # an all-negative gene
    return logits, targets


def _split(row: list[float], target_row: list[float], mask_row: list[bool]) -> tuple[list[float], list[float]]:
    positives = [s for s, y, m in zip(row, target_row, mask_row) if m and y > 0.5]
    negatives = [s for s, y, m in zip(row, target_row, mask_row) if m and y <= 0.5]
    return positives, negatives


def _reference_contrastive(logits: torch.Tensor, targets: torch.Tensor, tau: float, mask: torch.Tensor) -> float:
    total = 0.0
    for row, target_row, mask_row in zip(logits.tolist(), targets.tolist(), mask.tolist()):
        positives, negatives = _split(row, target_row, mask_row)
        total += tau * (
            math.log(1 + sum(math.exp(s / tau) for s in negatives))
            + math.log(1 + sum(math.exp(-s / tau) for s in positives))
        )
    return total / len(logits)


def _reference_infonce(logits: torch.Tensor, targets: torch.Tensor, tau: float, mask: torch.Tensor) -> float:
    total = 0.0
    for row, target_row, mask_row in zip(logits.tolist(), targets.tolist(), mask.tolist()):
        positives, negatives = _split(row, target_row, mask_row)
        positive_side = sum(
            math.log(1 + sum(math.exp((sj - si) / tau) for sj in negatives)) for si in positives
        ) / max(len(positives), 1)
        negative_side = sum(
            math.log(1 + sum(math.exp((sj - si) / tau) for si in positives)) for sj in negatives
        ) / max(len(negatives), 1)
        total += tau * (positive_side + negative_side)
    return total / len(logits)


def _reference_bce(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> float:
    total, count = 0.0, 0
    for row, target_row, mask_row in zip(logits.tolist(), targets.tolist(), mask.tolist()):
        for s, y, m in zip(row, target_row, mask_row):
            if m:
                p = 1 / (1 + math.exp(-s))
                total -= y * math.log(p) + (1 - y) * math.log(1 - p)
                count += 1
    return total / count


@pytest.mark.parametrize("tau", [1.0, 0.3, 2.5])
@pytest.mark.parametrize("seed", [0, 1])
def test_contrastive_and_infonce_equal_loop_references(tau: float, seed: int) -> None:
    logits, targets = _random_case(seed)
    full = torch.ones_like(targets, dtype=torch.bool)
    assert multilabel_contrastive_loss(logits, targets, tau).item() == pytest.approx(
        _reference_contrastive(logits, targets, tau, full), rel=1e-12
    )
    assert per_positive_infonce_loss(logits, targets, tau).item() == pytest.approx(
        _reference_infonce(logits, targets, tau, full), rel=1e-12
    )


@pytest.mark.parametrize("loss_fn", [multilabel_contrastive_loss, per_positive_infonce_loss])
def test_label_mask_removes_labels_from_both_sides(loss_fn: LossFn) -> None:
    logits, targets = _random_case(2)
    mask = torch.rand(targets.shape, generator=torch.Generator().manual_seed(3)) < 0.7
    reference = _reference_contrastive if loss_fn is multilabel_contrastive_loss else _reference_infonce
    assert loss_fn(logits, targets, 0.7, mask).item() == pytest.approx(reference(logits, targets, 0.7, mask), rel=1e-12)
    per_term_mask = torch.tensor([True, False, True, True, False, True, True])  # (C,) broadcasts
    assert loss_fn(logits, targets, 0.7, per_term_mask).item() == pytest.approx(
        reference(logits, targets, 0.7, per_term_mask.expand_as(targets)), rel=1e-12
    )


def test_contrastive_at_tau_one_is_zlpr() -> None:
    logits, targets = _random_case(4)
    # ZLPR (Su et al. 2022): log(1 + sum_neg e^{s}) + log(1 + sum_pos e^{-s}), written with -inf padding.
    zero = torch.zeros(logits.shape[0], 1, dtype=logits.dtype)
    negative_part = torch.logsumexp(torch.cat([zero, logits - 1e12 * targets], dim=1), dim=1)
    positive_part = torch.logsumexp(torch.cat([zero, -logits - 1e12 * (1 - targets)], dim=1), dim=1)
    zlpr = (negative_part + positive_part).mean()
    assert multilabel_contrastive_loss(logits, targets, 1.0).item() == pytest.approx(zlpr.item(), rel=1e-12)


def test_bce_equals_reference_with_and_without_mask() -> None:
    logits, targets = _random_case(5)
    mask = torch.rand(targets.shape, generator=torch.Generator().manual_seed(6)) < 0.5
    assert bce_loss(logits, targets).item() == pytest.approx(
        _reference_bce(logits, targets, torch.ones_like(mask)), rel=1e-12
    )
    assert bce_loss(logits, targets, label_mask=mask).item() == pytest.approx(
        _reference_bce(logits, targets, mask), rel=1e-12
    )


@pytest.mark.parametrize("loss_fn", [multilabel_contrastive_loss, per_positive_infonce_loss, bce_loss])
def test_gradients_raise_positives_and_lower_negatives(loss_fn: LossFn) -> None:
    generator = torch.Generator().manual_seed(7)
    logits = torch.randn(6, 9, generator=generator, dtype=torch.float64).requires_grad_()
    targets = (torch.rand(6, 9, generator=generator) < 0.5).double()
    targets[:, 0], targets[:, 1] = 1.0, 0.0  # every gene has both sides
    loss_fn(logits, targets, 0.5).backward()
    gradient = logits.grad
    assert (gradient[targets > 0.5] < 0).all()  # descent moves positive logits up
    assert (gradient[targets <= 0.5] > 0).all()  # and negative logits down


@pytest.mark.parametrize("loss_fn", [multilabel_contrastive_loss, per_positive_infonce_loss, bce_loss])
@pytest.mark.parametrize("tau", [1.0, 0.05])
def test_finite_at_extreme_logits_and_one_sided_genes(loss_fn: LossFn, tau: float) -> None:
    logits = torch.tensor(
        [[1e4, -1e4, 1e4, -1e4], [1e4, 1e4, -1e4, -1e4], [3.0, -2.0, 1e4, -1e4]], requires_grad=True
    )
    targets = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    loss = loss_fn(logits, targets, tau)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(logits.grad).all()
    assert loss.item() > 1e3  # wrong-side logits of 1e4 are heavily penalised, not clipped to 0


def test_one_sided_genes_get_only_the_other_term() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5]], dtype=torch.float64)
    all_positive = multilabel_contrastive_loss(logits, torch.ones_like(logits), 1.0)
    all_negative = multilabel_contrastive_loss(logits, torch.zeros_like(logits), 1.0)
    assert all_positive.item() == pytest.approx(math.log(1 + math.exp(-2.0) + math.exp(1.0) + math.exp(-0.5)))
    assert all_negative.item() == pytest.approx(math.log(1 + math.exp(2.0) + math.exp(-1.0) + math.exp(0.5)))
    # With one side empty there are no (positive, negative) pairs: the pairwise loss is exactly 0.
    assert per_positive_infonce_loss(logits, torch.ones_like(logits)).item() == 0.0


def test_exclusivity_pushes_both_members_down_even_when_both_positive() -> None:
    logits = torch.tensor([[2.0, 3.0, -1.0, 0.5], [-4.0, 1.0, 0.0, 2.0]], dtype=torch.float64, requires_grad=True)
    pairs = torch.tensor([[0, 1], [2, 3]])
    loss = exclusivity_loss(logits, pairs)
    expected = sum(math.log1p(math.exp(row[i] + row[j])) for row in logits.tolist() for i, j in pairs.tolist()) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    loss.backward()
    assert (logits.grad > 0).all()  # every pair member, including the "both annotated" gene 0, goes down
    # Both members of a pair get the same push: d softplus(s_i + s_j) / d s_i = d / d s_j.
    assert logits.grad[0, 0].item() == pytest.approx(logits.grad[0, 1].item())


def test_exclusivity_without_pairs_is_zero_and_keeps_the_graph() -> None:
    logits = torch.randn(3, 5, requires_grad=True)
    loss = exclusivity_loss(logits, torch.zeros(0, 2, dtype=torch.long))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


@pytest.mark.parametrize("kind", ["contrastive", "infonce", "bce"])
def test_genepheno_loss_combines_the_terms_with_their_weights(kind: str) -> None:
    label_logits, label_targets = _random_case(8, genes=4, labels=6)
    concept_logits, concept_targets = _random_case(9, genes=4, labels=3)
    pairs = torch.tensor([[0, 2], [1, 5]])
    config = LossConfig(kind=kind, temperature=0.5, lambda_exclusive=0.2, lambda_concept=0.7)
    terms = genepheno_loss(label_logits, label_targets, concept_logits, concept_targets, pairs, config)
    by_kind = {"contrastive": multilabel_contrastive_loss, "infonce": per_positive_infonce_loss, "bce": bce_loss}
    expected_mlc = by_kind[kind](label_logits, label_targets, 0.5)
    expected_concept = by_kind[kind](concept_logits, concept_targets, 0.5)
    expected_exclusive = exclusivity_loss(label_logits, pairs)
    assert terms.mlc.item() == pytest.approx(expected_mlc.item(), rel=1e-12)
    assert terms.concept.item() == pytest.approx(expected_concept.item(), rel=1e-12)
    assert terms.exclusive.item() == pytest.approx(expected_exclusive.item(), rel=1e-12)
    expected_total = expected_mlc + 0.2 * expected_exclusive + 0.7 * expected_concept
    assert terms.total.item() == pytest.approx(expected_total.item(), rel=1e-12)


def test_genepheno_loss_without_concepts() -> None:
    label_logits, label_targets = _random_case(10)
    config = LossConfig()
    terms = genepheno_loss(label_logits, label_targets, None, None, torch.zeros(0, 2, dtype=torch.long), config)
    assert terms.concept.item() == 0.0
    assert terms.total.item() == pytest.approx(terms.mlc.item())
    with pytest.raises(ValueError, match="both be given"):
        genepheno_loss(label_logits, label_targets, label_logits, None, torch.zeros(0, 2, dtype=torch.long), config)
