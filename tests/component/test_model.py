"""GenePhenoModel on the tiny presets: exact trainable size, what one step changes, the checkpoint
contract (trainable_state_dict round trip), window pooling and the GO branch edge cases."""

from pathlib import Path

import numpy as np
import pytest
import torch

from gp_distributed.config import ModelConfig
from gp_distributed.data.collate import Batch, collate
from gp_distributed.data.stream import Example
from gp_distributed.data.tokenize import build_tokenizer, encode_windows
from gp_distributed.errors import InputError
from gp_distributed.model.genepheno import GenePhenoModel

N_GO, N_CONCEPTS, N_LABELS = 10, 5, 7


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer("protein")


def _config(**overrides) -> ModelConfig:
    tree = {"backbone_preset": "tiny-protein", "mlp_hidden_dim": 32, "lora": {"rank": 4, "alpha": 8.0}} | overrides
    return ModelConfig.model_validate(tree)


def _model(tokenizer, seed: int = 0, **overrides) -> GenePhenoModel:
    torch.manual_seed(seed)
    return GenePhenoModel(_config(**overrides), N_GO, N_CONCEPTS, N_LABELS, tokenizer)


def _batch(tokenizer, go_terms: tuple[list[int], ...] = ([1, 3], [], [0, 9, 4])) -> Batch:
    rng = np.random.default_rng(0)
    sequences = (b"MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", b"MKV", b"GSHMLEDPVAGKRSTW")
    examples = [
        Example(
            gene_index=index,
            windows=encode_windows(sequence, tokenizer, 12, "all", 4, rng),
            go_input=np.array(terms, dtype=np.int64),
            go_concepts=np.array([index % N_CONCEPTS]),
            labels=np.array([index, 6]),
        )
        for index, (sequence, terms) in enumerate(zip(sequences, go_terms))
    ]
    return collate(examples, tokenizer.pad_token_id, N_CONCEPTS, N_LABELS)


def test_trainable_parameter_count_is_exact(tokenizer) -> None:
    d, r, layers, hidden, g = 64, 4, 2, 32, N_GO
    lora = layers * 4 * (r * d + d * r)  # q, k, v, attention output: A (r x d) + B (d x r)
    go_branch = (
        (g + 1) * d + d  # term table with the padding row, null term
        + (3 * d * d + 3 * d) + (d * d + d) + (d * 2 * d + 2 * d) + (2 * d * d + d) + 4 * d  # 1 encoder layer
        + 2 * (4 * d * d + 4 * d)  # two cross-attentions
        + 2 * 2 * d  # their LayerNorms
    )  # fmt: skip
    pools = 2 * (d + 1)
    mlp = 2 * 4 * d + 4 * d * hidden + hidden  # LayerNorm over x (4d), Linear 4d -> hidden
    bottleneck, head = hidden * N_CONCEPTS + N_CONCEPTS, N_CONCEPTS * N_LABELS + N_LABELS
    model = _model(tokenizer)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert lora == 4096
    assert trainable == lora + go_branch + pools + mlp + bottleneck + head
    assert sum(t.numel() for t in model.trainable_state_dict().values()) == trainable


def test_one_step_changes_only_adapters_and_heads(tokenizer) -> None:
    model = _model(tokenizer)
    batch = _batch(tokenizer)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    output = model(batch)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(output.label_logits, batch.label_targets)
    loss = loss + torch.nn.functional.binary_cross_entropy_with_logits(output.concept_logits, batch.concept_targets)
    loss.backward()
    optimizer.step()
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    base = {name for name, _ in model.named_parameters() if name.startswith("backbone.") and ".lora_" not in name}
    assert base and not changed & base  # frozen weights bit-identical
    # B starts at zero, so A gets no gradient on the first step; every B and every head module moves.
    assert {name for name in before if ".lora_B." in name} <= changed
    for prefix in ("go_branch.", "sequence_pool.", "go_pool.", "mlp.", "bottleneck.", "head."):
        assert any(name.startswith(prefix) for name in changed), prefix


def test_trainable_state_round_trip_reproduces_logits(tokenizer, tmp_path: Path) -> None:
    trained = _model(tokenizer, seed=0)
    with torch.no_grad():  # move LoRA B off zero so the adapter matters
        for name, p in trained.named_parameters():
            if ".lora_B." in name:
                p.normal_(0.0, 0.1)
    path = tmp_path / "trainable.pt"
    torch.save(trained.trainable_state_dict(), path)

    fresh = _model(tokenizer, seed=1)  # other random heads and LoRA A; the preset base is seed-independent
    base = {k: v for k, v in trained.backbone.state_dict().items() if ".lora_" not in k}
    assert all(torch.equal(v, fresh.backbone.state_dict()[k]) for k, v in base.items())
    batch = _batch(tokenizer)
    trained.eval()
    fresh.eval()
    with torch.no_grad():
        assert not torch.equal(fresh(batch).label_logits, trained(batch).label_logits)
        fresh.load_trainable_state_dict(torch.load(path), source=str(path))
        expected, got = trained(batch), fresh(batch)
    assert torch.equal(got.label_logits, expected.label_logits)
    assert torch.equal(got.concept_logits, expected.concept_logits)
    assert torch.equal(fresh.association_matrix(), trained.association_matrix())
    assert fresh.association_matrix().shape == (N_CONCEPTS, N_LABELS)


def test_mismatched_trainable_state_is_an_input_error(tokenizer) -> None:
    state = _model(tokenizer).trainable_state_dict()
    other_rank = _model(tokenizer, lora={"rank": 2})
    with pytest.raises(InputError, match="ckpt.pt: LoRA weight .* has shape"):
        other_rank.load_trainable_state_dict(state, source="ckpt.pt")
    no_go = _model(tokenizer, go_branch={"enabled": False})
    with pytest.raises(InputError, match="ckpt.pt: "):
        no_go.load_trainable_state_dict(state, source="ckpt.pt")


def test_windows_of_a_gene_pool_to_one_row(tokenizer) -> None:
    model = _model(tokenizer).eval()
    batch = _batch(tokenizer)
    counts = torch.bincount(batch.window_gene_index).tolist()
    assert counts == [4, 1, 2]  # 33 residues in windows of 10 (12 with <cls>, <eos>), 3 residues, 16
    with torch.no_grad():
        output = model(batch)
        # Pooling is per gene and order-free: shuffling the windows changes nothing.
        order = torch.tensor([5, 3, 0, 6, 4, 2, 1])
        shuffled = Batch(
            **{**batch.__dict__, "input_ids": batch.input_ids[order], "attention_mask": batch.attention_mask[order],
               "window_gene_index": batch.window_gene_index[order]}
        )  # fmt: skip
        torch.testing.assert_close(model(shuffled).label_logits, output.label_logits, rtol=1e-5, atol=1e-6)
    assert output.label_logits.shape == (3, N_LABELS)
    assert output.concept_logits.shape == output.concept_activations.shape == (3, N_CONCEPTS)
    torch.testing.assert_close(output.concept_activations, torch.sigmoid(output.concept_logits))


def test_gene_without_go_terms_is_finite_in_both_passes(tokenizer) -> None:
    model = _model(tokenizer)
    batch = _batch(tokenizer, go_terms=([], [], []))  # no gene has a GO term: G = 1 padding slot
    assert not batch.go_mask.any()
    output = model(batch)
    assert torch.isfinite(output.label_logits).all()
    output.label_logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_go_ids_are_ignored_when_the_branch_is_off(tokenizer) -> None:
    model = _model(tokenizer, go_branch={"enabled": False}, pooling="mean").eval()
    assert not any(name.startswith(("go_branch.", "go_pool.", "sequence_pool.")) for name, _ in model.named_parameters())
    with torch.no_grad():
        with_go = model(_batch(tokenizer)).label_logits
        other_go = model(_batch(tokenizer, go_terms=([5], [6, 7], []))).label_logits
    assert torch.equal(with_go, other_go)


def test_free_bottleneck_units_feed_the_head_but_are_not_concepts(tokenizer) -> None:
    model = _model(tokenizer, free_concepts=6)
    free_bias = model.bottleneck.linear.bias[N_CONCEPTS:].detach().clone()
    model.set_output_priors(torch.full((N_LABELS,), 0.2), torch.full((N_CONCEPTS,), 0.3))
    output = model.eval()(_batch(tokenizer))
    assert output.concept_logits.shape == output.concept_activations.shape == (3, N_CONCEPTS)
    assert model.head.linear.weight.shape == (N_LABELS, N_CONCEPTS + 6)
    assert model.association_matrix().shape == (N_CONCEPTS, N_LABELS)  # explanations cover concepts only
    bias = model.bottleneck.linear.bias
    assert torch.allclose(bias[:N_CONCEPTS], torch.logit(torch.tensor(0.3)))
    assert torch.equal(bias[N_CONCEPTS:], free_bias)  # free units have no prior to start from


def test_go_input_dropout_acts_in_training_only_and_the_bag_reaches_the_mlp(tokenizer) -> None:
    model = _model(tokenizer, go_branch={"input_dropout": 0.5, "bag_dim": 24, "num_layers": 0})
    batch = _batch(tokenizer, go_terms=([1, 3, 5, 7, 9], [], [0, 9, 4]))
    assert model.mlp[1].in_features == 4 * model.hidden_size + 24
    model.eval()
    first, second = model(batch).label_logits, model(batch).label_logits
    assert torch.equal(first, second)  # no dropout of GO inputs at inference
    model.train()
    torch.manual_seed(1)
    dropped = [model(batch).label_logits for _ in range(3)]
    assert not torch.equal(dropped[0], dropped[1]) and torch.isfinite(torch.stack(dropped)).all()
