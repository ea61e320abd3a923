"""Full-stack step throughput (Ray Train + DeepSpeed ZeRO-2 workers) against a plain single-process torch loop.

Usage (from the repository root):
    .venv/bin/python tools/bench_training.py [--store PATH] [--steps 210] [--skip-steps 10] [--repeats 2]
                                             [--plain-steps 60] [--workers 2] [--json OUT] [key.sub=value ...]

Both sides train the same model on the same data path: configs/demo.yaml (tiny-protein backbone with
LoRA, GO branch, 256-token windows, micro-batch 8 per process) on `--store` (default
build/demo_store.zarr), `TrainStream` + `collate`, `genepheno_loss`; trailing `key.sub=value`
overrides apply to both. The first `--skip-steps` steps of every run are left out (process and Ray
start, DeepSpeed init, first-step warm-up). Rates are genes per second of wall time and genes per CPU
second (the CPU of every process involved):
- plain loop: `build_training_model` + `torch.optim.AdamW` over the trainable parameters (the config's learning
  rate, weight decay and gradient clipping, as DeepSpeed applies them), forward, loss, backward, clip,
  step, in this process, `--plain-steps` steps. It runs with `torch.set_num_threads(workers)` (the
  goal's baseline: one process on the same cores) and with one thread (its rate x workers is ideal
  data-parallel scaling, the stricter baseline), each once before and once after the full stack
  (order W 1 | stack | 1 W, so a load change on the shared machine hits every side); a rate is that
  of both runs together (timed genes / timed seconds);
- full stack: `run_training` with `scaling.num_workers=workers` (1 CPU each; Ray sets
  OMP_NUM_THREADS=1, so torch runs one thread per worker), ZeRO-2, on a private Ray started here on
  127.0.0.1 (`workers + 1` CPUs, a fresh temp dir; `ray.shutdown()` at the end). The worker's own
  `genes_per_second` covers one step and is reported only with checkpoints, so the rate comes from
  runs of the same job that differ only in length: after one discarded warm-up run (the first job in a
  fresh Ray also starts its worker pool), `--repeats` pairs of a `--skip-steps` run and a `--steps`
  run, each ending with one validation + test pass and one checkpoint. Summed long minus summed short
  wall time is the time of the extra steps with every per-step cost of the stack in it (gradient
  reduce-scatter and all-gather, the worker's metric all-reduces, Ray's own processes) and the fixed
  costs (worker start, engine init, final evaluation and checkpoint) cancelled, up to their jitter.
  CPU seconds are differenced the same way, by role: driver, Ray Train workers and Ray's other
  processes (psutil, sampled every 0.5 s). The last step's `genes_per_second` is printed as a cross-check.
Goal (issue 4, item 9): full stack / plain loop >= 0.95 (wall). Nothing is asserted. Load average
recorded at start and end. Tracking is off on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

# Before ray / deepspeed are imported, here and in the workers this process starts.
os.environ["RAY_AUTH_MODE"] = "token"
os.environ["DS_ACCELERATOR"] = "cpu"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import psutil  # installed with deepspeed and peft
import torch

from gp_distributed.commands.train import run_training
from gp_distributed.config import GPConfig, config_from_tree, load_config
from gp_distributed.data.collate import collate
from gp_distributed.data.store import open_store
from gp_distributed.data.stream import TrainStream
from gp_distributed.errors import GpError
from gp_distributed.train.launcher import start_local_ray
from gp_distributed.train.losses import genepheno_loss
from gp_distributed.train.worker import build_training_model

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO_ROOT / "configs" / "demo.yaml"
DEFAULT_STORE = REPO_ROOT / "build" / "demo_store.zarr"
RATIO_GOAL = 0.95


@dataclass(frozen=True)
class Timed:
    """Genes trained, wall seconds and CPU seconds (by role) over the timed steps."""

    steps: int
    genes: int
    wall_s: float
    cpu_s: dict[str, float]

    @property
    def genes_per_s(self) -> float:
        return self.genes / self.wall_s

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "genes_per_s": self.genes_per_s,
                "cpu_s_per_step": {role: cpu / self.steps for role, cpu in self.cpu_s.items()}}


def combined(runs: list[Timed]) -> Timed:
    """Several timed runs as one: summed genes, steps and seconds."""
    roles = {role for run in runs for role in run.cpu_s}
    return Timed(sum(r.steps for r in runs), sum(r.genes for r in runs), sum(r.wall_s for r in runs),
                 {role: sum(r.cpu_s.get(role, 0.0) for r in runs) for role in sorted(roles)})


def bench_config(store: Path, storage: Path, overrides: list[str]) -> GPConfig:
    """configs/demo.yaml on `store`: tracking off, checkpoints under `storage`, no LR warm-up (the
    schedule does not change the cost of a step, and the demo's 20 warm-up steps would not fit short runs)."""
    return load_config(DEMO_CONFIG, [f"data.store={store}", f"train.storage_path={storage}",
                                     "tracking.enabled=false", "train.warmup_steps=0", *overrides])


def plain_loop(config: GPConfig, steps: int, skip_steps: int, threads: int) -> Timed:
    """Single-process torch training of the same model and data path; steps after `skip_steps` are timed."""
    torch.set_num_threads(threads)
    store = open_store(config.data.store)
    model, windower, pad_token_id = build_training_model(config, store)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    train = config.train
    optimizer = torch.optim.AdamW(trainable, lr=train.learning_rate, weight_decay=train.weight_decay)
    stream = TrainStream(store, windower, rank=0, world_size=1, seed=train.seed,
                         shuffle_buffer_genes=config.data.shuffle_buffer_genes)
    pairs = torch.as_tensor(store.exclusive_pairs, dtype=torch.long)
    n_concepts, n_labels = len(store.concept_ids), len(store.label_ids)
    genes, started, cpu_started = 0, time.perf_counter(), time.process_time()
    for step in range(steps):
        if step == skip_steps:
            genes, started, cpu_started = 0, time.perf_counter(), time.process_time()
        examples = [next(stream) for _ in range(train.micro_batch_size)]
        batch = collate(examples, pad_token_id, n_concepts, n_labels, config.data.max_go_terms)
        output = model(batch)
        has_concepts = batch.concept_targets.sum(dim=1, keepdim=True) > 0  # as the worker masks L_GO
        terms = genepheno_loss(output.label_logits, batch.label_targets, output.concept_logits,
                               batch.concept_targets, pairs, config.loss, concept_mask=has_concepts)
        optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        if train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(trainable, train.grad_clip)
        optimizer.step()
        float(terms.total.detach())  # the worker reads its losses every step too
        genes += batch.num_genes
    return Timed(steps - skip_steps, genes, time.perf_counter() - started,
                 {"this process": time.process_time() - cpu_started})


class CpuByRole:
    """CPU seconds (user + system) used inside the block by this process ("driver") and its descendants,
    the private Ray: "train workers" (Ray Train worker processes) and "other Ray processes" (raylet, GCS,
    Train controller actors, idle workers). Descendants are sampled every `interval_s`, so a process
    that exits loses at most its last interval."""

    def __init__(self, interval_s: float = 0.5):
        self._interval_s = interval_s
        self._baseline: dict[int, float] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._driver_started = 0.0
        self.seconds: dict[str, float] = {}

    def _sample(self) -> dict[int, float]:
        seen = {}
        for child in psutil.Process().children(recursive=True):
            try:
                with child.oneshot():
                    title, times = " ".join(child.cmdline()), child.cpu_times()
            except psutil.Error:
                continue  # exited between listing and reading
            # An idle Ray worker becomes a Train worker by changing its title: keep the role once seen.
            known = self._last.get(child.pid, ("other Ray processes", 0.0))[0]
            role = "train workers" if "RayTrainWorker" in title else known
            self._last[child.pid] = (role, times.user + times.system)
            seen[child.pid] = times.user + times.system
        return seen

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._sample()

    def __enter__(self) -> Self:
        self._baseline = self._sample()  # what the Ray processes had used before the block
        self._driver_started = time.process_time()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.seconds = {"driver": time.process_time() - self._driver_started,
                        "train workers": 0.0, "other Ray processes": 0.0}
        for pid, (role, last) in self._last.items():
            self.seconds[role] += last - self._baseline.get(pid, 0.0)


def full_stack_run(config: GPConfig, steps: int, workers: int) -> tuple[float, dict[str, float], dict[str, Any]]:
    """Wall seconds, CPU seconds by role and final metrics of one Ray Train run of `steps` steps."""
    tree = config.model_dump(mode="json")
    run_name = f"bench-{steps}-{uuid.uuid4().hex[:8]}"
    tree["train"].update(max_steps=steps, eval_every=steps, ckpt_every=steps, run_name=run_name)
    tree["scaling"].update(num_workers=workers, cpus_per_worker=1.0)
    run_config = config_from_tree(tree, "bench_training run")  # validated here, not first on the workers
    started = time.perf_counter()
    with CpuByRole() as cpu:
        result = run_training(run_config)
    return time.perf_counter() - started, cpu.seconds, result.metrics


def full_stack(config: GPConfig, steps: int, skip_steps: int, workers: int, repeats: int) -> dict[str, Any]:
    """Steps `skip_steps`+1..`steps`, `repeats` times, as long-minus-short run differences on a private Ray."""
    import ray

    ray_dir = Path(tempfile.mkdtemp(prefix="gpray-", dir="/tmp"))  # Ray's socket paths must stay short
    try:
        start_local_ray(num_cpus=workers + 1, temp_dir=ray_dir)
        full_stack_run(config, skip_steps, workers)  # warm-up, discarded
        runs = [full_stack_run(config, n, workers) for _ in range(repeats) for n in (skip_steps, steps)]
    finally:
        ray.shutdown()
        shutil.rmtree(ray_dir, ignore_errors=True)
    shorts, longs = runs[0::2], runs[1::2]
    genes_per_step = config.train.micro_batch_size * config.train.grad_accum_steps * workers
    timed_steps = repeats * (steps - skip_steps)
    timed = Timed(timed_steps, timed_steps * genes_per_step,
                  sum(run[0] for run in longs) - sum(run[0] for run in shorts),
                  {role: sum(run[1][role] for run in longs) - sum(run[1][role] for run in shorts)
                   for role in longs[0][1]})
    return {**timed.as_dict(), "short_runs_s": [run[0] for run in shorts], "long_runs_s": [run[0] for run in longs],
            "short_runs_cpu_s": [run[1] for run in shorts], "long_runs_cpu_s": [run[1] for run in longs],
            "last_step_genes_per_s": float(longs[-1][2]["genes_per_second"]) * workers,
            "final_step": longs[-1][2]["step"]}


def machine() -> dict[str, Any]:
    """Cores usable by this process (what `nproc` prints), platform, Python and library versions."""
    import platform

    import deepspeed
    import ray

    return {"cores": len(os.sched_getaffinity(0)), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__, "deepspeed": deepspeed.__version__,
            "ray": ray.__version__}


def cpu_genes_per_s(timed: dict[str, Any]) -> float:
    """Genes per CPU second of every process counted for a side."""
    return timed["genes"] / sum(timed["cpu_s"].values())


def run_benchmark(store: Path, steps: int, skip_steps: int, repeats: int, plain_steps: int, workers: int,
                  overrides: list[str]) -> dict[str, Any]:
    """Plain loops (W threads, 1 thread), the full stack, plain loops (1, W); JSON-ready."""
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_training_") as scratch:
        config = bench_config(store, Path(scratch) / "runs", overrides)
        before = [plain_loop(config, plain_steps, skip_steps, threads) for threads in (workers, 1)]
        stack = full_stack(config, steps, skip_steps, workers, repeats)
        after = [plain_loop(config, plain_steps, skip_steps, threads) for threads in (1, workers)]
    plain_threads, plain_one = combined([before[0], after[1]]).as_dict(), combined([before[1], after[0]]).as_dict()
    return {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "store": str(store), "steps": steps, "skip_steps": skip_steps, "repeats": repeats,
        "plain_steps": plain_steps, "workers": workers, "overrides": overrides,
        "micro_batch_size": config.train.micro_batch_size, "max_seq_len_tokens": config.data.max_seq_len_tokens,
        "plain_runs": {"before": [run.as_dict() for run in before], "after": [run.as_dict() for run in after]},
        "plain_threads": plain_threads, "plain_one_thread": plain_one, "full_stack": stack,
        "ratio": stack["genes_per_s"] / plain_threads["genes_per_s"],
        "ratio_per_core": stack["genes_per_s"] / (workers * plain_one["genes_per_s"]),
        "cpu_ratio": cpu_genes_per_s(stack) / cpu_genes_per_s(plain_one),
    }


def _side(row: dict[str, Any]) -> str:
    per_step = ", ".join(f"{role} {seconds:.3f}" for role, seconds in row["cpu_s_per_step"].items())
    return (f"{row['genes']} genes in {row['wall_s']:.1f} s = {row['genes_per_s']:.2f} genes/s, "
            f"{cpu_genes_per_s(row):.2f} genes/CPU-s (CPU s per step: {per_step})")


def format_report(result: dict[str, Any]) -> list[str]:
    """The printed report: each side's rates and CPU per step, then the ratios."""
    stack, workers, ratio = result["full_stack"], result["workers"], result["ratio"]
    runs = result["plain_runs"]
    short_s = ", ".join(f"{s:.1f}" for s in stack["short_runs_s"])
    long_s = ", ".join(f"{s:.1f}" for s in stack["long_runs_s"])
    return [
        f"date: {result['date_utc']}  machine: {json.dumps(result['machine'])}",
        f"load average (1, 5, 15 min): start {result['load_average_start']}  end {result['load_average_end']}",
        (f"store {result['store']}, micro-batch {result['micro_batch_size']} per process, "
         f"{result['max_seq_len_tokens']}-token windows, first {result['skip_steps']} steps of each run untimed"),
        (f"plain loop, {workers} threads: {_side(result['plain_threads'])}; before "
         f"{runs['before'][0]['genes_per_s']:.2f}, after {runs['after'][1]['genes_per_s']:.2f} genes/s"),
        (f"plain loop, 1 thread: {_side(result['plain_one_thread'])}; before "
         f"{runs['before'][1]['genes_per_s']:.2f}, after {runs['after'][0]['genes_per_s']:.2f} genes/s"),
        f"full stack, {workers} Ray workers, ZeRO-2: {_side(stack)}",
        (f"  runs of {result['skip_steps']} steps took {short_s} s; of {result['steps']} steps {long_s} s; "
         f"last step alone {stack['last_step_genes_per_s']:.2f} genes/s"),
        (f"full stack / plain loop ({workers} threads): {ratio:.3f}; goal >= {RATIO_GOAL}: "
         f"{'met' if ratio >= RATIO_GOAL else 'NOT met'}"),
        f"full stack / ({workers} x plain loop, 1 thread): {result['ratio_per_core']:.3f} (per-core, wall)",
        f"full stack / plain loop, 1 thread, genes per CPU second: {result['cpu_ratio']:.3f} (CPU efficiency)",
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the report, write `--json` if given; returns the result dict."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE, help="gene store the demo config trains on")
    parser.add_argument("--steps", type=int, default=210, help="optimizer steps of each long Ray run")
    parser.add_argument("--skip-steps", type=int, default=10, help="untimed first steps (the short Ray runs)")
    parser.add_argument("--repeats", type=int, default=2, help="short + long Ray run pairs")
    parser.add_argument("--plain-steps", type=int, default=60, help="steps of each plain loop run")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers; also the plain loop's threads")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides for both sides")
    args = parser.parse_args(argv)
    if not 1 <= args.skip_steps < min(args.steps, args.plain_steps) or args.workers < 1 or args.repeats < 1:
        parser.error("need 1 <= --skip-steps < --steps, --plain-steps; --workers, --repeats >= 1")
    try:
        result = run_benchmark(args.store.resolve(), args.steps, args.skip_steps, args.repeats, args.plain_steps,
                               args.workers, args.overrides)
    except GpError as error:
        parser.error(str(error))
    result["command"] = shlex.join([".venv/bin/python", "tools/bench_training.py", *argv])
    print("\n".join(format_report(result)), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
