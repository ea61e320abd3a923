"""tools/plan_scaling.py: its parameter counts equal the modules the package builds (on the meta device),
its activation coefficients equal what autograd really keeps (saved-tensor hooks on a small bf16 Llama with
PEFT LoRA), its ZeRO and FLOP identities hold, and the command line prints both tables."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from transformers import LlamaConfig, LlamaModel

from gp_distributed.config import GoBranchConfig, LoraConfig, ModelConfig
from gp_distributed.data.store import write_store
from gp_distributed.data.tokenize import build_tokenizer
from gp_distributed.model.adapters import apply_lora
from gp_distributed.model.backbone import preset_config
from gp_distributed.model.genepheno import (
    AttentionPool,
    GenePhenoModel,
    pool_stream,
    windows_to_genes,
)
from gp_distributed.model.go_branch import GoBranch
from tests.unit.test_store import _content

TOOL = Path(__file__).resolve().parents[2] / "tools" / "plan_scaling.py"


@pytest.fixture(scope="module")
def plan_scaling() -> ModuleType:
    spec = importlib.util.spec_from_file_location("plan_scaling_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dna_tokenizer():
    return build_tokenizer("dna", 6)


def _with(tool: ModuleType, plan, **changes):
    """`plan` with `changes`, each applied to the plan or to its cluster assumptions, wherever the field is."""
    in_cluster = {field.name for field in dataclasses.fields(tool.Cluster)}
    cluster = dataclasses.replace(plan.cluster, **{k: v for k, v in changes.items() if k in in_cluster})
    return dataclasses.replace(plan, cluster=cluster, **{k: v for k, v in changes.items() if k not in in_cluster})


def _plan(tool: ModuleType, **changes):
    """The tool's default plan (generator-1.2b, first window, ZeRO-2, no checkpointing) with `changes`."""
    (plan, *_) = tool.plans_from_args(tool.build_parser().parse_args([]))
    return _with(tool, plan, **changes)


def _llama_config(shape, vocab: int | None = None) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab or shape.vocab, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers, num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads,
        max_position_embeddings=shape.max_context_tokens, tie_word_embeddings=False, attn_implementation="sdpa",
    )  # fmt: skip


def _target_regex(names: tuple[str, ...]) -> str:
    return r"layers\.\d+\.(self_attn|mlp)\.(" + "|".join(names) + ")"


def test_generator_1_2b_shape_and_count_equal_the_preset(plan_scaling: ModuleType, dna_tokenizer) -> None:
    config = preset_config("generator-1.2b", dna_tokenizer)
    shape = dataclasses.replace(plan_scaling.PRESETS["generator-1.2b"], vocab=len(dna_tokenizer))
    assert (shape.layers, shape.hidden, shape.intermediate, shape.heads, shape.kv_heads, shape.max_context_tokens) == (
        config.num_hidden_layers, config.hidden_size, config.intermediate_size, config.num_attention_heads,
        config.num_key_value_heads, config.max_position_embeddings,
    )  # fmt: skip
    with torch.device("meta"):
        model = LlamaModel(config)
    assert plan_scaling.backbone_params(shape) == sum(p.numel() for p in model.parameters()) == 1_153_564_672


def test_generator_3b_count_equals_the_published_checkpoint(plan_scaling: ModuleType) -> None:
    shape = plan_scaling.PRESETS["generator-3b"]
    with torch.device("meta"):
        model = LlamaModel(_llama_config(shape))
    assert plan_scaling.backbone_params(shape) == sum(p.numel() for p in model.parameters())
    # GenerTeam/GENERator-eukaryote-3b-base stores 11,993,051,136 bytes of fp32 tensors: decoder + LM head.
    assert plan_scaling.backbone_params(shape) + shape.vocab * shape.hidden == 11_993_051_136 // 4


@pytest.mark.parametrize("targets", ["attention", "all-linear"])
def test_trainable_count_equals_the_genepheno_model(plan_scaling: ModuleType, dna_tokenizer, targets: str) -> None:
    names = plan_scaling.TARGET_ALIASES[targets]
    model_config = ModelConfig(backbone_preset="generator-1.2b", go_branch=GoBranchConfig(num_heads=16),
                               lora=LoraConfig(rank=16, target_modules=_target_regex(names)))
    heads = plan_scaling.HeadShape(go_vocab=12714, concepts=302, labels=4438)
    with torch.device("meta"):
        model = GenePhenoModel(model_config, heads.go_vocab, heads.concepts, heads.labels, dna_tokenizer)
    shape = dataclasses.replace(plan_scaling.PRESETS["generator-1.2b"], vocab=len(dna_tokenizer))
    plan = _plan(plan_scaling, shape=shape, heads=heads, lora_rank=16, lora_targets=names)
    lora = sum(p.numel() for name, p in model.backbone.named_parameters() if "lora_" in name)
    assert plan_scaling.lora_params(shape, 16, names) == lora
    assert plan_scaling.trainable_params(plan) == sum(p.numel() for p in model.parameters() if p.requires_grad)


def _saved_bytes_per_layer_token(shape, tokens: int, rank: int, names: tuple[str, ...], dropout: float,
                                 checkpointing: bool) -> float:
    """Bytes of non-parameter tensors autograd saves, per token per layer: (3 layers - 1 layer) / 2, so the
    first layer's partial graph (nothing upstream needs its input gradient) cancels out."""

    def saved(layers: int) -> int:
        torch.manual_seed(0)
        model = LlamaModel(_llama_config(dataclasses.replace(shape, layers=layers)))
        model.config.use_cache = False
        model = apply_lora(model, LoraConfig(rank=rank, dropout=dropout, target_modules=_target_regex(names)), "llama")
        model = model.to(torch.bfloat16).train()
        if checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        weights = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
        storages: dict[int, int] = {}

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in weights:
                storages[storage.data_ptr()] = storage.nbytes()
            return tensor

        ids = torch.randint(0, shape.vocab, (1, tokens))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
        return sum(storages.values())

    return (saved(3) - saved(1)) / 2 / tokens


# The project's two target sets are fitted closely; an odd subset shares inputs differently (within 2 %).
@pytest.mark.parametrize(("targets", "dropout", "tolerance"), [
    ("attention", 0.05, 0.005), ("attention", 0.0, 0.005), ("all-linear", 0.05, 0.005), ("all-linear", 0.0, 0.005),
    (("o_proj", "down_proj"), 0.0, 0.03),
])  # fmt: skip
def test_activation_coefficients_equal_what_autograd_keeps(plan_scaling: ModuleType, targets, dropout: float,
                                                           tolerance: float) -> None:
    # A shape unlike the one the coefficients were fitted on: d 192, FFN 512, 3 heads of 64, 1 KV head.
    shape = plan_scaling.LlamaShape(layers=1, hidden=192, intermediate=512, heads=3, kv_heads=1, vocab=64,
                                    max_context_tokens=4096)
    names = plan_scaling.TARGET_ALIASES.get(targets, targets)
    measured = _saved_bytes_per_layer_token(shape, 64, 4, names, dropout, checkpointing=False)
    modelled = plan_scaling.layer_activation_bytes_per_token(shape, 4, names, dropout > 0)
    assert modelled == pytest.approx(measured, rel=tolerance)


def test_checkpointing_keeps_each_layer_input_only(plan_scaling: ModuleType) -> None:
    shape = plan_scaling.LlamaShape(layers=1, hidden=192, intermediate=512, heads=3, kv_heads=1, vocab=64,
                                    max_context_tokens=4096)
    names = plan_scaling.ATTENTION_PROJECTIONS
    assert _saved_bytes_per_layer_token(shape, 64, 4, names, 0.05, checkpointing=True) == 2 * shape.hidden


def test_head_activation_coefficient_equals_what_autograd_keeps(plan_scaling: ModuleType) -> None:
    """The GO branch, both pools and the MLP, run as GenePhenoModel.forward runs them, on bf16 token states."""
    d, n_windows, tokens = 192, 2, 128
    heads = plan_scaling.HeadShape(go_vocab=50, go_layers=1, go_heads=4, go_terms=16, mlp_hidden=32)

    def saved(n_tokens: int) -> int:
        torch.manual_seed(0)
        branch = GoBranch(heads.go_vocab, d, GoBranchConfig(num_layers=heads.go_layers, num_heads=heads.go_heads), 0.1)
        pools = [AttentionPool(d), AttentionPool(d)]
        mlp = torch.nn.Sequential(torch.nn.LayerNorm(4 * d), torch.nn.Linear(4 * d, heads.mlp_hidden), torch.nn.GELU())
        modules = [m.to(torch.bfloat16).train() for m in (branch, *pools, mlp)]
        states = torch.randn(n_windows, n_tokens, d, dtype=torch.bfloat16, requires_grad=True)
        skip = {t.untyped_storage().data_ptr() for m in modules for t in m.parameters()} | {states.data_ptr()}
        storages: dict[int, int] = {}

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            if tensor.untyped_storage().data_ptr() not in skip:
                storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
            return tensor

        mask, genes = torch.ones(n_windows, n_tokens, dtype=torch.bool), torch.arange(n_windows)
        go_ids = torch.randint(1, heads.go_vocab + 1, (n_windows, heads.go_terms))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            fused, go_states, go_valid, _ = branch(states, mask, genes, go_ids, torch.ones_like(go_ids, dtype=torch.bool))
            sequence = [windows_to_genes(v, genes, n_windows) for v in pool_stream(fused, mask, pools[0])]
            mlp(torch.cat([*sequence, *pool_stream(go_states, go_valid, pools[1])], dim=-1))
        return sum(storages.values())

    measured = (saved(2 * tokens) - saved(tokens)) / (n_windows * tokens)
    assert plan_scaling.head_activation_bytes_per_token(d, heads) == pytest.approx(measured, rel=0.02)


def test_zero3_partitions_what_zero2_replicates(plan_scaling: ModuleType) -> None:
    tool = plan_scaling
    zero2 = _plan(tool, zero_stage=2, gpus_per_node=8, nodes=2)
    zero3 = _with(tool, zero2, zero_stage=3)
    frozen, trainable, n = tool.backbone_params(zero2.shape), tool.trainable_params(zero2), 16
    m2, m3 = tool.memory(zero2), tool.memory(zero3)
    assert (m2.frozen_weights, m3.frozen_weights) == (2 * frozen, 2 * frozen / n)
    assert (m2.trainable_states, m3.trainable_states) == (2 * trainable + 14 * trainable / n, 16 * trainable / n)
    assert m2.activations == m3.activations > 0
    assert m3.total < m2.total
    # On one GPU ZeRO-3 partitions nothing: it only adds the two gathered layers it keeps in flight.
    one2, one3 = (tool.memory(_with(tool, p, gpus_per_node=1, nodes=1)) for p in (zero2, zero3))
    shape = zero2.shape
    layer = tool.layer_matmul_params(shape) + tool.lora_params(shape, zero2.lora_rank, zero2.targets) / shape.layers
    assert one3.total - one2.total == pytest.approx(2 * 2 * layer)


def test_zero_communication_per_micro_step(plan_scaling: ModuleType) -> None:
    tool = plan_scaling
    zero2 = _plan(tool, zero_stage=2, gpus_per_node=8, nodes=2, inter_node_gbs=40.0)
    zero3 = _with(tool, zero2, zero_stage=3)
    frozen, trainable, ring = tool.backbone_params(zero2.shape), tool.trainable_params(zero2), 15 / 16
    # ZeRO-2: reduce-scatter bf16 gradients + all-gather bf16 weights of the trainable part only.
    assert tool.comm_bytes_per_micro_step(zero2) == pytest.approx(4 * trainable * ring)
    # ZeRO-3: the same gradients, plus every weight gathered for the forward and again for the backward.
    assert tool.comm_bytes_per_micro_step(zero3) == pytest.approx((2 * trainable + 4 * (frozen + trainable)) * ring)
    assert tool.comm_seconds_per_micro_step(zero3) == pytest.approx(tool.comm_bytes_per_micro_step(zero3) / 40e9)
    assert tool.comm_bytes_per_micro_step(_with(tool, zero3, gpus_per_node=1, nodes=1)) == 0


def test_flops_scale_linearly_in_tokens_outside_attention(plan_scaling: ModuleType) -> None:
    tool = plan_scaling
    shape, names = tool.PRESETS["generator-1.2b"], tool.ATTENTION_PROJECTIONS
    linear, attention, lora = tool.backbone_forward_flops(shape, 1024, 16, names, causal_skip=False)
    linear2, attention2, lora2 = tool.backbone_forward_flops(shape, 2048, 16, names, causal_skip=False)
    assert (linear2, lora2, attention2) == (2 * linear, 2 * lora, 4 * attention)
    assert linear == 2 * 1024 * 26 * (2 * 2048**2 + 2 * 2048 * 256 + 3 * 2048 * 5632)
    assert attention == 4 * 26 * 1024**2 * 2048
    assert tool.backbone_forward_flops(shape, 1024, 16, names, causal_skip=True)[1] == attention / 2
    # Whole step: f(T) = a T + b T^2, so the second difference grows 4x when T doubles.
    totals = [tool.flops_per_sample(_plan(tool, window_bp=6 * t)).total for t in (1024, 2048, 4096)]
    assert totals[2] - 2 * totals[1] == pytest.approx(4 * (totals[1] - 2 * totals[0]))
    # Checkpointing adds exactly one backbone forward.
    plan = _plan(tool, window_bp=6144)
    on, off = (tool.flops_per_sample(_with(tool, plan, checkpointing=c)) for c in (True, False))
    assert on.total - off.total == pytest.approx(linear + attention + lora)


def test_cli_prints_one_row_per_combination(plan_scaling: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    plan_scaling.main(["--model", "generator-1.2b,generator-3b", "--window-bp", "6144,98304", "--lora-rank", "8,64",
                       "--zero-stage", "2,3", "--checkpointing", "on"])
    out = capsys.readouterr().out
    assert "Memory per GPU" in out and "Throughput per GPU and the stream" in out
    rows = [line for line in out.splitlines() if line.startswith("| generator")]
    assert len(rows) == 2 * (2 * 2 * 2 * 2)
    assert sum("| 98,304 / 16,384 | 64 attention | 3 | on | 1x8 |" in row for row in rows) == 4


def test_cli_rejects_a_window_beyond_the_context(plan_scaling: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        plan_scaling.main(["--window-bp", "120000"])
    assert "20000 tokens, outside 1..16384" in capsys.readouterr().err


def test_store_flag_reads_head_sizes(plan_scaling: ModuleType, tmp_path: Path) -> None:
    write_store(_content(), tmp_path / "s.zarr", residues_per_chunk=64, chunks_per_shard=2)
    args = plan_scaling.build_parser().parse_args(["--store", str(tmp_path / "s.zarr")])
    heads = plan_scaling.plans_from_args(args)[0].heads
    assert (heads.go_vocab, heads.concepts, heads.labels) == (2, 2, 5)
