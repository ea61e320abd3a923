"""GPU benchmarks for the device check (tools/gpu/check.sh): backbone MFU and the full GenePheno step.

Usage (from the repository root; every subcommand also runs on CPU with tiny sizes, which is what
`check.sh --dry-run` and the tests do):
    python tools/gpu/bench_gpu_step.py imports [--json OUT]
    python tools/gpu/bench_gpu_step.py store --out DIR [--genes 64] [--min-bp 25000]
    python tools/gpu/bench_gpu_step.py mfu [--preset generator-1.2b] [--tokens 4096,16384]
        [--attention sdpa,sdpa-flash,sdpa-cudnn,flash_attention_2] [--checkpointing off,on]
        [--batch 1] [--steps 5] [--warmup 2] [--item-timeout 60] [--budget 240] --jsonl OUT
    python tools/gpu/bench_gpu_step.py genepheno --store DIR --zero-stage 2|3 [--preset generator-1.2b]
        [--tokens 4096] [--micro-batch 2] [--grad-accum 1] [--steps 5] [--warmup 2] --json OUT [key.sub=value ...]

`imports` imports every module the check runs and reports which third-party distributions that loaded,
and, for `mlflow` and `ray`, the repository file:line chain of the import that forced each (the device
image has neither; tools/gpu/wheelhouse.sh carries the MLflow client only while this says it is needed).

`mfu`: the preset backbone (random weights, fixed seed) with PEFT LoRA (rank 8, dropout 0) cast whole to
the compute dtype (bf16 on a GPU, as DeepSpeed's bf16 mode casts the module; fp32 on CPU), one forward
of `--batch` full windows, a scalar loss over the last hidden states, backward; the same step and the
same analytic FLOP count as tools/bench_mfu.py (frozen linear 4 P T, LoRA 6 P_lora T, attention
12 L T^2 d, counting the full T x T square). MFU = those FLOPs / median step time / the measured peak
(median of timed bf16 8192^3 products on the card). Also reported: the MFU with the attention term
halved (what a causal kernel computes) and, with activation checkpointing, the hardware utilisation
counting the recompute forward. Attention variants: `sdpa` (PyTorch's own dispatch), `sdpa-flash` and
`sdpa-cudnn` (that SDPA backend forced), `flash_attention_2` (only where the flash_attn package
imports). One JSON line per item, written as each item ends, so a killed process keeps what it did.

`genepheno`: the product's training step in this process (world of one: NCCL on a GPU, gloo on CPU):
the worker's own `setup` (store, GenePheno model = LoRA backbone + GO branch + bottleneck + head,
DeepSpeed engine at the given ZeRO stage) and `train_step`, timed over `--steps` after `--warmup`.
Reports genes/s, non-pad tokens/s, peak GPU memory (torch's allocator) against the ZeRO formula for a
world of one: 2 P + 14 P_t bytes in bf16 (every weight in bf16; trained ones add bf16 gradients and an
fp32 master copy and two Adam moments, ZeRO's 16 bytes), 4 P + 16 P_t in fp32 (as tools/bench_scale.py).

Package names used (each looked up in its new module, then its old one, so the file survives the
package's move into subpackages): config.load_config / ModelConfig / LoraConfig,
data.tokenize.tokenizer_for, model.backbone.build_backbone / token_states, model.adapters.apply_lora,
train.ranks (or distributed).init_single_process_group, train.worker (or worker).setup / train_step,
synthetic.generator (or synthetic).make_synthetic, cli.main.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import importlib
import importlib.abc
import io
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

GIB = 2**30
WATCHED = ("mlflow", "ray")  # absent from the device image
_IN_LAYER = re.compile(r"(^|\.)layers?\.\d+\.")  # ESM encoder.layer.N., Llama layers.N. (as tools/bench_mfu.py)
ALPHABET = {"tiny-protein": "protein", "esm2-35m": "protein", "nt-500m": "dna", "tiny-dna": "dna",
            "generator-1.2b": "dna"}

# role -> (attribute, modules to try in order: after the move into subpackages, before it)
NAMES: dict[str, tuple[str, tuple[str, ...]]] = {
    "load_config": ("load_config", ("gp_distributed.config",)),
    "ModelConfig": ("ModelConfig", ("gp_distributed.config",)),
    "LoraConfig": ("LoraConfig", ("gp_distributed.config",)),
    "tokenizer_for": ("tokenizer_for", ("gp_distributed.data.tokenize",)),
    "build_backbone": ("build_backbone", ("gp_distributed.model.backbone",)),
    "token_states": ("token_states", ("gp_distributed.model.backbone",)),
    "apply_lora": ("apply_lora", ("gp_distributed.model.adapters",)),
    "init_single_process_group": ("init_single_process_group",
                                  ("gp_distributed.train.ranks", "gp_distributed.distributed")),
    "setup": ("setup", ("gp_distributed.train.worker", "gp_distributed.worker")),
    "train_step": ("train_step", ("gp_distributed.train.worker", "gp_distributed.worker")),
    "run_training": ("run_training", ("gp_distributed.commands.train", "gp_distributed.train.launcher",
                                      "gp_distributed.launcher")),
    "make_synthetic": ("make_synthetic", ("gp_distributed.synthetic.generator", "gp_distributed.synthetic")),
    "gp_main": ("main", ("gp_distributed.cli",)),
}


def resolve(role: str) -> Any:
    """The package object for `role` (NAMES), from the first module that has it."""
    attr, modules = NAMES[role]
    errors = []
    for module in modules:
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as error:
            if error.name is None or not module.startswith(error.name):
                raise  # the module exists but one of its own imports is missing: that is the news
            errors.append(f"{module}: no such module")
        except AttributeError:
            errors.append(f"{module}: no attribute {attr}")
    raise ImportError(f"{role}: none of {', '.join(errors)}")


# ---------------------------------------------------------------------------------------------- imports


def _ours(filename: str) -> str | None:
    path = Path(filename)
    if path.is_absolute() and REPO in path.parents:
        relative = path.relative_to(REPO)
        if relative.parts[0] in ("gp_distributed", "tools", "tests"):
            return str(relative)
    return None


class ImportWatch(importlib.abc.MetaPathFinder):
    """Records, for each watched top-level name, the repository frames of every lookup (finds nothing)."""

    def __init__(self, names: tuple[str, ...]):
        self.names = names
        self.lookups: dict[str, list[dict[str, Any]]] = {name: [] for name in names}

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        top = fullname.split(".")[0]
        if top in self.names and fullname == top:
            stack = [f for f in traceback.extract_stack()[:-1] if not f.filename.startswith("<frozen")]
            ours = [f"{where}:{f.lineno}" for f in reversed(stack) if (where := _ours(f.filename))]
            innermost = stack[-1] if stack else None
            direct = innermost is not None and _ours(innermost.filename) is not None
            by = None if direct or innermost is None else f"{innermost.filename}:{innermost.lineno}"
            self.lookups[top].append({"direct": direct, "chain": ours, "by_library": by})


def check_imports() -> dict[str, Any]:
    """Import what the check runs; the distributions that loaded; who imported mlflow / ray."""
    watch = ImportWatch(WATCHED)
    sys.meta_path.insert(0, watch)
    errors = {}
    before = set(sys.modules)
    for role in NAMES:
        try:
            resolve(role)
        except Exception as error:  # noqa: BLE001 - reported, the check goes on
            errors[role] = f"{type(error).__name__}: {error}"
    for module in ("gp_distributed.checkpoint", "gp_distributed.data.store"):
        try:
            importlib.import_module(module)
        except Exception as error:  # noqa: BLE001
            errors[module] = f"{type(error).__name__}: {error}"
    sys.meta_path.remove(watch)
    from importlib.metadata import packages_distributions, version

    owners = packages_distributions()
    tops = {m.split(".")[0] for m in set(sys.modules) - before}
    dists = sorted({d for top in tops if top not in sys.stdlib_module_names and not top.startswith("_")
                    for d in owners.get(top, [])})
    forced = {}
    for name in WATCHED:
        if name in sys.modules:
            lookups = watch.lookups[name]
            direct = [entry for entry in lookups if entry["direct"]]
            forced[name] = (direct or lookups or [{"chain": [], "direct": False, "by_library": None}])[0]
    versions = {}
    for dist in ("torch", "transformers", "peft", "deepspeed", "zarr", "pydantic", "fastobo", "numpy",
                 "tokenizers", "huggingface-hub", "mlflow-skinny", "ray"):
        try:
            versions[dist] = version(dist)
        except Exception:  # noqa: BLE001 - PackageNotFoundError and broken metadata alike
            versions[dist] = None
    cuda: dict[str, Any] = {"available": False}
    try:
        import torch

        cuda = {"available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda}
        if cuda["available"]:
            cuda.update(device=torch.cuda.get_device_name(0), capability=list(torch.cuda.get_device_capability(0)),
                        memory_gib=torch.cuda.get_device_properties(0).total_memory / GIB)
    except Exception as error:  # noqa: BLE001
        cuda["error"] = f"{type(error).__name__}: {error}"
    return {"python": platform.python_version(), "cuda": cuda, "loaded_distributions": dists, "forced": forced,
            "needs_mlflow": "mlflow" in forced, "needs_ray": "ray" in forced, "errors": errors,
            "versions": versions}


# ------------------------------------------------------------------------------------------------ store


def _read_fasta(path: Path) -> list[tuple[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    records: list[tuple[str, list[str]]] = []
    with opener(path, "rt") as handle:
        for line in handle:
            line = line.rstrip("\n")
            if line.startswith(">"):
                records.append((line, []))
            elif line and records:
                records[-1][1].append(line)
    return [(header, "".join(parts)) for header, parts in records]


def build_store(out: Path, genes: int, min_bp: int) -> dict[str, Any]:
    """A SYNTHETIC DNA store (make_synthetic, each sequence repeated to >= `min_bp` so windows are full,
    then `gp ingest` with the flags of tools/bench_stream.py); returns its path and sizes."""
    started = time.perf_counter()
    data = resolve("make_synthetic")(out / "synthetic", n_genes=genes, seed=0)
    fasta = Path(data.fasta)
    records = _read_fasta(fasta)
    tiled = out / "synthetic_tiled.fa"
    with open(tiled, "w") as handle:
        for header, sequence in records:
            repeated = sequence * max(1, -(-min_bp // max(len(sequence), 1)))
            handle.write(f"{header}\n")
            handle.writelines(repeated[start:start + 80] + "\n" for start in range(0, len(repeated), 80))
    store = out / "synthetic_dna.zarr"
    argv = ["ingest", "--quiet", "--alphabet", "dna", "--labels-format", "mgi", "--go-format", "gaf",
            "--min-genes", "3", "--fasta", str(tiled), "--id-map", str(data.id_map), "--labels", str(data.labels),
            "--ontology", str(data.mp_obo), "--go", str(data.gaf), "--go-ontology", str(data.go_obo),
            "--out", str(store), "ingest.min_concept_genes=2", "ingest.genes_per_shard=64"]
    with contextlib.redirect_stdout(io.StringIO()) as captured:
        rc = resolve("gp_main")(argv)
    if rc != 0:
        raise RuntimeError(f"gp ingest failed (rc {rc}): {captured.getvalue()[-2000:]}")
    bp = sum(len(s) * max(1, -(-min_bp // max(len(s), 1))) for _, s in records)
    return {"store": str(store), "genes": len(records), "bp": bp, "seconds": time.perf_counter() - started}


# -------------------------------------------------------------------------------------------------- mfu


def _device(name: str) -> Any:
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_peak(device: Any, dtype: Any) -> dict[str, Any]:
    """Median rate of square matrix products in `dtype`: 8192^3 on a GPU (CUDA events), 256^3 on CPU."""
    import torch

    n, reps, per_rep = (8192, 7, 10) if device.type == "cuda" else (256, 3, 5)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b)
    rates = []
    for _ in range(reps):
        _sync(device)
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(per_rep):
                torch.mm(a, b)
            end.record()
            end.synchronize()
            seconds = start.elapsed_time(end) / 1e3
        else:
            began = time.perf_counter()
            for _ in range(per_rep):
                torch.mm(a, b)
            seconds = time.perf_counter() - began
        rates.append(2 * n**3 * per_rep / seconds / 1e12)
    return {"n": n, "dtype": str(dtype).removeprefix("torch."), "tflops_median": statistics.median(rates),
            "tflops_all": rates}


def build_lora_backbone(preset: str, device: Any, dtype: Any, rank: int = 8) -> tuple[Any, int]:
    """The preset backbone with LoRA (bench_mfu's settings), cast whole to `dtype` on `device`."""
    model_config = resolve("ModelConfig")(backbone_preset=preset, lora=resolve("LoraConfig")(rank=rank, dropout=0.0))
    tokenizer = resolve("tokenizer_for")(model_config, ALPHABET[preset], 6)
    backbone, _, _ = resolve("build_backbone")(model_config, tokenizer)
    backbone = resolve("apply_lora")(backbone, model_config.lora, backbone.config.model_type)
    return backbone.to(device=device, dtype=dtype).train(), len(tokenizer)


def set_checkpointing(model: Any, on: bool) -> None:
    """Non-reentrant activation checkpointing on the base model (transformers >= 5.2x names, else the old)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if on:
        if hasattr(base, "activation_checkpointing_enable"):
            base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        (getattr(base, "activation_checkpointing_disable", None) or base.gradient_checkpointing_disable)()


def step_flops(model: Any, tokens: int, batch: int) -> dict[str, float]:
    """tools/bench_mfu.py's analytic count, plus the causal-attention and recompute variants."""
    import torch

    config = model.config
    layers, width = config.num_hidden_layers, config.hidden_size
    lora = sum(p.numel() for name, p in model.named_parameters() if "lora_" in name)
    frozen = sum(m.weight.numel() for name, m in model.named_modules()
                 if isinstance(m, torch.nn.Linear) and "lora_" not in name and _IN_LAYER.search(name))
    t = tokens * batch
    attention_forward = 4 * layers * tokens * tokens * width * batch
    model_flops = 4 * frozen * t + 6 * lora * t + 3 * attention_forward
    return {"model": float(model_flops), "causal": float(model_flops - 1.5 * attention_forward),
            "recompute": float(2 * frozen * t + 2 * lora * t + attention_forward),
            "frozen_matmul_params": float(frozen), "lora_params": float(lora)}


@contextlib.contextmanager
def attention_mode(model: Any, attention: str, device: Any) -> Iterator[None]:
    """Select the attention implementation for the block (raises RuntimeError('skip: ...') if unavailable)."""
    import importlib.util

    from torch.nn.attention import SDPBackend, sdpa_kernel

    if attention == "flash_attention_2":
        if importlib.util.find_spec("flash_attn") is None:
            raise RuntimeError("skip: the flash_attn package is not importable here")
        if device.type != "cuda":
            raise RuntimeError("skip: flash_attention_2 needs CUDA")
        model.config._attn_implementation = "flash_attention_2"
        yield
        return
    if attention == "sdpa-cudnn" and device.type != "cuda":
        raise RuntimeError("skip: cuDNN attention needs CUDA")
    model.config._attn_implementation = "sdpa"
    backend = {"sdpa": None, "sdpa-flash": SDPBackend.FLASH_ATTENTION, "sdpa-cudnn": SDPBackend.CUDNN_ATTENTION}
    if attention not in backend:
        raise RuntimeError(f"skip: unknown attention variant {attention}")
    if backend[attention] is None:
        yield
    else:
        with sdpa_kernel([backend[attention]]):
            yield


def mfu_item(model: Any, vocab: int, device: Any, peak_tflops: float, tokens: int, batch: int, attention: str,
             checkpointing: bool, steps: int, warmup: int, item_timeout: float) -> dict[str, Any]:
    import torch

    token_states = resolve("token_states")
    result: dict[str, Any] = {"tokens": tokens, "batch": batch, "attention": attention,
                              "checkpointing": checkpointing}
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(tokens)
    ids = torch.randint(5, vocab, (batch, tokens), generator=generator).to(device)
    mask = torch.ones_like(ids)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    set_checkpointing(model, checkpointing)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    active = "is_activation_checkpointing" if hasattr(type(base), "is_activation_checkpointing") else "is_gradient_checkpointing"
    result["checkpointing_active"] = bool(getattr(base, active, False))
    times: list[float] = []
    try:
        with attention_mode(model, attention, device):
            for index in range(warmup + steps):
                if time.perf_counter() - started > item_timeout:
                    result.update(status="timeout", error=f"item over {item_timeout:.0f} s after {len(times)} timed steps")
                    break
                _sync(device)
                began = time.perf_counter()
                states = token_states(model, ids, mask)
                states.float().square().mean().backward()
                _sync(device)
                if index >= warmup:
                    times.append(time.perf_counter() - began)
                model.zero_grad(set_to_none=True)
    except RuntimeError as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if message.startswith("skip: "):
            result.update(status="skipped", error=message[6:])
        else:
            result.update(status="failed", error=f"{type(error).__name__}: {message}")
    except Exception as error:  # noqa: BLE001 - OOM and kernel refusals are results here
        result.update(status="failed", error=f"{type(error).__name__}: {str(error).strip()[:300]}")
    finally:
        model.zero_grad(set_to_none=True)
        set_checkpointing(model, False)
    result.setdefault("status", "ok")
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / GIB
        torch.cuda.empty_cache()
    if times:
        flops = step_flops(model, tokens, batch)
        step = statistics.median(times)
        hardware = flops["model"] + (flops["recompute"] if checkpointing else 0.0)
        result.update(step_seconds=step, step_seconds_all=times, model_tflop_per_step=flops["model"] / 1e12,
                      achieved_tflops=flops["model"] / step / 1e12, mfu=flops["model"] / step / 1e12 / peak_tflops,
                      mfu_causal_attention=flops["causal"] / step / 1e12 / peak_tflops,
                      hfu=hardware / step / 1e12 / peak_tflops, tokens_per_second=tokens * batch / step)
    elif result["status"] == "ok":
        result.update(status="failed", error="no timed step")
    result["seconds"] = time.perf_counter() - started
    return result


def run_mfu(args: argparse.Namespace) -> int:
    import torch

    started = time.perf_counter()
    device = _device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    out = Path(args.jsonl)

    def emit(record: dict[str, Any]) -> None:
        with open(out, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        print(json.dumps({k: v for k, v in record.items() if not k.endswith("_all")}), flush=True)

    items = [(t, a, c) for t in args.tokens for c in args.checkpointing for a in args.attention]
    try:
        peak = measure_peak(device, dtype)
        emit({"name": "mfu_peak_matmul", "status": "ok", "device": str(device), **peak})
        torch.manual_seed(0)
        built = time.perf_counter()
        model, vocab = build_lora_backbone(args.preset, device, dtype)
        build_seconds = time.perf_counter() - built
    except Exception as error:  # noqa: BLE001 - every item then fails with this cause
        cause = f"{type(error).__name__}: {str(error).strip()[:300]}"
        traceback.print_exc()
        for tokens, attention, checkpointing in items:
            emit({"name": mfu_name(tokens, attention, checkpointing), "status": "failed", "error": f"setup: {cause}"})
        return 1
    for tokens, attention, checkpointing in items:
        name = mfu_name(tokens, attention, checkpointing)
        if time.perf_counter() - started > args.budget:
            emit({"name": name, "status": "skipped", "error": f"mfu budget of {args.budget:.0f} s spent"})
            continue
        record = mfu_item(model, vocab, device, peak["tflops_median"], tokens, args.batch, attention,
                          checkpointing == "on", args.steps, args.warmup, args.item_timeout)
        emit({"name": name, "preset": args.preset, "dtype": str(dtype).removeprefix("torch."),
              "device": str(device), "model_build_seconds": build_seconds, **record})
    return 0


def mfu_name(tokens: int, attention: str, checkpointing: str) -> str:
    return f"mfu_{tokens}_{attention.replace('_', '-')}_ckpt-{checkpointing}"


# -------------------------------------------------------------------------------------------- genepheno


def _peak_rss_gib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def run_genepheno(args: argparse.Namespace) -> int:
    import torch

    device = _device(args.device)
    gpu = device.type == "cuda"
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gp-gpu-step-") as scratch:
        overrides = [
            f"data.store={args.store}", f"train.storage_path={scratch}", "train.run_name=gpu-step",
            f"model.backbone_preset={args.preset}", "data.kmer_size=6", f"data.max_seq_len_tokens={args.tokens}",
            "data.window_strategy=random", f"train.zero_stage={args.zero_stage}",
            f"train.micro_batch_size={args.micro_batch}", f"train.grad_accum_steps={args.grad_accum}",
            f"train.max_steps={args.warmup + args.steps + 1}", "train.warmup_steps=1", "train.eval_every=100000",
            "train.ckpt_every=100000", "scaling.num_workers=0", f"scaling.use_gpu={str(gpu).lower()}",
            f"train.precision={'bf16' if gpu else 'fp32'}", "tracking.enabled=false",
            f"model.gradient_checkpointing={str(args.checkpointing == 'on').lower()}",
            "data.shuffle_buffer_genes=16", *args.overrides,
        ]
        config = resolve("load_config")(None, overrides)
        context = resolve("init_single_process_group")()
        if gpu:
            torch.cuda.reset_peak_memory_stats(device)
        began = time.perf_counter()
        state = resolve("setup")(config, context)
        _sync(device)
        setup_seconds = time.perf_counter() - began
        memory: dict[str, float | None] = {"after_setup_gib": None, "setup_peak_gib": None}
        if gpu:
            memory.update(after_setup_gib=torch.cuda.memory_allocated(device) / GIB,
                          setup_peak_gib=torch.cuda.max_memory_allocated(device) / GIB)
            torch.cuda.reset_peak_memory_stats(device)
        train_step = resolve("train_step")
        timed = []
        for index in range(args.warmup + args.steps):
            metrics = train_step(state)
            if index >= args.warmup:
                timed.append(metrics)
        _sync(device)
        parameters = [(getattr(p, "ds_numel", None) or p.numel(), p.requires_grad) for p in state.model.parameters()]
        total, trained = sum(n for n, _ in parameters), sum(n for n, g in parameters if g)
        predicted = (2 * total + 14 * trained) if gpu else (4 * total + 16 * trained)
        result: dict[str, Any] = {
            "status": "ok", "device": str(device), "preset": args.preset, "zero_stage": args.zero_stage,
            "precision": "bf16" if gpu else "fp32", "tokens": args.tokens, "micro_batch": args.micro_batch,
            "grad_accum": args.grad_accum, "checkpointing": args.checkpointing, "overrides": args.overrides,
            "parameters": total, "trained_parameters": trained, "setup_seconds": setup_seconds,
            "genes_per_second": statistics.median(m["genes_per_second"] for m in timed),
            "tokens_per_second": statistics.median(m["tokens_per_second"] for m in timed),
            "step_seconds": statistics.median(m["step_seconds"] for m in timed),
            "step_seconds_all": [m["step_seconds"] for m in timed], "final_loss": timed[-1]["loss"],
            "zero_formula": "2 P + 14 P_t (bf16)" if gpu else "4 P + 16 P_t (fp32)",
            "predicted_model_states_gib": predicted / GIB, **memory,
        }
        if gpu:
            peak = torch.cuda.max_memory_allocated(device) / GIB
            result.update(steady_allocated_gib=torch.cuda.memory_allocated(device) / GIB, peak_gib=peak,
                          peak_reserved_gib=torch.cuda.max_memory_reserved(device) / GIB,
                          peak_over_prediction=peak * GIB / predicted)
        else:
            result["peak_rss_gib"] = _peak_rss_gib()
    result["seconds"] = time.perf_counter() - started
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if not k.endswith("_all")}), flush=True)
    return 0


# ------------------------------------------------------------------------------------------------- main


def _list(convert: Any) -> Any:
    return lambda text: [convert(part) for part in text.split(",") if part]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    imports = sub.add_parser("imports", help="import what the check runs; report loaded distributions")
    imports.add_argument("--json", type=Path)
    store = sub.add_parser("store", help="build the synthetic DNA store")
    store.add_argument("--out", type=Path, required=True)
    store.add_argument("--genes", type=int, default=64)
    store.add_argument("--min-bp", type=int, default=25_000)
    mfu = sub.add_parser("mfu", help="backbone LoRA step MFU")
    mfu.add_argument("--preset", default="generator-1.2b", choices=sorted(ALPHABET))
    mfu.add_argument("--tokens", type=_list(int), default=[4096, 16384])
    mfu.add_argument("--attention", type=_list(str), default=["sdpa", "sdpa-flash", "sdpa-cudnn", "flash_attention_2"])
    mfu.add_argument("--checkpointing", type=_list(str), default=["off", "on"])
    mfu.add_argument("--batch", type=int, default=1)
    mfu.add_argument("--steps", type=int, default=5)
    mfu.add_argument("--warmup", type=int, default=2)
    mfu.add_argument("--item-timeout", type=float, default=60.0)
    mfu.add_argument("--budget", type=float, default=240.0, help="seconds for all items; later ones are skipped")
    mfu.add_argument("--device", default="auto")
    mfu.add_argument("--jsonl", type=Path, required=True)
    step = sub.add_parser("genepheno", help="the full GenePheno DeepSpeed step")
    step.add_argument("--store", type=Path, required=True)
    step.add_argument("--zero-stage", type=int, choices=[0, 1, 2, 3], required=True)
    step.add_argument("--preset", default="generator-1.2b", choices=sorted(ALPHABET))
    step.add_argument("--tokens", type=int, default=4096)
    step.add_argument("--micro-batch", type=int, default=2)
    step.add_argument("--grad-accum", type=int, default=1)
    step.add_argument("--steps", type=int, default=5)
    step.add_argument("--warmup", type=int, default=2)
    step.add_argument("--checkpointing", choices=["off", "on"], default="off")
    step.add_argument("--device", default="auto")
    step.add_argument("--json", type=Path, required=True)
    step.add_argument("overrides", nargs="*", metavar="key.sub=value")
    args = parser.parse_args(argv)
    if args.command == "imports":
        report = check_imports()
        text = json.dumps(report, indent=1)
        if args.json:
            args.json.write_text(text + "\n")
        print(text)
        return 1 if report["errors"] else 0
    if args.command == "store":
        args.out.mkdir(parents=True, exist_ok=True)
        print(json.dumps(build_store(args.out, args.genes, args.min_bp)))
        return 0
    if args.command == "mfu":
        return run_mfu(args)
    return run_genepheno(args)


if __name__ == "__main__":
    raise SystemExit(main())
