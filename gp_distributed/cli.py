"""`gp`: the command line. Each subcommand parses its flags and calls one library function.

Every user error (`GpError`) is printed as one line on stderr with exit status 2; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import UnionType
from typing import Literal, Union, get_args, get_origin

from pydantic import BaseModel

from gp_distributed.config import GPConfig, IngestConfig, load_config
from gp_distributed.console import configure_console
from gp_distributed.errors import ConfigError, GpError, InputError

_VERBOSE_HELP = "also show the libraries' own output (Ray, DeepSpeed, MLflow, transformers logs and warnings)"
_OVERRIDE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*=")


def _add_flags_from_config(parser: argparse.ArgumentParser, model: type[BaseModel]) -> list[str]:
    """One flag per scalar field of a config section (dashes for underscores; help from the field's
    description), so the flags and the config keys cannot drift apart. Returns the field names."""
    names = []
    for name, field in model.model_fields.items():
        kind = field.annotation
        if get_origin(kind) in (Union, UnionType):  # `X | None`
            kind = next(a for a in get_args(kind) if a is not type(None))
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, action="store_true", help=field.description)
        elif get_origin(kind) is Literal:
            parser.add_argument(flag, choices=list(get_args(kind)), help=field.description)
        elif kind in (Path, int, str, float):
            parser.add_argument(flag, type=kind, help=field.description)
        else:
            continue  # tuples and nested sections: config file or key=value overrides
        names.append(name)
    return names


def _check_output(flag: str, path: Path | None, *, directory: bool = False) -> None:
    """Refuse, before any work, an output path that cannot be created as a file (or a directory)."""
    if path is None:
        return
    if path.exists() and path.is_dir() != directory:
        raise InputError(path, f"{flag} must name a {'directory' if directory else 'file'}, this is a "
                               f"{'file' if directory else 'directory'}")
    blocking = next((parent for parent in path.parents if parent.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise InputError(blocking, f"{flag} {path}: a parent is a file, not a directory")


def _config_from_args(args: argparse.Namespace, section: str, flag_names: Sequence[str]) -> GPConfig:
    """The config file, then the flags given (already typed by argparse), then key=value overrides."""
    flags = {f"{section}.{name}": getattr(args, name) for name in flag_names if getattr(args, name) not in (None, False)}
    return load_config(args.config, args.overrides, flags)


def _ingest(args: argparse.Namespace) -> int:
    from gp_distributed.data.store import format_summary
    from gp_distributed.ingest.pipeline import run_ingest

    config = _config_from_args(args, "ingest", args.config_flags)
    summary = run_ingest(config.ingest, show_progress=not args.quiet)
    print(f"wrote {config.ingest.out}")
    for line in format_summary(summary):
        print(line)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from gp_distributed.data.schema import SPLIT_NAMES
    from gp_distributed.data.store import format_summary, open_store

    store = open_store(args.store)
    if not args.quick:
        # Every residue chunk read once, shard by shard: its CRC32C is checked, and a corrupted chunk
        # fails here (naming its shard file) rather than hours into training.
        for split in SPLIT_NAMES:
            for shard in store.shards(split):
                store.read_block(shard.start, shard.stop)
    print(f"{args.store}: schema {store.attrs['schema_version']}, alphabet {store.alphabet}, {store.n_genes} genes"
          + ("" if args.quick else ", residue checksums verified"))
    for line in format_summary(store.summary()):
        print(line)
    return 0


def _train(args: argparse.Namespace) -> int:
    from gp_distributed.commands.train import run_training
    from gp_distributed.evaluation.metrics import format_table

    flags = {"scaling.num_workers": args.workers} if args.workers is not None else {}
    config = load_config(args.config, args.overrides, flags)
    result = run_training(config)
    print(f"run directory: {result.run_dir}")
    print(f"last checkpoint: {result.checkpoint_dir}")
    if result.model_dir != result.checkpoint_dir:
        print(f"model (best validation Fmax): {result.model_dir}")
    for split in ("valid", "test"):
        table = _nested_results(result.model_metrics or result.metrics, split)
        if table:
            print(f"{split} split:")
            print(format_table(table, label=f"{split} terms"))  # the label keeps the two headers apart
    for line in result.finished.summary_lines() if result.finished else []:
        print(line)
    return 0


def _nested_results(metrics: dict, split: str) -> dict[str, dict[str, float]]:
    """{"test/all/fmax": x} -> {"all": {"fmax": x}} for one split."""
    nested: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == split:
            nested.setdefault(parts[1], {})[parts[2]] = value
    return nested


def _evaluate(args: argparse.Namespace) -> int:
    from gp_distributed.commands.evaluate import evaluate_checkpoint
    from gp_distributed.evaluation.metrics import format_table
    from gp_distributed.evaluation.scoring import write_report

    if args.new_data:
        return _evaluate_new_data(args)
    if args.checkpoint is None or args.store is None:
        raise ConfigError("gp evaluate", "--checkpoint/--store", "both required (or --new-data with --model)")
    _check_output("--report", args.report)
    results = evaluate_checkpoint(args.checkpoint, args.store, args.split, show_progress=not args.quiet)
    print(format_table(results))
    if args.report:
        write_report(args.report, {"checkpoint": str(args.checkpoint), "store": str(args.store), "split": args.split,
                                   "results": results})
        print(f"wrote {args.report}")
    return 0


def _gene_inputs(args: argparse.Namespace):
    from gp_distributed.inference.new_genes import GeneInputs

    if args.fasta is None:
        raise ConfigError(f"gp {args.command}", "--fasta", "required")
    return GeneInputs(fasta=args.fasta, id_map=args.id_map, go=args.go, go_format=args.go_format,
                      go_ontology=args.go_ontology, go_taxon=args.go_taxon)


def _evaluate_new_data(args: argparse.Namespace) -> int:
    from gp_distributed.commands.evaluate import run_new_data_evaluation
    from gp_distributed.evaluation.metrics import format_table
    from gp_distributed.inference.new_data import LabelInputs
    from gp_distributed.inference.new_genes import format_unknown

    for flag in ("model", "labels", "labels_format", "ontology"):
        if getattr(args, flag) is None:
            raise ConfigError("gp evaluate --new-data", "--" + flag.replace("_", "-"), "required")
    _check_output("--report", args.report)
    _check_output("--plots-dir", args.plots_dir, directory=True)
    labels = LabelInputs(labels=args.labels, labels_format=args.labels_format, ontology=args.ontology)
    evaluation = run_new_data_evaluation(args.model, _gene_inputs(args), labels, store=args.store,
                                         tracking_uri=args.tracking_uri, report=args.report,
                                         plots_dir=args.plots_dir, show_progress=not args.quiet)
    print(format_table(evaluation.results))
    for line in format_unknown(evaluation.unknown):
        print(line)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from gp_distributed.commands.predict import run_predict
    from gp_distributed.inference.new_genes import format_unknown

    _check_output("--out", args.out)
    _check_output("--cafa", args.cafa)
    summary = run_predict(args.model, _gene_inputs(args), args.out, cafa=args.cafa, store=args.store,
                          tracking_uri=args.tracking_uri, min_probability=args.min_probability,
                          batch_size=args.batch_size, show_progress=not args.quiet)
    print(f"predicted {summary.genes} genes: {summary.tsv_rows} rows in {args.out}"
          + (f", {summary.cafa_rows} in {args.cafa}" if args.cafa else ""))
    for line in format_unknown(summary.unknown):
        print(line)
    return 0


def _explain(args: argparse.Namespace) -> int:
    from gp_distributed.commands.explain import run_explain
    from gp_distributed.commands.model_source import existing_tracking_uri
    from gp_distributed.tracking.tracker import MlflowTracker

    _check_output("--out-dir", args.out_dir, directory=True)
    tracker = None
    if args.log_to_run:
        tracker = MlflowTracker.attach(existing_tracking_uri(args.tracking_uri), args.log_to_run)
    result = run_explain(args.model, _gene_inputs(args), args.out_dir, store=args.store,
                         tracking_uri=args.tracking_uri, top_terms=args.top_terms, top_concepts=args.top_concepts,
                         min_probability=args.min_probability, tracker=tracker, show_progress=not args.quiet)
    print(f"explained {result.genes} genes: {result.gene_table}, {result.association_table}, {result.heatmap}")
    return 0


def _embed(args: argparse.Namespace) -> int:
    from gp_distributed.commands.embed import StoreSplit, run_embed
    from gp_distributed.inference.new_genes import format_unknown

    if (args.split is None) == (args.fasta is None):
        raise ConfigError("gp embed", "--split/--fasta", "give one: a store split (--store, --split) or new genes (--fasta)")
    if args.split is not None and args.store is None:
        raise ConfigError("gp embed", "--store", "required with --split")
    _check_output("--out", args.out)
    genes = StoreSplit(args.store, args.split) if args.split is not None else _gene_inputs(args)
    summary = run_embed(args.model, args.out, genes, store=args.store, tracking_uri=args.tracking_uri,
                        batch_size=args.batch_size, show_progress=not args.quiet)
    widths = ", ".join(f"{name} {width}" for name, width in summary.widths.items())
    print(f"embedded {summary.genes} genes ({widths}) in {args.out}")
    for line in format_unknown(summary.unknown):
        print(line)
    return 0


def _add_model_input_arguments(parser: argparse.ArgumentParser, *, model_required: bool) -> None:
    """Flags shared by predict / explain / evaluate --new-data: which model, which genes."""
    parser.add_argument("--model", required=model_required,
                        help="models:/NAME@ALIAS, runs:/RUN_ID/model, or a checkpoint directory")
    parser.add_argument("--fasta", type=Path, help="sequences to score, FASTA or FASTA.gz")
    parser.add_argument("--id-map", type=Path, help="TSV: gene id -> FASTA accession")
    parser.add_argument("--go", type=Path, help="GO annotations of these genes (optional model input)")
    parser.add_argument("--go-format", choices=["gene2go", "gaf", "tsv"], default="gene2go")
    parser.add_argument("--go-ontology", type=Path, help="GO OBO, to map alt/replaced GO ids")
    parser.add_argument("--go-taxon", type=int, help="gene2go / GAF: keep this NCBI taxon")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, then ./mlflow.db)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _baseline(args: argparse.Namespace) -> int:
    from gp_distributed.commands.baseline import evaluate_baseline
    from gp_distributed.evaluation.baselines import BASELINE_NAMES
    from gp_distributed.evaluation.metrics import format_table
    from gp_distributed.evaluation.scoring import write_report

    _check_output("--report", args.report)
    names = list(BASELINE_NAMES) if args.name == "all" else [args.name]
    report = {}
    for name in names:
        report[name] = evaluate_baseline(name, args.store, args.split)
        print(f"baseline {name} on {args.split}:")
        print(format_table(report[name]))
    if args.report:
        write_report(args.report, {"store": str(args.store), "split": args.split, "baselines": report})
        print(f"wrote {args.report}")
    return 0


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="experiment YAML (defaults apply where it is silent)")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides, applied last")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gp", description="GenePheno at cluster scale")
    parser.add_argument("--verbose", action="store_true", help=_VERBOSE_HELP)
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="raw files -> one sharded Zarr v3 gene store")
    _add_config_arguments(ingest)
    ingest.set_defaults(config_flags=_add_flags_from_config(ingest, IngestConfig))
    ingest.add_argument("--quiet", action="store_true", help="no progress bar")
    ingest.set_defaults(handler=_ingest)

    train = commands.add_parser("train", help="train (or resume) GenePheno under Ray Train + DeepSpeed")
    _add_config_arguments(train)
    train.add_argument("--workers", type=int, help="Ray Train workers (0: in this process, world size 1)")
    # SUPPRESS: absent here, it keeps the value `gp --verbose train` gave (argparse would reset it).
    train.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=_VERBOSE_HELP)
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("evaluate", help="score a checkpoint on a store split, or a model on new files")
    evaluate.add_argument("--checkpoint", type=Path, help="a checkpoint_* directory")
    evaluate.add_argument("--store", type=Path, help="gene store with the model's vocabularies")
    evaluate.add_argument("--split", choices=["train", "valid", "test"], default="test")
    evaluate.add_argument("--report", type=Path, help="write the results as JSON here")
    evaluate.add_argument("--new-data", action="store_true",
                          help="score --model on files it has never seen (--fasta, --labels, --ontology, ...)")
    evaluate.add_argument("--labels", type=Path, help="--new-data: gene -> phenotype annotations")
    evaluate.add_argument("--labels-format", choices=["hpo", "mgi", "impc", "tsv"])
    evaluate.add_argument("--ontology", type=Path, help="--new-data: phenotype ontology OBO")
    evaluate.add_argument("--plots-dir", type=Path, help="--new-data: write plots here")
    _add_model_input_arguments(evaluate, model_required=False)
    evaluate.set_defaults(handler=_evaluate)

    predict = commands.add_parser("predict", help="phenotype probabilities for genes in a FASTA file")
    _add_model_input_arguments(predict, model_required=True)
    predict.add_argument("--out", type=Path, required=True, help="TSV: gene, term, name, probability")
    predict.add_argument("--cafa", type=Path, help="also write CAFA-format predictions here")
    predict.add_argument("--store", type=Path, help="a store with the model's vocabularies (checkpoint models)")
    predict.add_argument("--min-probability", type=float, default=0.01)
    predict.add_argument("--batch-size", type=int)
    predict.set_defaults(handler=_predict)

    explain = commands.add_parser("explain", help="which GO concepts drive each predicted phenotype")
    _add_model_input_arguments(explain, model_required=True)
    explain.add_argument("--out-dir", type=Path, required=True)
    explain.add_argument("--store", type=Path, help="a store with the model's vocabularies (checkpoint models)")
    explain.add_argument("--top-terms", type=int, default=10)
    explain.add_argument("--top-concepts", type=int, default=5)
    explain.add_argument("--min-probability", type=float, default=0.5)
    explain.add_argument("--log-to-run", metavar="RUN_ID", help="also log the tables to this MLflow run")
    explain.set_defaults(handler=_explain)

    embed = commands.add_parser("embed", help="per-gene embeddings (sequence, GO-fused, concepts) to Parquet")
    _add_model_input_arguments(embed, model_required=True)
    embed.add_argument("--store", type=Path, help="embed a split of this store (with --split); for --fasta, a "
                                                  "store with the model's vocabularies (checkpoint models)")
    embed.add_argument("--split", choices=["train", "valid", "test", "all"], help="the store's genes to embed")
    embed.add_argument("--out", type=Path, required=True, help="Parquet: gene_id and one list column per vector")
    embed.add_argument("--batch-size", type=int)
    embed.set_defaults(handler=_embed)

    baseline = commands.add_parser("baseline", help="naive, k-mer (LR, kNN) and GO-annotation (kNN, MLP) baselines")
    baseline.add_argument("--store", type=Path, required=True)
    baseline.add_argument("--name", choices=["naive", "kmer-lr", "kmer-knn", "go-knn", "go-mlp", "all"], default="all")
    baseline.add_argument("--split", choices=["valid", "test"], default="test")
    baseline.add_argument("--report", type=Path, help="write the results as JSON here")
    baseline.set_defaults(handler=_baseline)

    inspect = commands.add_parser("inspect", help="validate a gene store and print its summary")
    inspect.add_argument("store", type=Path)
    inspect.add_argument("--quick", action="store_true", help="skip reading every residue chunk (checksums)")
    inspect.set_defaults(handler=_inspect)
    return parser


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse flags; `key.sub=value` overrides may stand anywhere among them (argparse alone would only
    take them in one run, and its intermixed mode does not support subcommands)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    stray = [token for token in extra if not (hasattr(args, "overrides") and _OVERRIDE.match(token))]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    configure_console(args.verbose)  # before any library is imported: several read their switches then
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except GpError as error:
        print(f"gp {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the system refused a read or write that no module turned into a GpError
        where = f"{error.filename}: " if error.filename else ""
        print(f"gp {args.command}: error: {where}{error.strerror or error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
