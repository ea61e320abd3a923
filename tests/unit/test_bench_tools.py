"""tools/bench_stream.py and tools/bench_training.py on tiny settings: they run and report their ratios as numbers.

No timing is asserted (benchmarks on a shared machine); the counts behind each rate and the ratios'
arithmetic are. bench_stream takes ~30 s here (DeepSpeed init twice, a 40-gene synthetic DNA ingest);
the full-stack bench_training run starts a private Ray and three 2-worker jobs (~2 min on the loaded VM).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"
NUMBER = r"(\d+\.\d+)"
TINY = ["train.micro_batch_size=2", "data.max_seq_len_tokens=64", "data.shuffle_buffer_genes=16",
        "model.mlp_hidden_dim=32"]


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{name}_tool", TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench_stream() -> ModuleType:
    return _load("bench_stream")


@pytest.fixture(scope="module")
def bench_training() -> ModuleType:
    return _load("bench_training")


def _run(tool: ModuleType, argv: list[str]) -> tuple[dict[str, Any], str]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = tool.main(argv)
    return result, printed.getvalue()


def test_bench_stream_reports_both_ratios_for_both_alphabets(
    bench_stream: ModuleType, demo_store: Path, tmp_path: Path
) -> None:
    out = tmp_path / "stream.json"
    argv = ["--store", str(demo_store), "--seconds", "0.2", "--rounds", "1", "--train-steps", "1",
            "--dna-genes", "40", "--json", str(out)]
    result, printed = _run(bench_stream, argv)
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert set(result["stores"]) == {"protein", "dna"}
    for name, row in result["stores"].items():
        assert row["alphabet"] == name
        (rates,) = row["rounds"]
        raw, stream, train = rates["raw_read"], rates["stream"], rates["consumption"]
        # Whole passes over the store, whole micro-batches of 8, one step of 8 genes.
        assert raw["genes"] % row["n_genes"] == 0 and raw["genes"] > 0
        assert raw["residue_bytes"] == raw["genes"] // row["n_genes"] * row["residues"]
        assert stream["genes"] % 8 == 0 and stream["genes"] > 0 and stream["residue_bytes"] > 0
        assert train["genes"] == 8 and train["residue_bytes"] == 0
        assert row["stream_over_consumption_x"] == pytest.approx(stream["genes_per_s"] / train["genes_per_s"])
        assert row["stream_over_raw_percent"] == pytest.approx(100 * stream["genes_per_s"] / raw["genes_per_s"])
        over_x = re.search(rf"\[{name}\] stream / consumption: {NUMBER} x \(wall\)", printed)
        over_raw = re.search(rf"\[{name}\] stream / raw read: {NUMBER} % \(wall\)", printed)
        per_core = re.search(rf"\[{name}\] stream per core: {NUMBER} genes/s", printed)
        assert over_x and float(over_x.group(1)) == pytest.approx(row["stream_over_consumption_x"], abs=0.006)
        assert over_raw and float(over_raw.group(1)) == pytest.approx(row["stream_over_raw_percent"], abs=0.006)
        assert per_core and float(per_core.group(1)) == pytest.approx(stream["genes_per_cpu_s"], abs=0.06)
    assert result["stores"]["dna"]["backbone_preset"] == "tiny-dna"
    assert result["stores"]["dna"]["ingest_command"][:5] == ["gp", "ingest", "--quiet", "--alphabet", "dna"]
    assert result["command"].endswith(" ".join(argv))


def test_timed_loop_makes_at_least_the_minimum_calls_and_sums_their_work(bench_stream: ModuleType) -> None:
    step_calls: list[int] = []
    rate = bench_stream.timed_loop(lambda: (step_calls.append(1) or 3, 7), seconds=0.0, min_calls=4)
    assert (len(step_calls), rate.genes, rate.residue_bytes) == (4, 12, 28)


def test_bench_stream_refuses_bad_arguments(bench_stream: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        bench_stream.main(["--store", str(tmp_path), "--rounds", "0"])


def test_plain_loop_times_only_the_steps_after_the_skipped_ones(
    bench_training: ModuleType, demo_store: Path, tmp_path: Path
) -> None:
    config = bench_training.bench_config(demo_store, tmp_path / "runs", TINY)
    timed = bench_training.plain_loop(config, steps=3, skip_steps=1, threads=1)
    assert (timed.steps, timed.genes) == (2, 4)
    assert timed.wall_s > 0 and timed.genes_per_s == pytest.approx(4 / timed.wall_s)
    assert timed.cpu_s["this process"] > 0
    assert timed.as_dict()["cpu_s_per_step"]["this process"] == pytest.approx(timed.cpu_s["this process"] / 2)


def test_bench_training_refuses_bad_step_counts(bench_training: ModuleType) -> None:
    with pytest.raises(SystemExit):
        bench_training.main(["--steps", "5", "--skip-steps", "5"])
    with pytest.raises(SystemExit):
        bench_training.main(["--plain-steps", "10", "--skip-steps", "10"])


@pytest.mark.integration
def test_bench_training_reports_the_full_stack_ratios(
    bench_training: ModuleType, demo_store: Path, tmp_path: Path
) -> None:
    out = tmp_path / "training.json"
    argv = ["--store", str(demo_store), "--steps", "3", "--skip-steps", "1", "--repeats", "1", "--plain-steps", "3",
            "--json", str(out), *TINY]
    result, printed = _run(bench_training, argv)
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    stack = result["full_stack"]
    # 2 timed steps x 2 workers x micro-batch 2; the long run ended at step 3.
    assert (stack["steps"], stack["genes"], stack["final_step"]) == (2, 8, 3)
    assert stack["wall_s"] == pytest.approx(stack["long_runs_s"][0] - stack["short_runs_s"][0])
    for run in (*stack["short_runs_cpu_s"], *stack["long_runs_cpu_s"]):
        assert run["train workers"] > 0 and run["other Ray processes"] > 0 and run["driver"] > 0
    # Plain loops: 2 threads, 1 thread | stack | 1 thread, 2 threads; 2 timed steps of 2 genes each.
    assert [run["genes"] for side in ("before", "after") for run in result["plain_runs"][side]] == [4, 4, 4, 4]
    plain_threads, plain_one = result["plain_threads"], result["plain_one_thread"]
    assert plain_threads["genes"] == plain_one["genes"] == 8
    assert result["ratio"] == pytest.approx(stack["genes_per_s"] / plain_threads["genes_per_s"])
    assert result["ratio_per_core"] == pytest.approx(stack["genes_per_s"] / (2 * plain_one["genes_per_s"]))
    stack_cpu, plain_cpu = sum(stack["cpu_s"].values()), plain_one["cpu_s"]["this process"]
    assert result["cpu_ratio"] == pytest.approx((8 / stack_cpu) / (8 / plain_cpu))
    patterns = {
        "ratio": r"full stack / plain loop \(2 threads\): (-?\d+\.\d+); goal >= 0.95: (?:met|NOT met)",
        "ratio_per_core": r"full stack / \(2 x plain loop, 1 thread\): (-?\d+\.\d+)",
        "cpu_ratio": r"genes per CPU second: (-?\d+\.\d+)",
    }
    for key, pattern in patterns.items():
        found = re.search(pattern, printed)
        assert found is not None and float(found.group(1)) == pytest.approx(result[key], abs=0.0006), key
