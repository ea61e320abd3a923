"""Cluster planning on paper: memory per GPU, FLOPs and samples/s per GPU for LoRA fine-tuning of a
Llama-shaped genomic LM (GENERator 1.2B / 3B) with the GenePheno heads under DeepSpeed ZeRO-2 or ZeRO-3,
and whether the data stream keeps up. Pure arithmetic (stdlib only; `--store` reads head sizes from a
gene store through the package). Every number is a model, not a measurement; the assumptions are the
flags, and docs/scaling.md states where each default comes from.

Usage (from the repository root; list-valued flags are swept, one row per combination):
    .venv/bin/python tools/plan_scaling.py --model generator-1.2b,generator-3b --window-bp 6144,98304 \
        --lora-rank 16 --zero-stage 2,3 --checkpointing off,on [--mfu 0.35,0.45] [--nodes 1]

Model (T = window_bp / kmer tokens, one window per gene, N = GPUs in the data-parallel world, bf16,
AdamW; the functions below state their terms): parameters from the Llama shape and GenePheno's heads;
memory = frozen weights + trainable states (16 B/param, partitioned per ZeRO stage) + DeepSpeed's reduce
bucket + ZeRO-3's gathered layers + activations (per-token coefficients measured with saved-tensor hooks,
no T^2 term) + the padded-batch attention mask + a workspace allowance; FLOPs per window = forward +
input-gradient backward (the base is frozen) + one recompute forward with activation checkpointing;
windows/s/GPU = peak x utilisation / FLOPs; stream windows/s/core = measured residues per CPU-second /
bp tokenised per window. "Serial" is today's loop, where one core fetches each micro-batch while the GPU
waits: 1 / (1/GPU rate + 1/per-core rate). docs/scaling.md gives the sources of every default.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

GIB = 2**30
ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_PROJECTIONS = ("gate_proj", "up_proj", "down_proj")
TARGET_ALIASES = {"attention": ATTENTION_PROJECTIONS, "all-linear": ATTENTION_PROJECTIONS + MLP_PROJECTIONS}


@dataclass(frozen=True)
class LlamaShape:
    layers: int
    hidden: int  # d
    intermediate: int  # f, SwiGLU width
    heads: int
    kv_heads: int
    vocab: int
    max_context_tokens: int

    @property
    def kv_dim(self) -> int:
        """Width of the key (and of the value) projection: kv_heads * head_dim."""
        return self.kv_heads * (self.hidden // self.heads)


# generator-1.2b: the project's preset (model/backbone.py) with GENERator's own vocabulary (4,128 tokens;
# the preset takes the project tokenizer's 4,107). generator-3b: GenerTeam/GENERator-eukaryote-3b-base
# config.json (30 layers, d 3072, FFN 8448, 32 heads, 4 KV heads, vocab 4128, 16384 positions).
PRESETS: dict[str, LlamaShape] = {
    "generator-1.2b": LlamaShape(26, 2048, 5632, 32, 4, 4128, 16384),
    "generator-3b": LlamaShape(30, 3072, 8448, 32, 4, 4128, 16384),
}


@dataclass(frozen=True)
class HeadShape:
    """GenePheno's non-backbone modules; defaults: the real HPO store and configs/generator-1.2b-lora.yaml."""

    go_vocab: int = 12714
    go_layers: int = 1
    go_heads: int = 16
    go_terms: int = 64  # data.max_go_terms: GO slots per gene (+1 null slot)
    mlp_hidden: int = 256
    concepts: int = 302
    labels: int = 4438


@dataclass(frozen=True)
class Cluster:
    """The unswept assumptions; field names are the flags' (units in `build_parser`'s help)."""

    kmer: int
    lora_targets: tuple[str, ...]
    lora_dropout: float
    micro_batch: int  # windows (= genes) per GPU per forward
    gpus_per_node: int
    peak_tflops: float
    mfu: tuple[float, ...]
    hbm_gib: float
    workspace_gib: float
    reduce_bucket: float
    causal_skip: bool
    intra_node_gbs: float
    inter_node_gbs: float
    stream_bp_per_core_s: float
    gene_bp: int | None
    cores_per_gpu: float


@dataclass(frozen=True)
class Plan:
    """One row: a model shape and one value of every swept flag."""

    model: str
    shape: LlamaShape
    heads: HeadShape
    window_bp: int
    lora_rank: int
    zero_stage: int  # 2 or 3
    checkpointing: bool
    nodes: int
    cluster: Cluster

    @property
    def tokens(self) -> int:
        return self.window_bp // self.cluster.kmer

    @property
    def world_size(self) -> int:
        return self.cluster.gpus_per_node * self.nodes

    @property
    def targets(self) -> tuple[str, ...]:
        return self.cluster.lora_targets


def layer_matmul_params(shape: LlamaShape) -> int:
    """Weights of one decoder layer's seven projections (no norms)."""
    d, f, kv = shape.hidden, shape.intermediate, shape.kv_dim
    return 2 * d * d + 2 * d * kv + 3 * d * f


def backbone_params(shape: LlamaShape) -> int:
    """Bare decoder (embedding, layers, final norm; no LM head), as LlamaModel builds it."""
    return shape.vocab * shape.hidden + shape.layers * (layer_matmul_params(shape) + 2 * shape.hidden) + shape.hidden


def projection_dims(shape: LlamaShape) -> dict[str, tuple[int, int]]:
    """(in, out) features of each projection of a decoder layer."""
    d, f, kv = shape.hidden, shape.intermediate, shape.kv_dim
    return {"q_proj": (d, d), "k_proj": (d, kv), "v_proj": (d, kv), "o_proj": (d, d),
            "gate_proj": (d, f), "up_proj": (d, f), "down_proj": (f, d)}


def lora_params(shape: LlamaShape, rank: int, targets: Sequence[str]) -> int:
    """LoRA A (r x in) and B (out x r) of every targeted projection in every layer."""
    dims = projection_dims(shape)
    return shape.layers * sum(rank * sum(dims[name]) for name in targets)


def head_params(hidden: int, heads: HeadShape) -> int:
    """Trainable parameters outside the backbone, as model/genepheno.py builds them (GO branch on,
    attention+mean pooling): GO table + null term, pre-norm encoder layers (FFN 2d), two cross-attentions,
    two LayerNorms, two attention pools, LayerNorm + Linear(4d, mlp), bottleneck, phenotype head."""
    d = hidden
    go_branch = (heads.go_vocab + 1) * d + d + heads.go_layers * (8 * d * d + 11 * d) + 2 * (4 * d * d + 4 * d) + 4 * d
    pools = 2 * (d + 1)
    mlp = 2 * 4 * d + 4 * d * heads.mlp_hidden + heads.mlp_hidden
    return go_branch + pools + mlp + (heads.mlp_hidden + 1) * heads.concepts + (heads.concepts + 1) * heads.labels


def trainable_params(plan: Plan) -> int:
    """LoRA adapters + GenePheno heads: everything the optimizer updates."""
    return lora_params(plan.shape, plan.lora_rank, plan.targets) + head_params(plan.shape.hidden, plan.heads)


def layer_activation_bytes_per_token(shape: LlamaShape, rank: int, targets: Sequence[str], dropout: bool) -> float:
    """Bytes autograd keeps per token per decoder layer (bf16, LoRA on `targets`, base frozen).

    Coefficients measured with torch.autograd.graph.saved_tensors_hooks on transformers 5.24 LlamaModel +
    PEFT 0.21 (tests/unit/test_plan_scaling.py re-measures them): the frozen layer keeps 12d + 6f + 4 d_kv
    + 4 h (RMSNorm inputs, rotated q/k, v, attention output, fp32 log-sum-exp per head, SwiGLU's gate, up
    and silu(gate)); each adapter adds its rank-r bf16 hidden (2r); without dropout the adapters also keep
    the inputs nothing else keeps (the normed attention input, the normed MLP input, the down-projection
    input); with dropout each adapter keeps its own masked input and mask instead (4 bytes per input feature).
    """
    d, f, h = shape.hidden, shape.intermediate, shape.heads
    dims = projection_dims(shape)
    frozen = 12 * d + 6 * f + 4 * shape.kv_dim + 4 * h
    adapters = 2 * rank * len(targets)
    if dropout:
        return frozen + adapters + sum(4 * dims[name][0] for name in targets)
    kept_inputs = 2 * d * any(t in targets for t in ("q_proj", "k_proj", "v_proj"))
    kept_inputs += 2 * d * any(t in targets for t in ("gate_proj", "up_proj")) + 2 * f * ("down_proj" in targets)
    return frozen + adapters + kept_inputs


def head_activation_bytes_per_token(hidden: int, heads: HeadShape) -> float:
    """GO branch + pools per sequence token, measured the same way: 22 d, plus 24 B per attention score of
    the two cross-attentions (heads x (G+1) per token) where SDPA falls back to its math path (dropout
    with a padding mask, as on CPU); a fused GPU kernel would not keep the second term."""
    return 22 * hidden + 24 * heads.go_heads * (heads.go_terms + 1)


@dataclass(frozen=True)
class Memory:
    """Bytes per GPU at the plan's micro-batch."""

    frozen_weights: float
    trainable_states: float
    buffers: float  # reduce bucket + ZeRO-3 gathered layers + workspace allowance
    activations: float
    per_sample: float  # activation bytes of one more window
    capacity: float

    @property
    def total(self) -> float:
        return self.frozen_weights + self.trainable_states + self.buffers + self.activations

    @property
    def max_micro_batch(self) -> int:
        fixed = self.total - self.activations
        return max(int((self.capacity - fixed) // self.per_sample), 0)


def memory(plan: Plan) -> Memory:
    """Bytes per GPU by component (terms in the module docstring); activations at the plan's micro-batch."""
    shape, n, t, cluster = plan.shape, plan.world_size, plan.tokens, plan.cluster
    frozen = 2.0 * backbone_params(shape)
    trainable = trainable_params(plan)
    gathered = 0.0
    if plan.zero_stage == 3:
        frozen /= n
        states = 16.0 * trainable / n
        # the layer being computed and the one prefetched, gathered whole (bf16, adapters included)
        gathered = 4.0 * (layer_matmul_params(shape) + lora_params(shape, plan.lora_rank, plan.targets) / shape.layers)
    else:
        states = 2.0 * trainable + 14.0 * trainable / n
    buffers = 2.0 * cluster.reduce_bucket + gathered + cluster.workspace_gib * GIB
    layer = layer_activation_bytes_per_token(shape, plan.lora_rank, plan.targets, cluster.lora_dropout > 0) * t
    if plan.checkpointing:
        backbone = shape.layers * 2 * shape.hidden * t + 2 * layer  # inputs kept; one layer recomputed + its backward
    else:
        backbone = (shape.layers + 1) * layer  # every layer + one layer of backward working set
    per_sample = backbone + head_activation_bytes_per_token(shape.hidden, plan.heads) * t + t * t  # + bool mask
    return Memory(frozen, states, buffers, per_sample * cluster.micro_batch, per_sample, cluster.hbm_gib * GIB)


@dataclass(frozen=True)
class Flops:
    """FLOPs per sample (one window) by phase."""

    forward: float
    backward: float
    recompute: float

    @property
    def total(self) -> float:
        return self.forward + self.backward + self.recompute


def backbone_forward_flops(shape: LlamaShape, tokens: int, rank: int, targets: Sequence[str],
                           causal_skip: bool) -> tuple[float, float, float]:
    """(projections, attention, LoRA) forward FLOPs of the backbone for one window of `tokens`."""
    linear = 2.0 * tokens * shape.layers * layer_matmul_params(shape)
    attention = 4.0 * shape.layers * tokens * tokens * shape.hidden * (0.5 if causal_skip else 1.0)
    lora = 2.0 * tokens * lora_params(shape, rank, targets)
    return linear, attention, lora


def flops_per_sample(plan: Plan) -> Flops:
    """One window's training FLOPs: forward, input-gradient backward (frozen base), checkpoint recompute."""
    shape, t = plan.shape, plan.tokens
    linear, attention, lora = backbone_forward_flops(shape, t, plan.lora_rank, plan.targets, plan.cluster.causal_skip)
    d, slots = shape.hidden, plan.heads.go_terms + 1
    heads = 8.0 * t * d * d + 8.0 * t * slots * d
    forward = linear + attention + lora + heads
    backward = linear + 2.5 * attention + 2 * lora + 2 * heads
    recompute = linear + attention + lora if plan.checkpointing else 0.0
    return Flops(forward, backward, recompute)


def comm_bytes_per_micro_step(plan: Plan) -> float:
    """Bytes each GPU moves per micro-step in ring collectives (grad_accum 1): ZeRO-2 reduce-scatters the
    trainable gradients and all-gathers the updated trainable weights; ZeRO-3 also all-gathers every weight
    for the forward and again for the backward."""
    n = plan.world_size
    ring = (n - 1) / n
    trainable = trainable_params(plan)
    moved = 2.0 * trainable * 2
    if plan.zero_stage == 3:
        moved = 2.0 * trainable + 2 * 2.0 * (backbone_params(plan.shape) + trainable)
    return moved * ring


def comm_seconds_per_micro_step(plan: Plan) -> float:
    bandwidth = plan.cluster.intra_node_gbs if plan.nodes == 1 else plan.cluster.inter_node_gbs
    return comm_bytes_per_micro_step(plan) / (bandwidth * 1e9)


def gpu_samples_per_second(plan: Plan, mfu: float) -> float:
    """Windows per second per GPU at utilisation `mfu` of peak (compute-bound)."""
    return plan.cluster.peak_tflops * 1e12 * mfu / flops_per_sample(plan).total


def stream_samples_per_core_second(plan: Plan) -> float:
    """Windows one CPU core of the stream delivers per second (cost linear in the bp it tokenises)."""
    return plan.cluster.stream_bp_per_core_s / (plan.cluster.gene_bp or plan.window_bp)


def _gib(value: float) -> str:
    return f"{value / GIB:.1f}"


_KEY_HEADER = ["model", "window bp / tokens", "LoRA r, targets", "ZeRO", "act. ckpt", "nodes x GPUs"]


def _key(plan: Plan) -> list[str]:
    targets = next((alias for alias, names in TARGET_ALIASES.items() if names == plan.targets), ",".join(plan.targets))
    return [plan.model, f"{plan.window_bp:,} / {plan.tokens:,}", f"{plan.lora_rank} {targets}", str(plan.zero_stage),
            "on" if plan.checkpointing else "off", f"{plan.nodes}x{plan.cluster.gpus_per_node}"]


def _table(header: list[str], rows: list[list[str]]) -> str:
    rule = ["---"] * len(_KEY_HEADER) + ["---:"] * (len(header) - len(_KEY_HEADER))  # numbers right-aligned
    return "\n".join("| " + " | ".join(cells) + " |" for cells in [header, rule, *rows])


def memory_table(plans: Sequence[Plan]) -> str:
    header = [*_KEY_HEADER, "trainable M params", "frozen weights GiB", "trainable states GiB", "buffers GiB",
              "activations GiB (per window)", "total GiB", "fits", "max micro-batch"]
    rows = []
    for plan in plans:
        mem = memory(plan)
        rows.append([*_key(plan), f"{trainable_params(plan) / 1e6:.1f}", _gib(mem.frozen_weights),
                     _gib(mem.trainable_states), _gib(mem.buffers),
                     f"{_gib(mem.activations)} ({_gib(mem.per_sample)})", _gib(mem.total),
                     "yes" if mem.total <= mem.capacity else "**no**", str(mem.max_micro_batch)])
    return _table(header, rows)


def throughput_table(plans: Sequence[Plan]) -> str:
    mfus = plans[0].cluster.mfu
    header = [*_KEY_HEADER, "TFLOP / window", *(f"windows/s/GPU @ {m:.0%}" for m in mfus),
              f"compute ms / micro-step @ {mfus[0]:.0%}", "ZeRO comm ms / micro-step", "stream windows/s/core",
              "cores/GPU needed", "stream keeps up", "serial 1-core loop windows/s"]
    rows = []
    for plan in plans:
        rates = [gpu_samples_per_second(plan, m) for m in mfus]
        per_core = stream_samples_per_core_second(plan)
        fastest = max(rates)
        needed = fastest / per_core
        # one core stays with the training process itself
        keeps_up = needed <= plan.cluster.cores_per_gpu - 1
        serial = 1.0 / (1.0 / fastest + 1.0 / per_core)
        rows.append([*_key(plan), f"{flops_per_sample(plan).total / 1e12:.2f}", *(f"{r:.2f}" for r in rates),
                     f"{plan.cluster.micro_batch / rates[0] * 1e3:.0f}", f"{comm_seconds_per_micro_step(plan) * 1e3:.0f}",
                     f"{per_core:.1f}", f"{needed:.2f}", "yes" if keeps_up else "**no**", f"{serial:.2f}"])
    return _table(header, rows)


def _list(convert: Callable[[str], object]) -> Callable[[str], list]:
    def parse(text: str) -> list:
        values = []
        for item in filter(None, text.split(",")):
            try:
                values.append(convert(item))
            except (KeyError, ValueError):
                raise argparse.ArgumentTypeError(f"cannot read {item!r} in {text!r}") from None
        return values
    return parse


def _targets(text: str) -> tuple[str, ...]:
    if text in TARGET_ALIASES:
        return TARGET_ALIASES[text]
    names = tuple(text.split(","))
    unknown = sorted(set(names) - set(ATTENTION_PROJECTIONS + MLP_PROJECTIONS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown projections {unknown}; use attention, all-linear or q_proj,...")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--model", type=_list(str), default=["generator-1.2b"], help=f"presets: {', '.join(PRESETS)}")
    for name in ("layers", "hidden", "intermediate", "heads", "kv-heads", "vocab", "max-context-tokens"):
        add(f"--{name}", type=int, help="override this field of every --model shape (rows marked *)")
    add("--window-bp", type=_list(int), default=[6144, 24576, 98304], help="window length(s) in bp")
    add("--kmer", type=int, default=6, help="bp per token (GENERator: non-overlapping 6-mers)")
    add("--lora-rank", type=_list(int), default=[16])
    add("--lora-targets", type=_targets, default=ATTENTION_PROJECTIONS,
        help="attention (the project default), all-linear, or a comma list of projections")
    add("--lora-dropout", type=float, default=0.05)
    add("--zero-stage", type=_list(int), default=[2, 3])
    add("--checkpointing", type=_list({"on": True, "off": False}.__getitem__), default=[False, True], help="activation checkpointing: on,off")
    add("--micro-batch", type=int, default=1, help="windows per GPU per forward")
    add("--gpus-per-node", type=int, default=8)
    add("--nodes", type=_list(int), default=[1])
    add("--peak-tflops", type=float, default=989.0, help="per GPU, dense bf16 (H100 SXM)")
    add("--mfu", type=_list(float), default=[0.35, 0.45], help="fraction(s) of peak achieved")
    add("--hbm-gib", type=float, default=79.6, help="GPU memory (H100 SXM 80 GB as nvidia-smi reports it)")
    add("--workspace-gib", type=float, default=4.0, help="CUDA context, cuBLAS/NCCL, fragmentation")
    add("--reduce-bucket", type=float, default=5e8, help="DeepSpeed reduce_bucket_size (elements)")
    add("--causal-skip", action="store_true", help="attention skips the causal upper triangle (halves its FLOPs)")
    add("--intra-node-gbs", type=float, default=360.0, help="NVLink collective bus bandwidth, GB/s")
    add("--inter-node-gbs", type=float, default=40.0, help="per-GPU network collective bus bandwidth, GB/s")
    add("--stream-bp-per-core-s", type=float, default=3.0e6, help="measured stream rate, residues per CPU-s")
    add("--gene-bp", type=int, help="bp the stream tokenises per sample (whole genes); default one window")
    add("--cores-per-gpu", type=float, default=12.0, help="CPU cores per GPU (e.g. 96 cores / 8 GPUs)")
    add("--store", help="read GO vocabulary, concept and label counts from this gene store")
    for name, default in dataclasses.asdict(HeadShape()).items():
        add(f"--{name.replace('_', '-')}", type=int, default=default, help="GenePheno head size")
    return parser


def plans_from_args(args: argparse.Namespace) -> list[Plan]:
    """Every combination of the swept flags, in flag order (model, window, rank, ZeRO, checkpointing, nodes)."""
    parser = build_parser()
    heads = HeadShape(**{name: getattr(args, name) for name in dataclasses.asdict(HeadShape())})
    if args.store:
        from gp_distributed.data.store import (
            open_store,  # the package's only way into a store
        )

        store = open_store(args.store)
        heads = dataclasses.replace(heads, go_vocab=len(store.go_input_ids), concepts=len(store.concept_ids),
                                    labels=len(store.label_ids))
    overrides = {field: getattr(args, field) for field in
                 ("layers", "hidden", "intermediate", "heads", "kv_heads", "vocab", "max_context_tokens")
                 if getattr(args, field) is not None}
    values = {field.name: getattr(args, field.name) for field in dataclasses.fields(Cluster)}
    cluster = Cluster(**{**values, "mfu": tuple(args.mfu)})
    plans = []
    for model, window, rank, stage, ckpt, nodes in itertools.product(
        args.model, args.window_bp, args.lora_rank, args.zero_stage, args.checkpointing, args.nodes
    ):
        if model not in PRESETS:
            parser.error(f"--model {model}: unknown preset (choose from {', '.join(PRESETS)})")
        shape = dataclasses.replace(PRESETS[model], **overrides)
        if shape.hidden % shape.heads or shape.heads % shape.kv_heads:
            parser.error(f"{model}: heads must divide hidden and kv-heads must divide heads")
        if stage not in (2, 3):
            parser.error(f"--zero-stage {stage}: only 2 and 3 are modelled")
        if not 0 < window // args.kmer <= shape.max_context_tokens:
            parser.error(f"--window-bp {window}: {window // args.kmer} tokens, outside 1..{shape.max_context_tokens}")
        label = model + ("*" if overrides else "")
        plans.append(Plan(label, shape, heads, window, rank, stage, ckpt, nodes, cluster))
    return plans


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    plans = plans_from_args(args)
    print("Assumptions:", ", ".join(f"{key}={value}" for key, value in dataclasses.asdict(plans[0].cluster).items()))
    print("Heads:", ", ".join(f"{key}={value}" for key, value in dataclasses.asdict(plans[0].heads).items()))
    print()
    print("Memory per GPU\n")
    print(memory_table(plans))
    print("\nThroughput per GPU and the stream\n")
    print(throughput_table(plans))
    return 0


if __name__ == "__main__":
    sys.exit(main())
