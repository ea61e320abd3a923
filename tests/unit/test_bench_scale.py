"""tools/bench_scale.py's arithmetic: meta-device parameter counts equal a real build, and the ZeRO-3
prediction is the documented formula (the Ray run itself is the benchmark, not a test)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from gp_distributed.config import load_config
from gp_distributed.data.store import open_store
from gp_distributed.train.worker import build_training_model

TOOLS = Path(__file__).resolve().parents[2] / "tools"
sys.path.insert(0, str(TOOLS))
spec = importlib.util.spec_from_file_location("bench_scale_tool", TOOLS / "bench_scale.py")
bench_scale = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench_scale  # dataclasses look their module up by name
spec.loader.exec_module(bench_scale)


def test_meta_device_counts_equal_a_real_build(demo_store: Path) -> None:
    config = load_config(None, [f"data.store={demo_store}"])
    real, _, _ = build_training_model(config, open_store(demo_store))
    total = sum(p.numel() for p in real.parameters())
    trained = sum(p.numel() for p in real.parameters() if p.requires_grad)
    assert bench_scale.count_parameters(config) == (total, trained)
    assert 0 < trained < total


def test_zero3_prediction_formula() -> None:
    gib = 2**30
    assert bench_scale.zero3_states_gib(parameters=gib, trained=gib // 4, workers=2) == pytest.approx((4 + 4) / 2)
    config = load_config(None, ["train.zero3_live_parameters=1000", "train.zero3_prefetch_parameters=24"])
    assert bench_scale.zero3_working_set_gib(config) == pytest.approx(4 * 1024 / gib)
