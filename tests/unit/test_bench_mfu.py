"""tools/bench_mfu.py: the analytic LoRA train-step FLOP count agrees with what torch counts, and the tool
reports an MFU that is its own arithmetic (no timing asserted)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

TOOL = Path(__file__).resolve().parents[2] / "tools" / "bench_mfu.py"
spec = importlib.util.spec_from_file_location("bench_mfu_tool", TOOL)
bench_mfu = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench_mfu
spec.loader.exec_module(bench_mfu)


@pytest.mark.parametrize("preset", ["tiny-protein", "tiny-dna"])
def test_analytic_flops_match_torch_flop_counter(preset: str) -> None:
    """Within 8 %: the analytic count also charges the first layer's input gradient, which autograd skips."""
    backbone, vocab = bench_mfu.build(preset, "eager")
    ids = torch.randint(5, vocab, (2, 96))
    with FlopCounterMode(display=False) as counter:
        bench_mfu.train_step(backbone, ids, torch.ones_like(ids), torch.float32)
    ratio = bench_mfu.analytic_step_flops(backbone, 96, 2) / counter.get_total_flops()
    assert 1.0 <= ratio < 1.08, ratio
    frozen = [n for n, p in backbone.named_parameters() if p.grad is not None and "lora_" not in n]
    assert frozen == []  # no weight gradients for frozen weights: the count's premise


def test_tool_reports_its_own_arithmetic(tmp_path: Path) -> None:
    out = tmp_path / "mfu.json"
    assert bench_mfu.main(["--preset", "tiny-protein", "--tokens", "64", "--steps", "1", "--threads", "1",
                           "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    achieved = result["analytic_gflop_per_step"] / result["step_seconds"]
    assert result["achieved_gflops"] == pytest.approx(achieved)
    assert result["mfu"] == pytest.approx(achieved / result["peak_gflops"])
