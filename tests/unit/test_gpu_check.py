"""The GPU check (tools/gpu/): its wheel list covers what the package imports that the device image lacks,
its summary records every item, and `check.sh --dry-run` runs every item on CPU."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GPU_TOOLS = REPO / "tools" / "gpu"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"gpu_{name}", GPU_TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


checklib = _load("checklib")


def _top_level_imports(path: Path) -> set[str]:
    """Absolute top-level module names `path` imports anywhere (function-local ones included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _checked_sources() -> list[Path]:
    """The package, the GPU tools and the files the device runs pytest on."""
    gpu_tests = [p for p in (REPO / "tests").rglob("test_*.py")
                 if "pytest.mark." + "gpu" in p.read_text()]  # split: this file is not one of them
    return [*sorted((REPO / "gp_distributed").rglob("*.py")), *sorted(GPU_TOOLS.glob("*.py")),
            REPO / "tests" / "conftest.py", *gpu_tests]


def test_wheel_list_parses_and_pins_one_version_each() -> None:
    wheels, excluded = checklib.read_wheel_list()
    assert wheels and all(w.version[0].isdigit() for w in wheels)
    assert len({w.key for w in wheels}) == len(wheels)
    assert {w.key for w in wheels if w.build} == {"deepspeed"}
    assert {w.group for w in wheels} <= {None, "mlflow"}
    assert "ray" in excluded and all(excluded.values()), "every exclusion says why"
    assert not {w.key for w in wheels} & set(excluded)


def test_wheel_list_covers_every_import_the_device_image_lacks() -> None:
    wheels, excluded = checklib.read_wheel_list()
    covered = checklib.read_device_image() | {w.key for w in wheels} | set(excluded)
    owners = metadata.packages_distributions()
    local = {"gp_distributed", "tests", "checklib", "bench_gpu_step", "wheelhouse", "bench_mfu"}
    uncovered = {}
    for path in _checked_sources():
        for name in _top_level_imports(path) - local:
            if name in sys.stdlib_module_names or name == "__future__":
                continue
            distributions = {checklib.normalize(d) for d in owners.get(name, [name])}
            if not distributions & covered:
                uncovered.setdefault(name, []).append(str(path.relative_to(REPO)))
    assert uncovered == {}, "imported, neither in the device image nor in tools/gpu/wheels.txt"


def test_device_image_list_has_the_image_packages() -> None:
    image = checklib.read_device_image()
    assert {"torch", "transformers", "numpy", "pytest", "pyyaml", "psutil"} <= image
    assert not {"deepspeed", "ray", "mlflow", "zarr", "pydantic", "fastobo"} & image


def test_wheel_file_names() -> None:
    parse = checklib.wheel_file_name_version
    assert parse("pydantic_core-2.50.5-cp312-cp312-manylinux2014_x86_64.whl") == ("pydantic-core", "2.50.5")
    assert parse("deepspeed-0.19.8-py3-none-any.whl") == ("deepspeed", "0.19.8")
    assert parse("README.txt") is None


def test_metadata_stubs_answer_only_for_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = metadata.version

    def version(name: str) -> str:
        if name in ("ray", "gp_distributed", "mlflow"):
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(checklib.metadata, "version", version)
    written = checklib.metadata_stubs(tmp_path)
    assert written == {"ray": "0+absent", "gp_distributed": checklib._project_version(),
                       "mlflow": real("mlflow-skinny")}  # the module's own version: MLflow warns on a mismatch
    found = {d.metadata["Name"]: d.version for d in metadata.distributions(path=[str(tmp_path)])}
    assert found == written


def test_summary_marks_items_a_killed_process_never_reached(tmp_path: Path) -> None:
    items, summary, jsonl = tmp_path / "items.jsonl", tmp_path / "summary.json", tmp_path / "sub.jsonl"
    jsonl.write_text(json.dumps({"name": "mfu_a", "status": "ok", "mfu": 0.4, "step_seconds": 1.0,
                                 "achieved_tflops": 300.0, "seconds": 3.0}) + "\n")
    base = ["--items", str(items), "--summary", str(summary)]
    checklib.main(["record", *base, "--name", "install", "--status", "ok", "--seconds", "2"])
    checklib.main(["record", *base, "--name", "mfu", "--status", "timeout", "--rc", "124", "--seconds", "9",
                   "--jsonl", str(jsonl), "--expect", "mfu_a,mfu_b"])
    assert json.loads(summary.read_text())["complete"] is False
    assert checklib.main(["finish", *base]) == 1  # a timeout is a failure of the check
    payload = json.loads(summary.read_text())
    statuses = {item["name"]: item["status"] for item in payload["items"]}
    assert statuses == {"install": "ok", "mfu": "timeout", "mfu_a": "ok", "mfu_b": "timeout"}
    assert payload["complete"] is True and payload["counts"]["timeout"] == 2


@pytest.mark.integration
def test_dry_run_runs_every_item_on_cpu(tmp_path: Path) -> None:
    """check.sh --dry-run: the device script's items on CPU (tiny-dna, fp32, gloo, real DeepSpeed)."""
    # A generous budget: on a loaded 2-core machine the items take minutes, and a budget cut is no failure here.
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable, "GP_CHECK_BUDGET": "560"}
    done = subprocess.run(["bash", str(GPU_TOOLS / "check.sh"), "--dry-run"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=660, check=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (tmp_path / "check.log").is_file()
    statuses = {item["name"]: item["status"] for item in summary["items"]}
    assert summary["complete"] is True and summary["dry_run"] is True
    expected = {"nvidia_smi", "install", "metadata", "imports", "store", "pytest_gpu", "genepheno_zero2",
                "genepheno_zero3", "mfu", "mfu_peak_matmul"}
    mfu_items = {f"mfu_{t}_{a}_ckpt-{c}" for t in (64, 128) for c in ("off", "on")
                 for a in ("sdpa", "sdpa-flash", "sdpa-cudnn", "flash-attention-2")}
    assert set(statuses) == expected | mfu_items
    assert set(statuses.values()) <= set(checklib.STATUSES)
    may_skip = {"nvidia_smi", "install"} | {n for n in mfu_items if "cudnn" in n or "flash-attention-2" in n}
    errors = {item["name"]: item.get("error", "") for item in summary["items"]}
    not_ok = {name: f"{status}: {errors[name][-400:]}" for name, status in statuses.items()
              if status != "ok" and name not in may_skip}
    assert not_ok == {}
    assert done.returncode == 0
    results = {item["name"]: item.get("result", {}) for item in summary["items"]}
    assert results["genepheno_zero3"]["genes_per_second"] > 0 and results["genepheno_zero3"]["zero_stage"] == 3
    assert 0 < results["mfu_128_sdpa_ckpt-on"]["step_seconds"] and results["mfu_128_sdpa_ckpt-on"]["checkpointing_active"]
    assert isinstance(results["imports"]["needs_mlflow"], bool)
