"""Build the demo subset: a few hundred REAL genes of the hpo-human-2025 bundle, same files and formats.

Usage (from the repository root):
    .venv/bin/python tools/build_demo_subset.py --bundle ../shared/data/hpo-human-2025 \
        --out data/demo --genes 500 --seed 0

Contract:
- genes are chosen without looking at their labels: every gene of `gene_ids.tsv` is eligible and genes
  are ordered by sha256("{seed}:{gene_id}"); the first `--genes` are kept;
- `proteins.fasta.gz`, `genes_to_phenotype.txt.gz`, `gene_ids.tsv` and `gene2go.gz` keep the header and
  the rows of the chosen genes, byte for byte and in the bundle's order;
- the ontologies (`hp.obo.gz`, `go-basic.obo.gz`) and the term-level `hpo_opposite_pairs.tsv` are copied
  whole: propagation needs every ancestor;
- gzip output is deterministic (mtime 0, no file name, level 9): rebuilding gives byte-identical files;
- `README.md` carries the bundle's "Provenance and licences" section verbatim, as its licences require.
Bad input raises `InputError` (file and line).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gp_distributed.errors import GpError, InputError

GENE_IDS = "gene_ids.tsv"
PROTEINS = "proteins.fasta.gz"
LABELS = "genes_to_phenotype.txt.gz"
GENE2GO = "gene2go.gz"
COPIED_WHOLE = ("hp.obo.gz", "go-basic.obo.gz", "hpo_opposite_pairs.tsv")
PROVENANCE_HEADING = "## Provenance and licences"


@dataclass(frozen=True)
class DemoSubset:
    """What `build_demo_subset` wrote: the chosen genes (bundle order) and row counts per filtered file."""

    out_dir: Path
    gene_ids: tuple[str, ...]
    accessions: tuple[str, ...]
    label_rows: int
    go_rows: int


def gene_order_key(seed: int, gene_id: str) -> str:
    """Label-blind, seeded ordering key of a gene: sha256 of "{seed}:{gene_id}" (hex)."""
    return hashlib.sha256(f"{seed}:{gene_id}".encode()).hexdigest()


def choose_genes(gene_ids: Iterable[str], n_genes: int, seed: int) -> frozenset[str]:
    """The `n_genes` gene ids with the smallest `gene_order_key`; ValueError if fewer are available."""
    ordered = sorted(set(gene_ids), key=lambda gene_id: gene_order_key(seed, gene_id))
    if not 1 <= n_genes <= len(ordered):
        raise ValueError(f"n_genes must be in 1..{len(ordered)}, got {n_genes}")
    return frozenset(ordered[:n_genes])


def read_gene_ids(path: Path) -> list[tuple[str, str, str]]:
    """Rows (gene_id, symbol, uniprot_accession) of a `gene_ids.tsv`, header checked, ids unique."""
    rows: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    with _open_input(path, gz=False) as handle:
        for line_no, raw in enumerate(handle, start=1):
            fields = raw.decode("utf-8").rstrip("\n").split("\t")
            if line_no == 1:
                if fields != ["gene_id", "symbol", "uniprot_accession"]:
                    raise InputError(path, "expected header gene_id<TAB>symbol<TAB>uniprot_accession", line_no)
                continue
            if len(fields) != 3 or not all(fields):
                raise InputError(path, f"expected 3 non-empty tab-separated fields, got {len(fields)}", line_no)
            if fields[0] in seen:
                raise InputError(path, f"duplicate gene_id {fields[0]}", line_no)
            seen.add(fields[0])
            rows.append((fields[0], fields[1], fields[2]))
    return rows


def filter_fasta(path: Path, keep_accessions: frozenset[str]) -> tuple[bytes, tuple[str, ...]]:
    """The records of `keep_accessions` (raw bytes, bundle order) and the accessions found, in order.

    The record id is the header's first word; a sequence line before any header is an error.
    """
    kept: list[bytes] = []
    found: list[str] = []
    keep_record = False
    with _open_input(path, gz=True) as handle:
        for line_no, raw in enumerate(handle, start=1):
            if raw.startswith(b">"):
                words = raw[1:].split()
                if not words:
                    raise InputError(path, "FASTA header without an id", line_no)
                accession = words[0].decode("utf-8")
                keep_record = accession in keep_accessions
                if keep_record:
                    found.append(accession)
            elif line_no == 1:
                raise InputError(path, "FASTA must start with a '>' header line", line_no)
            if keep_record:
                kept.append(raw)
    return b"".join(kept), tuple(found)


def filter_rows(path: Path, gene_column: int, n_columns: int, keep_genes: frozenset[str]) -> tuple[bytes, int]:
    """The header line plus the rows whose `gene_column` (0-based) is in `keep_genes`, raw bytes; row count.

    Every data row must have exactly `n_columns` tab-separated fields.
    """
    kept: list[bytes] = []
    with _open_input(path, gz=True) as handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no == 1:
                kept.append(raw)
                continue
            fields = raw.rstrip(b"\n").split(b"\t")
            if len(fields) != n_columns:
                raise InputError(path, f"expected {n_columns} tab-separated fields, got {len(fields)}", line_no)
            if fields[gene_column].decode("utf-8") in keep_genes:
                kept.append(raw)
    return b"".join(kept), len(kept) - 1


def write_gzip(path: Path, data: bytes) -> None:
    """Write `data` gzip-compressed (level 9, mtime 0, no file name in the header): same bytes every run."""
    path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))


def provenance_section(readme: Path) -> str:
    """The bundle README's "Provenance and licences" section, heading included, verbatim."""
    if not readme.is_file():
        raise InputError(readme, "bundle README not found (its licence note must ship with the subset)")
    text = readme.read_text(encoding="utf-8")
    start = text.find(PROVENANCE_HEADING)
    if start < 0:
        raise InputError(readme, f"no '{PROVENANCE_HEADING}' section")
    end = text.find("\n## ", start + len(PROVENANCE_HEADING))
    return text[start:] if end < 0 else text[start : end + 1]


def build_demo_subset(bundle: Path, out_dir: Path, n_genes: int, seed: int) -> DemoSubset:
    """Write the subset of `n_genes` genes of `bundle` into `out_dir` (created; our files overwritten)."""
    gene_rows = read_gene_ids(bundle / GENE_IDS)
    chosen = choose_genes((row[0] for row in gene_rows), n_genes, seed)
    kept_rows = [row for row in gene_rows if row[0] in chosen]
    accessions = frozenset(row[2] for row in kept_rows)

    fasta, found = filter_fasta(bundle / PROTEINS, accessions)
    missing = sorted(accessions - set(found))
    if missing:
        message = f"{len(missing)} chosen accessions have no sequence, e.g. {missing[0]}"
        raise InputError(bundle / PROTEINS, message)
    labels, label_rows = filter_rows(bundle / LABELS, gene_column=0, n_columns=6, keep_genes=chosen)
    go, go_rows = filter_rows(bundle / GENE2GO, gene_column=1, n_columns=8, keep_genes=chosen)
    provenance = provenance_section(bundle / "README.md")

    out_dir.mkdir(parents=True, exist_ok=True)
    write_gzip(out_dir / PROTEINS, fasta)
    write_gzip(out_dir / LABELS, labels)
    write_gzip(out_dir / GENE2GO, go)
    id_lines = ["gene_id\tsymbol\tuniprot_accession"] + ["\t".join(row) for row in kept_rows]
    (out_dir / GENE_IDS).write_bytes(("\n".join(id_lines) + "\n").encode("utf-8"))
    for name in COPIED_WHOLE:
        shutil.copyfile(_existing(bundle / name), out_dir / name)
    subset = DemoSubset(
        out_dir=out_dir,
        gene_ids=tuple(row[0] for row in kept_rows),
        accessions=found,
        label_rows=label_rows,
        go_rows=go_rows,
    )
    readme = _readme(bundle, subset, seed, provenance)
    (out_dir / "README.md").write_bytes(readme.encode("utf-8"))
    return subset


def _readme(bundle: Path, subset: DemoSubset, seed: int, provenance: str) -> str:
    """README text; depends only on the bundle's content, the gene count and the seed (not on paths)."""
    sources = "\n".join(
        f"| `{name}` | `{hashlib.sha256(_existing(bundle / name).read_bytes()).hexdigest()}` |"
        for name in (PROTEINS, LABELS, GENE_IDS, GENE2GO, *COPIED_WHOLE)
    )
    return f"""# Demo subset of the {bundle.name} bundle

A small REAL subset: {len(subset.gene_ids)} human genes of the {bundle.name} benchmark bundle, in the
bundle's own file names and formats: real data for the demo configuration, small enough to ship.
Labels, sequences and annotations are exactly as curated by their sources (rows copied byte for byte).

## How the subset was chosen
- Every gene of the bundle's `gene_ids.tsv` was eligible (each has HPO labels, a protein sequence and
  GO annotations). Genes were ordered by `sha256("{seed}:<gene_id>")` (seed {seed}) and the first
  {len(subset.gene_ids)} kept: the choice never looks at labels, sequences or annotations.
- `gene_ids.tsv`, `proteins.fasta.gz`, `genes_to_phenotype.txt.gz` ({subset.label_rows} rows) and
  `gene2go.gz` ({subset.go_rows} rows) keep their header and the rows of the chosen genes, in bundle order.
- `hp.obo.gz`, `go-basic.obo.gz` and `hpo_opposite_pairs.tsv` are copied whole (propagating labels needs
  every ancestor; the opposite pairs are term pairs, not gene rows).
- gzip files are written with mtime 0 and no file name, so a rebuild is byte-identical.

Rebuild from the repository root (the bundle lives in `../shared/data/{bundle.name}` on the team machine):

```
.venv/bin/python tools/build_demo_subset.py --bundle ../shared/data/{bundle.name} --out data/demo --genes {len(subset.gene_ids)} --seed {seed}
```

Source files (sha256 of the bundle files this subset was built from):

| bundle file | sha256 |
|---|---|
{sources}

The bundle's provenance and licence note, copied verbatim from its README:

{provenance}"""


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise InputError(path, "bundle file not found")
    return path


def _open_input(path: Path, gz: bool) -> io.BufferedIOBase:
    """Binary reader of `path` (gunzipped when `gz`); InputError if the file is missing."""
    _existing(path)
    return gzip.open(path, "rb") if gz else path.open("rb")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, build the subset, print a one-line summary; 1 on a user error."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--bundle", type=Path, required=True, help="hpo-human-2025 bundle directory")
    parser.add_argument("--out", type=Path, required=True, help="output directory (created)")
    parser.add_argument("--genes", type=int, default=500, help="number of genes to keep (default 500)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the label-blind gene order (default 0)")
    args = parser.parse_args(argv)
    try:
        subset = build_demo_subset(args.bundle, args.out, args.genes, args.seed)
    except GpError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        parser.error(str(error))
    size_bytes = sum(path.stat().st_size for path in subset.out_dir.iterdir() if path.is_file())
    print(
        f"wrote {subset.out_dir}: {len(subset.gene_ids)} genes, {subset.label_rows} label rows, "
        f"{subset.go_rows} GO rows, {size_bytes / 1e6:.2f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
