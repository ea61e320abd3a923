"""Ingest throughput: a full `run_ingest` of a bundle against plain gzip decompression of its inputs.

Usage:
    .venv/bin/python tools/bench_ingest.py [--bundle DIR] [--repeats 3] [--json OUT]

Measured in one process, each the best (by wall time) of `--repeats` runs, in seconds (wall and
process CPU; on a shared machine contention shows as wall > CPU):
- decompression: read every input file of the ingest and gunzip the .gz ones (`gzip.decompress`,
  one call per file; plain TSVs are only read). Throughput in MB/s (10^6 bytes) of input as stored;
- ingest: `run_ingest` of the bundle into a temporary directory (settings of configs/hpo-protein.yaml,
  every input path replaced by the file of the same name in `--bundle`), each run with an empty
  parsed-ontology cache (a first ingest of these files);
- warm ingest: the same with the two ontologies already in the parsed-ontology cache (any later ingest
  or `gp predict --new-data` with the same OBO files);
- ratio: decompression wall time / ingest wall time, i.e. "ingest at X % of decompression speed";
- phases (cache off): the public readers one by one, `write_store` of the built content, and the rest
  of `build_store_content` (propagation, filters, split, pair mining, sha256 of sources) derived as
  build time minus the readers' times.
Printed: a table (phases with their share of the ingest's CPU time), the machine (cores, Python,
fastobo/zarr/numpy versions) and the load average at start and end; `--json` writes the same
numbers. A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import fastobo
import numpy as np
import zarr
from tqdm import tqdm

from gp_distributed.config import IngestConfig, load_config
from gp_distributed.data.store import StoreContent, write_store
from gp_distributed.errors import InputError
from gp_distributed.ingest.fasta import read_fasta
from gp_distributed.ingest.go_annotations import read_go_annotations
from gp_distributed.ingest.id_map import read_id_map
from gp_distributed.ingest.labels import read_labels
from gp_distributed.ingest.pipeline import build_store_content, run_ingest
from gp_distributed.ontology.obo import load_ontology

_REPO_ROOT = Path(__file__).resolve().parents[1]
_CONFIG = _REPO_ROOT / "configs" / "hpo-protein.yaml"
_DEFAULT_BUNDLE = _REPO_ROOT.parent / "shared" / "data" / "hpo-human-2025"
_INPUT_ROLES = ("fasta", "id_map", "labels", "ontology", "go", "go_ontology", "exclusive_pairs")
_REST_OF_BUILD = "rest of build_store_content (derived)"


@dataclass(frozen=True)
class Timing:
    """Best-of-N timing, in seconds."""

    wall_s: float
    cpu_s: float


def best_of(fn: Callable[[], object], repeats: int) -> Timing:
    """Wall and process CPU time of the fastest (by wall time) of `repeats` calls of `fn`."""
    best = Timing(float("inf"), float("inf"))
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        elapsed = Timing(time.perf_counter() - wall, time.process_time() - cpu)
        best = min(best, elapsed, key=lambda t: t.wall_s)
    return best


@contextlib.contextmanager
def ontology_cache_at(directory: Path | None) -> Iterator[None]:
    """Point the parsed-ontology cache (GP_CACHE_DIR) at `directory`, or turn it off with None."""
    previous = os.environ.get("GP_CACHE_DIR")
    os.environ["GP_CACHE_DIR"] = "" if directory is None else str(directory)
    try:
        yield
    finally:
        if previous is None:
            del os.environ["GP_CACHE_DIR"]
        else:
            os.environ["GP_CACHE_DIR"] = previous


def bundle_config(bundle: Path, out: Path) -> IngestConfig:
    """configs/hpo-protein.yaml's ingest settings with each input taken from `bundle` by file name."""
    base = load_config(_CONFIG).ingest
    paths: dict[str, Any] = {
        f"ingest.{role}": bundle / Path(getattr(base, role)).name
        for role in _INPUT_ROLES
        if getattr(base, role) is not None
    }
    return load_config(_CONFIG, typed_values={**paths, "ingest.out": out, "ingest.overwrite": True}).ingest


def input_files(config: IngestConfig) -> list[Path]:
    """Every distinct input file the ingest reads, in role order."""
    paths = (getattr(config, role) for role in _INPUT_ROLES)
    return list(dict.fromkeys(Path(p) for p in paths if p is not None))


def decompress_all(paths: list[Path]) -> int:
    """Read each file, gunzip it when it is gzip (by magic bytes, as the readers do); total output bytes."""
    total = 0
    for path in paths:
        raw = path.read_bytes()
        total += len(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    return total


def phase_timings(config: IngestConfig, scratch: Path, repeats: int) -> dict[str, Timing]:
    """Best-of-`repeats` timing of each ingest phase through the package's public functions."""
    readers: dict[str, Callable[[], object]] = {
        f"load_ontology {config.ontology.name} (is_a)": lambda: load_ontology(config.ontology, ("is_a",)),
        f"load_ontology {config.go_ontology.name} (is_a, part_of)": lambda: load_ontology(
            config.go_ontology, ("is_a", "part_of")
        ),
        f"read_fasta {config.fasta.name}": lambda: read_fasta(config.fasta, config.alphabet),
        f"read_id_map {config.id_map.name}": lambda: read_id_map(config.id_map),
        f"read_labels {config.labels.name}": lambda: read_labels(
            config.labels, config.labels_format, mgi_targeted_only=config.mgi_targeted_only
        ),
        f"read_go_annotations {config.go.name}": lambda: read_go_annotations(
            config.go, config.go_format, taxon=config.go_taxon, evidence_exclude=config.go_evidence_exclude
        ),
    }
    timings = {name: best_of(fn, repeats) for name, fn in readers.items()}
    built: list[StoreContent] = []  # the content of the last build, kept for timing the store write

    def build() -> None:
        built[:] = [build_store_content(config, tqdm(disable=True))]

    whole_build = best_of(build, repeats)
    # Derived from two best-of-N figures: noisy on a loaded machine, and it can come out negative
    # where the rest is small (the demo bundle).
    timings[_REST_OF_BUILD] = Timing(
        whole_build.wall_s - sum(t.wall_s for t in timings.values()),
        whole_build.cpu_s - sum(t.cpu_s for t in timings.values()),
    )
    timings["build_store_content (the readers above + the rest)"] = whole_build
    store = scratch / "phase_store.zarr"
    timings["write_store"] = best_of(
        lambda: write_store(
            built[0],
            store,
            residues_per_chunk=config.residues_per_chunk,
            chunks_per_shard=config.chunks_per_shard,
            overwrite=True,
        ),
        repeats,
    )
    return timings


def machine() -> dict[str, Any]:
    """Cores usable by this process (what `nproc` prints), platform, Python and library versions."""
    return {
        "cores": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "fastobo": fastobo.__version__,
        "zarr": zarr.__version__,
        "numpy": np.__version__,
    }


def run_benchmark(bundle: Path, repeats: int) -> dict[str, Any]:
    """All measurements of one run, as a JSON-ready dict (seconds, MB/s, percent)."""
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as scratch:
        config = bundle_config(bundle, Path(scratch) / "store.zarr")
        files = input_files(config)
        for path in files:
            if not path.is_file():
                raise InputError(path, "no such file (inputs are looked up by name in --bundle)")
        stored_bytes = sum(p.stat().st_size for p in files)
        decompression = best_of(lambda: decompress_all(files), repeats)
        def cold_ingest() -> None:
            with ontology_cache_at(Path(tempfile.mkdtemp(dir=scratch))):
                run_ingest(config, show_progress=False)

        ingest = best_of(cold_ingest, repeats)
        with ontology_cache_at(Path(scratch) / "warm-cache"):
            run_ingest(config, show_progress=False)  # fills the cache
            warm_ingest = best_of(lambda: run_ingest(config, show_progress=False), repeats)
        with ontology_cache_at(None):
            phases = phase_timings(config, Path(scratch), repeats)
    return {
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "bundle": str(bundle),
        "repeats": repeats,
        "input_files": [p.name for p in files],
        "input_mb": stored_bytes / 1e6,
        "decompressed_mb": decompress_all(files) / 1e6,
        "decompression": {**vars(decompression), "mb_per_s": stored_bytes / 1e6 / decompression.wall_s},
        "ingest": {**vars(ingest), "mb_per_s": stored_bytes / 1e6 / ingest.wall_s},
        "warm ingest": {**vars(warm_ingest), "mb_per_s": stored_bytes / 1e6 / warm_ingest.wall_s},
        "ratio_percent": 100.0 * decompression.wall_s / ingest.wall_s,
        "ratio_cpu_percent": 100.0 * decompression.cpu_s / ingest.cpu_s,
        "warm_ratio_percent": 100.0 * decompression.wall_s / warm_ingest.wall_s,
        "warm_ratio_cpu_percent": 100.0 * decompression.cpu_s / warm_ingest.cpu_s,
        "phases": {name: vars(timing) for name, timing in phases.items()},
    }


def format_report(result: dict[str, Any]) -> list[str]:
    """The printed table: totals, the ratio, then the phases with their share of the ingest's CPU time
    (on a shared machine the phases' wall times, taken at other moments than the ingest's, need not add up)."""
    ingest_cpu = result["ingest"]["cpu_s"]
    lines = [
        f"date: {result['date_utc']}  machine: {json.dumps(result['machine'])}",
        f"load average (1, 5, 15 min): start {result['load_average_start']}  end {result['load_average_end']}",
        f"bundle: {result['bundle']}  ({result['input_mb']:.2f} MB stored, {result['decompressed_mb']:.2f} MB "
        f"decompressed, best of {result['repeats']})",
        f"{'measurement':<58} {'wall s':>8} {'cpu s':>8} {'MB/s':>8}",
    ]
    for name in ("decompression", "ingest", "warm ingest"):
        row = result[name]
        lines.append(f"{name:<58} {row['wall_s']:8.3f} {row['cpu_s']:8.3f} {row['mb_per_s']:8.2f}")
    lines.append(
        f"ingest at {result['ratio_percent']:.2f} % of decompression speed (wall; goal >= 50 %), "
        f"{result['ratio_cpu_percent']:.2f} % by CPU time"
    )
    lines.append(
        f"warm ingest at {result['warm_ratio_percent']:.2f} % of decompression speed (wall), "
        f"{result['warm_ratio_cpu_percent']:.2f} % by CPU time"
    )
    lines.append(f"{'phase (parsed-ontology cache off)':<58} {'wall s':>8} {'cpu s':>8} {'% cpu':>8}")
    for name, row in result["phases"].items():
        share = 100.0 * row["cpu_s"] / ingest_cpu
        lines.append(f"{name:<58} {row['wall_s']:8.3f} {row['cpu_s']:8.3f} {share:8.1f}")
    return lines


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table, write `--json` if given; returns the result dict."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=_DEFAULT_BUNDLE, help="directory with the bundle's files")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the best is kept")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")

    try:
        result = run_benchmark(args.bundle, args.repeats)
    except InputError as error:
        parser.error(str(error))
    result["command"] = shlex.join([".venv/bin/python", "tools/bench_ingest.py", *argv])
    print("\n".join(format_report(result)), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
