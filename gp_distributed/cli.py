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

from gp_distributed.config import GPConfig, load_config
from gp_distributed.errors import GpError

_OVERRIDE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*=")

# `gp ingest` flags -> ingest config fields of the same names (dashes for underscores).
_INGEST_FLAGS = (
    "fasta", "id_map", "labels", "labels_format", "ontology", "go", "go_format", "go_ontology",
    "exclusive_pairs", "alphabet", "min_genes", "out", "strict", "overwrite",
)


def _config_from_args(args: argparse.Namespace, section: str, flag_names: Sequence[str]) -> GPConfig:
    """The config file, then the flags given (already typed by argparse), then key=value overrides."""
    flags = {f"{section}.{name}": getattr(args, name) for name in flag_names if getattr(args, name) not in (None, False)}
    return load_config(args.config, args.overrides, flags)


def _ingest(args: argparse.Namespace) -> int:
    from gp_distributed.data.store import format_summary
    from gp_distributed.ingest.pipeline import run_ingest

    config = _config_from_args(args, "ingest", _INGEST_FLAGS)
    summary = run_ingest(config.ingest, show_progress=not args.quiet)
    print(f"wrote {config.ingest.out}")
    for line in format_summary(summary):
        print(line)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from gp_distributed.data.store import format_summary, open_store

    store = open_store(args.store)
    print(f"{args.store}: schema {store.attrs['schema_version']}, alphabet {store.alphabet}, {store.n_genes} genes")
    for line in format_summary(store.summary()):
        print(line)
    return 0


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="experiment YAML (defaults apply where it is silent)")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides, applied last")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gp", description="GenePheno at cluster scale")
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="raw files -> one sharded Zarr v3 gene store")
    _add_config_arguments(ingest)
    ingest.add_argument("--fasta", type=Path, help="sequences, FASTA or FASTA.gz")
    ingest.add_argument("--id-map", type=Path, help="TSV: label gene id -> FASTA accession")
    ingest.add_argument("--labels", type=Path, help="gene -> phenotype term annotations")
    ingest.add_argument("--labels-format", choices=["hpo", "mgi", "impc", "tsv"])
    ingest.add_argument("--ontology", type=Path, help="phenotype ontology OBO (HP or MP)")
    ingest.add_argument("--go", type=Path, help="GO annotations (gene2go, GAF or TSV)")
    ingest.add_argument("--go-format", choices=["gene2go", "gaf", "tsv"])
    ingest.add_argument("--go-ontology", type=Path, help="GO OBO (go-basic)")
    ingest.add_argument("--exclusive-pairs", type=Path, help="TSV of mutually exclusive term pairs")
    ingest.add_argument("--alphabet", choices=["protein", "dna"])
    ingest.add_argument("--min-genes", type=int, help="drop terms annotated to fewer genes (default 11)")
    ingest.add_argument("--out", type=Path, help="store directory to create")
    ingest.add_argument("--strict", action="store_true", help="turn reported skips into errors")
    ingest.add_argument("--overwrite", action="store_true", help="replace an existing store")
    ingest.add_argument("--quiet", action="store_true", help="no progress bar")
    ingest.set_defaults(handler=_ingest)

    inspect = commands.add_parser("inspect", help="validate a gene store and print its summary")
    inspect.add_argument("store", type=Path)
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
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except GpError as error:
        print(f"gp {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
