"""Write a SYNTHETIC mouse-knockout dataset (DNA FASTA, MGI_GenePheno labels, GAF 2.2, MP/GO OBOs).

Usage (from the repository root):
    .venv/bin/python tools/make_synthetic.py --out DIR --genes 500 --seed 0

Thin entry point over `gp_distributed.synthetic.generator.make_synthetic`; the generative rule, the file layouts
and the planted truth are documented there and in the README.md written next to the data. The same
seed and gene count give byte-identical files.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from gp_distributed.synthetic.generator import MAX_GENES, make_synthetic


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, write the dataset, print a one-line summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory (created)")
    parser.add_argument("--genes", type=int, default=500, help=f"number of genes, 1..{MAX_GENES} (default 500)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    if not 1 <= args.genes <= MAX_GENES:
        parser.error(f"--genes must be in 1..{MAX_GENES}, got {args.genes}")
    dataset = make_synthetic(args.out, args.genes, args.seed)
    n_planted = sum(len(terms) for terms in dataset.phenotypes.values())
    print(
        f"wrote SYNTHETIC data to {dataset.out_dir}: {len(dataset.gene_ids)} genes, {n_planted} planted "
        f"phenotype terms, {len(dataset.gene_trap_only)} gene-trap-only genes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
