"""GenePheno and its ablations against every baseline (sequence and GO), on a real bundle's split.

    .venv/bin/python tools/bench_quality.py --config configs/hpo-protein.yaml --split test --out build/bench_hpo
    .venv/bin/python tools/bench_quality.py --config configs/mp-protein.yaml --split test --out build/bench_mp

Ingests the config's store if it is missing, scores the baselines (naive, k-mer LR, k-mer kNN, GO kNN,
GO MLP; the GO ones choose their settings on the validation split), trains the full model and each
ablation with the config's hyperparameters (chosen on validation genes only), scores the model each run
ships (`train.select_best`: its best validation checkpoint) on `--split`, and prints a per-bin
Fmax / AUC table with the best baseline per metric and each model's margin over it (also as JSON).
Settings are chosen with `--split valid`; the test split is scored once per configuration shipped.
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
from gp_distributed.evaluation.baselines import BASELINE_NAMES  # noqa: E402
from gp_distributed.train.launcher import ensure_store, resolve_paths  # noqa: E402

# Each ablation changes one thing of the shipped config (docs/benchmarks.md says what each tests).
ABLATIONS = {
    "GenePheno": [],
    "no GO branch": ["model.go_branch.enabled=false"],
    "no exclusivity": ["loss.lambda_exclusive=0"],
    "no bottleneck loss": ["loss.lambda_concept=0"],
    "contrastive loss only": ["loss.kind=contrastive"],
    # A store ingested without the closure of GO inputs under is_a/part_of ({out}: the --out folder).
    "direct GO inputs": ["ingest.go_input_closure=false", "ingest.out={out}/direct_store.zarr",
                         "data.store={out}/direct_store.zarr"],
}


def _training_overrides(args: argparse.Namespace, run_name: str) -> list[str]:
    """Where a benchmark run differs from `gp train --config <config>`: its own run directory and no
    MLflow run to register."""
    overrides = [f"train.storage_path={args.out / 'runs'}", f"train.run_name={run_name}", "tracking.enabled=false",
                 f"scaling.num_workers={args.workers}"]
    return [*overrides, *(f"train.max_steps={args.steps}",) * (args.steps is not None)]


def best_baseline(results: dict[str, dict]) -> dict[str, dict[str, float]]:
    """Per subset and metric, the best value any baseline reached."""
    baselines = [row for name, row in results.items() if name.startswith("baseline ")]
    return {subset: {metric: max(b[subset][metric] for b in baselines) for metric in ("fmax", "auc")}
            for subset in baselines[0]}


def run(args: argparse.Namespace) -> dict[str, dict]:
    base = resolve_paths(load_config(args.config))
    ensure_store(base)
    store = base.data.store
    results: dict[str, dict] = {}
    for name in () if args.skip_baselines else BASELINE_NAMES:
        started = time.perf_counter()
        results[f"baseline {name}"] = evaluate_baseline(name, store, args.split)
        print(f"baseline {name}: {time.perf_counter() - started:.0f} s", flush=True)
    rows = {name: ABLATIONS[name] for name in args.rows} if args.rows else ABLATIONS
    for name, extra in rows.items():
        extra = [override.format(out=args.out) for override in extra]
        config = resolve_paths(load_config(args.config, [*_training_overrides(args, name.replace(" ", "-")), *extra]))
        started = time.perf_counter()
        result = run_training(config)
        results[name] = evaluate_checkpoint(result.model_dir, config.data.store, args.split, show_progress=False)
        print(f"{name}: {time.perf_counter() - started:.0f} s ({result.model_dir.name})", flush=True)
    return results


def format_markdown(results: dict[str, dict]) -> str:
    subsets = list(next(iter(results.values())).keys())
    header = "| model | " + " | ".join(f"{s} Fmax / AUC" for s in subsets) + " |"
    lines = [header, "|---|" + "---|" * len(subsets)]
    for model, per_subset in results.items():
        cells = [f"{100 * per_subset[s]['fmax']:.2f} / {100 * per_subset[s]['auc']:.2f}" for s in subsets]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    if any(name.startswith("baseline ") for name in results):
        best = best_baseline(results)
        lines.append("| **best baseline** | " + " | ".join(
            f"{100 * best[s]['fmax']:.2f} / {100 * best[s]['auc']:.2f}" for s in subsets) + " |")
        for model, per_subset in results.items():
            if not model.startswith("baseline "):
                cells = [f"{100 * (per_subset[s]['fmax'] - best[s]['fmax']):+.2f} / "
                         f"{100 * (per_subset[s]['auc'] - best[s]['auc']):+.2f}" for s in subsets]
                lines.append(f"| {model} vs best baseline | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/hpo-protein.yaml"))
    parser.add_argument("--split", choices=["valid", "test"], default="valid",
                        help="valid while choosing settings; test once per shipped configuration")
    parser.add_argument("--out", type=Path, default=Path("build/bench_quality"))
    parser.add_argument("--steps", type=int, help="optimizer steps (default: the config's train.max_steps)")
    parser.add_argument("--workers", type=int, default=0, help="0: in-process DeepSpeed, world size 1")
    parser.add_argument("--rows", nargs="*", choices=list(ABLATIONS), help="model rows to train (default: all)")
    parser.add_argument("--skip-baselines", action="store_true", help="train and score the models only")
    args = parser.parse_args(argv)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    results = run(args)
    (args.out / f"results_{args.split}.json").write_text(json.dumps(results, indent=1, default=float))
    print(format_markdown(results))
    return results


if __name__ == "__main__":
    main()
