"""Stream throughput: raw block reads of a gene store, the training stream, and the rate training consumes.

Usage (from the repository root):
    .venv/bin/python tools/bench_stream.py --store PATH [--seconds 5] [--rounds 3] [--train-steps 20]
                                           [--dna-genes 2000] [--json OUT]

Measured in one process for the `--store` (protein, the demo config's tiny-protein model) and for a
SYNTHETIC DNA store of `--dna-genes` genes built here with `make_synthetic` + `gp ingest` (tiny-dna
model, 6-mer tokenizer; `--dna-genes 0` skips it). Every rate is genes per second of wall time and
genes per second of this process's CPU time (all its threads; on a shared machine wall > CPU):
- raw read: every gene of the store through `GeneStore.read_block` in the store's shard blocks
  (`shards(split)` of train, valid and test, in store order), repeated for `--seconds`; also in MB/s
  of residues (10^6 bytes);
- stream: `TrainStream` (rank 0 of 1, the config's shuffle buffer) with real windowing and
  tokenisation (`data.max_seq_len_tokens` = 256 tokens, one random window per gene), then `collate`
  into micro-batches of `train.micro_batch_size` = 8, for `--seconds`;
- consumption: `worker.train_step` of the in-process DeepSpeed engine (world of one, ZeRO-2, fp32),
  timed over `--train-steps` steps after one untimed step. Its time includes the step's own stream
  reads (at most 1/ratio of it).
The three run in turn, `--rounds` times, so a load change on the machine hits all three; a ratio is
computed per round and the median is reported. Torch runs one thread, as in a Ray worker with
`scaling.cpus_per_worker=1` (Ray sets OMP_NUM_THREADS to the worker's CPUs); the stream is single-
threaded Python plus the Rust tokenizer, so "genes per CPU second" of the stream is the per-core rate.
Goals (issue 4, item 9): stream / consumption >= 20x, stream / raw read >= 50 %. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("DS_ACCELERATOR", "cpu")  # before deepspeed is imported (through worker)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from gp_distributed.config import GPConfig, load_config
from gp_distributed.data.collate import collate
from gp_distributed.data.schema import SPLIT_NAMES
from gp_distributed.data.store import GeneStore, open_store
from gp_distributed.data.stream import TrainStream
from gp_distributed.data.tokenize import GeneWindower, tokenizer_for
from gp_distributed.errors import GpError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO_ROOT / "configs" / "demo.yaml"
STREAM_GOAL_X = 20.0
RAW_GOAL_PERCENT = 50.0

# (genes, residue bytes) handled by one call of a measured step
Step = Callable[[], tuple[int, int]]


@dataclass(frozen=True)
class Rate:
    """Work done in one timed loop: genes, residue bytes, wall and process CPU seconds."""

    genes: int
    residue_bytes: int
    wall_s: float
    cpu_s: float

    @property
    def genes_per_s(self) -> float:
        return self.genes / self.wall_s

    @property
    def genes_per_cpu_s(self) -> float:
        return self.genes / self.cpu_s

    @property
    def mb_per_s(self) -> float:
        return self.residue_bytes / 1e6 / self.wall_s

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "genes_per_s": self.genes_per_s, "genes_per_cpu_s": self.genes_per_cpu_s,
                "mb_per_s": self.mb_per_s}


def timed_loop(step: Step, seconds: float, min_calls: int = 1) -> Rate:
    """Call `step` until `seconds` have passed and at least `min_calls` calls are done."""
    genes = residue_bytes = calls = 0
    wall, cpu = time.perf_counter(), time.process_time()
    while calls < min_calls or time.perf_counter() - wall < seconds:
        done_genes, done_bytes = step()
        genes, residue_bytes, calls = genes + done_genes, residue_bytes + done_bytes, calls + 1
    return Rate(genes, residue_bytes, time.perf_counter() - wall, time.process_time() - cpu)


def raw_read_step(store: GeneStore) -> Step:
    """One pass over every gene of the store in its shard blocks (one residue read per block)."""
    blocks = [shard for split in SPLIT_NAMES for shard in store.shards(split)]

    def step() -> tuple[int, int]:
        genes = residue_bytes = 0
        for shard in blocks:
            records = store.read_block(shard.start, shard.stop)
            genes += len(records)
            residue_bytes += sum(len(record.sequence) for record in records)
        return genes, residue_bytes

    return step


def stream_step(store: GeneStore, config: GPConfig) -> Step:
    """One collated micro-batch from a rank-0-of-1 `TrainStream` with the run's tokenizer and windows."""
    tokenizer = tokenizer_for(config.model, store.alphabet, config.data.kmer_size)
    windower = GeneWindower.from_config(tokenizer, config.data)
    stream = TrainStream(store, windower, rank=0, world_size=1, seed=config.train.seed,
                         shuffle_buffer_genes=config.data.shuffle_buffer_genes)
    n_concepts, n_labels, size = len(store.concept_ids), len(store.label_ids), config.train.micro_batch_size
    lengths = store.seq_offsets[1:] - store.seq_offsets[:-1]

    def step() -> tuple[int, int]:
        examples = [next(stream) for _ in range(size)]
        collate(examples, int(tokenizer.pad_token_id), n_concepts, n_labels, config.data.max_go_terms)
        return size, int(lengths[[example.gene_index for example in examples]].sum())

    return step


def train_step_of(config: GPConfig) -> Step:
    """One in-process DeepSpeed optimizer step (after one untimed warm-up step)."""
    from gp_distributed.train import worker
    from gp_distributed.train.ranks import init_single_process_group

    state = worker.setup(config, init_single_process_group())
    genes_per_step = config.train.micro_batch_size * config.train.grad_accum_steps
    worker.train_step(state)

    def step() -> tuple[int, int]:
        worker.train_step(state)
        return genes_per_step, 0

    return step


def build_dna_store(scratch: Path, n_genes: int) -> tuple[Path, list[str]]:
    """A SYNTHETIC DNA store of `n_genes` genes (make_synthetic, then `gp ingest`); returns it and the argv."""
    from gp_distributed.cli import main as gp_main
    from gp_distributed.synthetic.generator import make_synthetic

    data = make_synthetic(scratch / "synthetic", n_genes=n_genes, seed=0)
    out = scratch / "synthetic_dna.zarr"
    # The flags of tests/integration/test_ingest_cli.py, with the demo's 64-gene shards.
    argv = ["ingest", "--quiet", "--alphabet", "dna", "--labels-format", "mgi", "--go-format", "gaf",
            "--min-genes", "3", "--fasta", str(data.fasta), "--id-map", str(data.id_map),
            "--labels", str(data.labels), "--ontology", str(data.mp_obo), "--go", str(data.gaf),
            "--go-ontology", str(data.go_obo), "--out", str(out),
            "ingest.min_concept_genes=2", "ingest.genes_per_shard=64"]
    with contextlib.redirect_stdout(io.StringIO()):
        if gp_main(argv) != 0:
            raise RuntimeError(f"gp {shlex.join(argv)} failed")
    return out, ["gp", *argv]


def store_config(store: Path, storage: Path, overrides: list[str]) -> GPConfig:
    """configs/demo.yaml on `store`, with no tracking and checkpoints under `storage`."""
    return load_config(DEMO_CONFIG, [f"data.store={store}", f"train.storage_path={storage}",
                                     "tracking.enabled=false", *overrides])


def measure_store(config: GPConfig, seconds: float, rounds: int, train_steps: int) -> dict[str, Any]:
    """The three rates, `rounds` times in turn, and the median of each round's ratios."""
    store = open_store(config.data.store)
    raw, stream, train = raw_read_step(store), stream_step(store, config), train_step_of(config)
    per_round = []
    for _ in range(rounds):
        rates = {"raw_read": timed_loop(raw, seconds), "stream": timed_loop(stream, seconds),
                 "consumption": timed_loop(train, 0.0, train_steps)}
        per_round.append({name: rate.as_dict() for name, rate in rates.items()})

    def median(name: str, key: str) -> float:
        return statistics.median(r[name][key] for r in per_round)

    def ratio(top: str, bottom: str, key: str) -> float:
        return statistics.median(r[top][key] / r[bottom][key] for r in per_round)

    return {
        "store": str(config.data.store), "alphabet": store.alphabet, "n_genes": store.n_genes,
        "residues": int(store.seq_offsets[-1]), "backbone_preset": config.model.backbone_preset,
        "max_seq_len_tokens": config.data.max_seq_len_tokens, "micro_batch_size": config.train.micro_batch_size,
        "rounds": per_round,
        "median": {name: {key: median(name, key) for key in ("genes_per_s", "genes_per_cpu_s", "mb_per_s")}
                   for name in ("raw_read", "stream", "consumption")},
        "stream_over_consumption_x": ratio("stream", "consumption", "genes_per_s"),
        "stream_over_consumption_cpu_x": ratio("stream", "consumption", "genes_per_cpu_s"),
        "stream_over_raw_percent": 100 * ratio("stream", "raw_read", "genes_per_s"),
        "stream_over_raw_cpu_percent": 100 * ratio("stream", "raw_read", "genes_per_cpu_s"),
    }


def machine() -> dict[str, Any]:
    """Cores usable by this process (what `nproc` prints), platform, Python and library versions."""
    import deepspeed
    import ray
    import tokenizers
    import zarr

    return {"cores": len(os.sched_getaffinity(0)), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__, "deepspeed": deepspeed.__version__,
            "ray": ray.__version__, "zarr": zarr.__version__, "tokenizers": tokenizers.__version__}


def run_benchmark(store: Path, seconds: float, rounds: int, train_steps: int, dna_genes: int) -> dict[str, Any]:
    """Every measurement of one run, JSON-ready."""
    torch.set_num_threads(1)
    load_start = os.getloadavg()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_stream_") as scratch:
        scratch_dir = Path(scratch)
        results["protein"] = measure_store(store_config(store, scratch_dir / "runs", []), seconds, rounds, train_steps)
        if dna_genes > 0:
            dna_store, ingest_argv = build_dna_store(scratch_dir, dna_genes)
            config = store_config(dna_store, scratch_dir / "runs", ["model.backbone_preset=tiny-dna"])
            results["dna"] = measure_store(config, seconds, rounds, train_steps) | {"ingest_command": ingest_argv}
    return {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "seconds": seconds, "rounds_run": rounds, "train_steps": train_steps, "stores": results,
    }


def format_report(result: dict[str, Any]) -> Iterator[str]:
    """The printed report: per store a table of median rates, then the ratios against their goals."""
    yield f"date: {result['date_utc']}  machine: {json.dumps(result['machine'])}"
    yield f"load average (1, 5, 15 min): start {result['load_average_start']}  end {result['load_average_end']}"
    for name, row in result["stores"].items():
        yield (f"[{name}] {row['store']}: {row['n_genes']} genes, {row['residues']} residues, "
               f"{row['backbone_preset']}, {row['max_seq_len_tokens']}-token windows, micro-batch "
               f"{row['micro_batch_size']}, median of {len(row['rounds'])} rounds")
        yield f"{'measurement':<14} {'genes/s':>10} {'genes/cpu-s':>12} {'MB/s':>9}"
        for what, rate in row["median"].items():
            mb_per_s = f"{rate['mb_per_s']:9.2f}" if what != "consumption" else f"{'-':>9}"  # steps count no bytes
            yield f"{what:<14} {rate['genes_per_s']:10.1f} {rate['genes_per_cpu_s']:12.1f} {mb_per_s}"
        over_x, over_raw = row["stream_over_consumption_x"], row["stream_over_raw_percent"]
        yield (f"[{name}] stream / consumption: {over_x:.2f} x (wall), {row['stream_over_consumption_cpu_x']:.2f} x "
               f"(CPU); goal >= {STREAM_GOAL_X:.0f} x: {'met' if over_x >= STREAM_GOAL_X else 'NOT met'}")
        yield (f"[{name}] stream / raw read: {over_raw:.2f} % (wall), {row['stream_over_raw_cpu_percent']:.2f} % "
               f"(CPU); goal >= {RAW_GOAL_PERCENT:.0f} %: {'met' if over_raw >= RAW_GOAL_PERCENT else 'NOT met'}")
        yield (f"[{name}] stream per core: {row['median']['stream']['genes_per_cpu_s']:.1f} genes/s, "
               f"{row['median']['stream']['genes_per_cpu_s'] * row['residues'] / row['n_genes'] / 1e6:.3f} MB/s")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the report, write `--json` if given; returns the result dict."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True, help="protein gene store (e.g. the demo store)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per raw-read and stream loop")
    parser.add_argument("--rounds", type=int, default=3, help="raw/stream/consumption rounds; medians reported")
    parser.add_argument("--train-steps", type=int, default=20, help="timed train steps per round")
    parser.add_argument("--dna-genes", type=int, default=2000, help="genes of the synthetic DNA store; 0 skips it")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.seconds < 0 or args.rounds < 1 or args.train_steps < 1 or args.dna_genes < 0:
        parser.error("--seconds must be >= 0, --rounds and --train-steps >= 1, --dna-genes >= 0")
    try:
        result = run_benchmark(args.store, args.seconds, args.rounds, args.train_steps, args.dna_genes)
    except GpError as error:
        parser.error(str(error))
    result["command"] = shlex.join([".venv/bin/python", "tools/bench_stream.py", *argv])
    print("\n".join(format_report(result)), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
