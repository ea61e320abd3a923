"""The whole real HPO bundle: GenePheno and its ablations against the baselines, on the test split.

    .venv/bin/python tools/bench_hpo.py --out build/bench_hpo [--steps N] [--workers 0]

Ingests configs/hpo-protein.yaml (if the store is missing), scores the naive, k-mer LR and k-mer
nearest-neighbour baselines, trains the full model and each ablation (no GO branch, no exclusivity,
no bottleneck loss, BCE instead of the contrastive loss) with the hyperparameters of
configs/hpo-protein.yaml (chosen on the bundle's validation genes, never on its test split), evaluates
every checkpoint on the test split, and prints a per-bin Fmax / AUC table (also saved as JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("DS_ACCELERATOR", "cpu")

from gp_distributed.commands.baseline import evaluate_baseline  # noqa: E402
from gp_distributed.commands.evaluate import evaluate_checkpoint  # noqa: E402
from gp_distributed.commands.train import run_training  # noqa: E402
from gp_distributed.config import load_config  # noqa: E402
from gp_distributed.train.launcher import ensure_store, resolve_paths  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "hpo-protein.yaml"
ABLATIONS = {
    "genepheno": [],
    "no GO branch": ["model.go_branch.enabled=false"],
    "no exclusivity": ["loss.lambda_exclusive=0"],
    "no bottleneck loss": ["loss.lambda_concept=0"],
    "BCE loss": ["loss.kind=bce"],
}
BASELINE_NAMES = ("naive", "kmer-lr", "kmer-knn")


def _training_overrides(args: argparse.Namespace, run_name: str) -> list[str]:
    """Where a benchmark run differs from `gp train --config configs/hpo-protein.yaml`: its own run
    directory, no MLflow run to register, one evaluation and one checkpoint at the end."""
    overrides = [
        f"train.storage_path={args.out / 'runs'}", f"train.run_name={run_name}", "tracking.enabled=false",
        f"scaling.num_workers={args.workers}",
    ]
    if args.steps is not None:
        overrides.append(f"train.max_steps={args.steps}")
    steps = args.steps or load_config(CONFIG).train.max_steps
    return [*overrides, f"train.eval_every={steps}", f"train.ckpt_every={steps}"]


def run(args: argparse.Namespace) -> dict[str, dict]:
    base = resolve_paths(load_config(CONFIG))
    ensure_store(base)
    store = base.data.store
    results: dict[str, dict] = {}
    for name in () if args.skip_baselines else BASELINE_NAMES:
        started = time.perf_counter()
        results[f"baseline {name}"] = evaluate_baseline(name, store, "test")
        print(f"baseline {name}: {time.perf_counter() - started:.0f} s", flush=True)
    for name, extra in ABLATIONS.items():
        run_name = name.replace(" ", "-")
        config = load_config(CONFIG, [*_training_overrides(args, run_name), *extra])
        started = time.perf_counter()
        result = run_training(config)
        results[name] = evaluate_checkpoint(result.checkpoint_dir, store, "test", show_progress=False)
        print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)
    return results


def format_markdown(results: dict[str, dict]) -> str:
    subsets = list(next(iter(results.values())).keys())
    header = "| model | " + " | ".join(f"{s} Fmax / AUC" for s in subsets) + " |"
    lines = [header, "|---|" + "---|" * len(subsets)]
    for model, per_subset in results.items():
        cells = [f"{100 * per_subset[s]['fmax']:.2f} / {100 * per_subset[s]['auc']:.2f}" for s in subsets]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/bench_hpo"))
    parser.add_argument("--steps", type=int, help="optimizer steps (default: the config's train.max_steps)")
    parser.add_argument("--workers", type=int, default=0, help="0: in-process DeepSpeed, world size 1")
    parser.add_argument("--skip-baselines", action="store_true", help="train and score the models only")
    args = parser.parse_args(argv)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    results = run(args)
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    print(format_markdown(results))
    return results


if __name__ == "__main__":
    main()
