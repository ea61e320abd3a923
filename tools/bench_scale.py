"""Scale proof: LoRA steps of a GENERator-eukaryote-1.2b-shaped model under ZeRO-3 on 2 CPU Ray workers.

Usage (from the repository root):
    .venv/bin/python tools/bench_scale.py [--preset generator-1.2b] [--workers 2] [--tokens 64]
                                          [--steps 4] [--genes 64] [--json OUT] [key.sub=value ...]

The model is the `generator-1.2b` preset (Llama-style, 26 layers, width 2048, random weights from a
fixed seed) with LoRA (rank 8 on q/k/v/o), the GO branch, bottleneck and head, trained by the real
stack: `run_training` -> Ray Train (private Ray on 127.0.0.1) -> DeepSpeed ZeRO-3 engines (fp32, gloo)
on a SYNTHETIC DNA store of `--genes` genes built here, `--tokens`-token windows, micro-batch 1. Each
worker reports (gp_distributed/memory.py): its resident peak before the model exists (baseline), the
peak of building the model and engine (the whole unpartitioned model exists then on every rank: the
preset is built in full before DeepSpeed partitions it), and the peak over the training steps.

ZeRO's prediction per worker (fp32 compute, N workers, P parameters of which P_t are trained):
    baseline + 4 P / N                      every parameter, partitioned (frozen ones included)
             + 4 P_t / N                    gradients of the trained partition
             + 12 P_t / N                   DeepSpeed's fp32 master copy, Adam's two moments
             + 4 (L + F)                    the gathered working set ZeRO-3 is allowed: L live parameters
                                            (`train.zero3_live_parameters`) and F prefetched ones
                                            (`train.zero3_prefetch_parameters`), as DeepSpeed's
                                            estimator adds its largest layer
P and P_t are counted on the meta device (nothing allocated). Goal (issue 6): training peak <= 1.3x
the prediction; the ratio to the model states alone (without the working set) is printed as well. Step time: the last step's `step_seconds` (mean over ranks). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

os.environ["RAY_AUTH_MODE"] = "token"
os.environ["DS_ACCELERATOR"] = "cpu"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_stream import build_dna_store  # noqa: E402  (a sibling tool)

from gp_distributed.commands.train import run_training  # noqa: E402
from gp_distributed.config import GPConfig, load_config  # noqa: E402
from gp_distributed.data.store import open_store  # noqa: E402
from gp_distributed.train.launcher import start_local_ray  # noqa: E402
from gp_distributed.train.worker import build_training_model  # noqa: E402

GIB = 2**30
GOAL = 1.3


@dataclass(frozen=True)
class ScaleResult:
    preset: str
    workers: int
    tokens: int
    parameters: int
    trained_parameters: int
    baseline_gib: float
    states_gib: float  # baseline + ZeRO-3 model states
    predicted_gib: float  # ... + the gathered working set
    setup_peak_gib: float
    training_peak_gib: float
    ratio_to_states: float
    ratio: float
    step_seconds: float


def count_parameters(config: GPConfig) -> tuple[int, int]:
    """(all, trained) parameters of the configured model, built on the meta device."""
    with torch.device("meta"):
        model, _, _ = build_training_model(config, open_store(config.data.store))
    return sum(p.numel() for p in model.parameters()), sum(p.numel() for p in model.parameters() if p.requires_grad)


def zero3_states_gib(parameters: int, trained: int, workers: int) -> float:
    return (4 * parameters + 16 * trained) / workers / GIB


def zero3_working_set_gib(config: GPConfig) -> float:
    return 4 * (config.train.zero3_live_parameters + config.train.zero3_prefetch_parameters) / GIB


def run(scratch: Path, preset: str, workers: int, tokens: int, steps: int, genes: int,
        overrides: list[str]) -> ScaleResult:
    store, _ = build_dna_store(scratch, genes)
    config = load_config(None, [
        f"data.store={store}", f"train.storage_path={scratch / 'runs'}", "train.run_name=scale",
        f"model.backbone_preset={preset}", "data.kmer_size=6", f"data.max_seq_len_tokens={tokens}",
        "train.zero_stage=3", "train.micro_batch_size=1", "train.grad_accum_steps=1", f"train.max_steps={steps}",
        "train.warmup_steps=1", f"train.eval_every={10 * steps}", f"train.ckpt_every={steps}",
        f"scaling.num_workers={workers}", "scaling.cpus_per_worker=1", "tracking.enabled=false", *overrides,
    ])
    parameters, trained = count_parameters(config)
    start_local_ray(num_cpus=workers + 1, temp_dir=scratch / "ray")
    result = run_training(config)
    metrics = result.metrics
    baseline = metrics["memory/baseline_rss_gib"]
    states = baseline + zero3_states_gib(parameters, trained, workers)
    predicted = states + zero3_working_set_gib(config)
    peak = metrics["memory/peak_rss_gib"]
    return ScaleResult(preset, workers, tokens, parameters, trained, baseline, states, predicted,
                       metrics["memory/setup_peak_rss_gib"], peak, peak / states, peak / predicted,
                       metrics["step_seconds"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="generator-1.2b")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--genes", type=int, default=64)
    parser.add_argument("--json", type=Path)
    parser.add_argument("overrides", nargs="*", help="key.sub=value config overrides")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gp-scale-") as scratch:
        result = run(Path(scratch), args.preset, args.workers, args.tokens, args.steps, args.genes, args.overrides)
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"{result.preset}: {result.parameters / 1e9:.3f} B parameters, {result.trained_parameters / 1e6:.1f} M "
          f"trained; ZeRO-3 over {result.workers} CPU workers, {result.tokens}-token windows")
    print(f"per worker (max over ranks): baseline {result.baseline_gib:.2f} GiB, building the model "
          f"{result.setup_peak_gib:.2f} GiB, training {result.training_peak_gib:.2f} GiB")
    print(f"ZeRO-3 prediction {result.predicted_gib:.2f} GiB (model states {result.states_gib:.2f} GiB + working set) "
          f"-> training peak / prediction = {result.ratio:.2f} (goal <= {GOAL}); / model states alone = "
          f"{result.ratio_to_states:.2f}")
    print(f"step time {result.step_seconds:.1f} s (last step)")
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
