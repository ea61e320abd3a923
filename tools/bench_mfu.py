"""Model FLOP utilisation of the backbone's LoRA train step against this machine's measured matmul peak.

Usage (from the repository root):
    .venv/bin/python tools/bench_mfu.py [--preset nt-500m] [--tokens 512] [--batch 1] [--steps 4]
                                        [--dtype fp32|bf16] [--threads N] [--attention sdpa|eager] [--json OUT]

Peak: the best rate of `torch.mm` on square matrices (n = 1024, 2048, 4096) in `--dtype` with the same
thread count, 2 n^3 FLOPs per product. Step: the preset backbone (random weights, fixed seed) with PEFT
LoRA on its default targets (rank 8, dropout 0), one forward of `--batch` full windows of `--tokens`
tokens (no padding), a scalar loss over the last hidden states, backward; frozen weights get no weight
gradients. FLOPs per step are counted analytically from the architecture (`analytic_step_flops`):
    linear layers   forward 2 P T, backward 2 P T (input gradients only; frozen weights)
    LoRA            forward 2 P_lora T, backward 4 P_lora T (input and weight gradients)
    attention       forward 4 L T^2 d (scores and weighted sum, full T x T), backward 2x forward
with P the per-token matmul weights of all layers, T the tokens of the batch, L layers, d the width.
The count is cross-checked against torch's `FlopCounterMode` on the same step run once with eager
attention (printed; it counts the matmuls aten actually ran). MFU = analytic FLOPs / step time / peak.
The first `--warmup` steps are not timed. Nothing is asserted; the goal (issue 6) is >= 40 % of the
measured peak.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from gp_distributed.config import LoraConfig, ModelConfig
from gp_distributed.data.tokenize import tokenizer_for
from gp_distributed.model.adapters import apply_lora
from gp_distributed.model.backbone import build_backbone, token_states

_IN_LAYER = re.compile(r"(^|\.)layers?\.\d+\.")  # ESM encoder.layer.N., Llama layers.N.
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
ALPHABET = {"tiny-protein": "protein", "esm2-35m": "protein", "nt-500m": "dna", "tiny-dna": "dna",
            "generator-1.2b": "dna"}


@dataclass(frozen=True)
class MfuResult:
    preset: str
    dtype: str
    threads: int
    attention: str
    tokens: int
    batch: int
    peak_gflops: float
    step_seconds: float
    analytic_gflop_per_step: float
    counted_gflop_per_step: float
    achieved_gflops: float
    mfu: float


def measure_peak(dtype: torch.dtype, seconds: float = 2.0) -> float:
    """Best GFLOP/s of square matmuls in `dtype` over a few sizes (each timed for about `seconds`)."""
    best = 0.0
    for n in (1024, 2048, 4096):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        torch.mm(a, b)  # first call: allocation and kernel selection
        done, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            torch.mm(a, b)
            done += 1
        best = max(best, 2 * n**3 * done / elapsed / 1e9)
    return best


def analytic_step_flops(backbone: torch.nn.Module, tokens: int, batch: int) -> float:
    """FLOPs of one LoRA train step (module docstring), from the model's config and its adapter sizes."""
    config = backbone.config
    layers, width = config.num_hidden_layers, config.hidden_size
    lora = sum(p.numel() for name, p in backbone.named_parameters() if "lora_" in name)
    frozen_matmul = sum(m.weight.numel() for name, m in backbone.named_modules()
                        if isinstance(m, torch.nn.Linear) and "lora_" not in name and _IN_LAYER.search(name))
    t = tokens * batch
    linear = 2 * frozen_matmul * t + 2 * frozen_matmul * t
    adapters = 2 * lora * t + 4 * lora * t
    attention = 3 * 4 * layers * tokens * tokens * width * batch
    return float(linear + adapters + attention)


def build(preset: str, attention: str) -> tuple[torch.nn.Module, int]:
    model_config = ModelConfig(backbone_preset=preset, lora=LoraConfig(rank=8, dropout=0.0))
    tokenizer = tokenizer_for(model_config, ALPHABET[preset], 6)
    backbone, _, _ = build_backbone(model_config, tokenizer)
    backbone.config._attn_implementation = attention
    backbone = apply_lora(backbone, model_config.lora, backbone.config.model_type)
    return backbone.train(), len(tokenizer)


def train_step(backbone: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, dtype: torch.dtype) -> None:
    with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        states = token_states(backbone, ids, mask)
    states.float().square().mean().backward()


def run(preset: str, tokens: int, batch: int, steps: int, warmup: int, dtype_name: str, threads: int,
        attention: str) -> MfuResult:
    torch.set_num_threads(threads)
    dtype = DTYPES[dtype_name]
    peak = measure_peak(dtype)
    torch.manual_seed(0)
    backbone, vocab = build(preset, attention)
    ids = torch.randint(5, vocab, (batch, tokens))
    mask = torch.ones_like(ids)
    # Counted with eager attention: FlopCounterMode sees its matmuls (CPU SDPA kernels are not counted).
    backbone.config._attn_implementation = "eager"
    with FlopCounterMode(display=False) as counter:
        train_step(backbone, ids, mask, dtype)
    backbone.config._attn_implementation = attention
    backbone.zero_grad(set_to_none=True)
    for _ in range(warmup):
        train_step(backbone, ids, mask, dtype)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        train_step(backbone, ids, mask, dtype)
        times.append(time.perf_counter() - start)
        backbone.zero_grad(set_to_none=True)
    step = statistics.median(times)
    flops = analytic_step_flops(backbone, tokens, batch)
    return MfuResult(preset, dtype_name, threads, attention, tokens, batch, peak, step, flops / 1e9,
                     counter.get_total_flops() / 1e9, flops / step / 1e9, flops / step / 1e9 / peak)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="nt-500m", choices=sorted(ALPHABET))
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--attention", choices=["sdpa", "eager"], default="sdpa")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = run(args.preset, args.tokens, args.batch, args.steps, args.warmup, args.dtype, args.threads,
                 args.attention)
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"peak {result.dtype} matmul: {result.peak_gflops:.1f} GFLOP/s ({result.threads} threads)")
    print(f"{result.preset} LoRA train step, {result.batch} x {result.tokens} tokens, {result.attention}: "
          f"{result.step_seconds:.3f} s, {result.analytic_gflop_per_step:.1f} GFLOP analytic "
          f"({result.counted_gflop_per_step:.1f} counted by FlopCounterMode)")
    print(f"achieved {result.achieved_gflops:.1f} GFLOP/s = MFU {100 * result.mfu:.1f} % of the measured peak")
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
