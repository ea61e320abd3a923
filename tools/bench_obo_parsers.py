"""Time OBO parsers (fastobo, pronto, obonet) on real ontologies, decompressed in memory.

Usage:
    .venv/bin/python tools/bench_obo_parsers.py [FILE.obo[.gz] ...] [--repeats 3]

Each file is read and decompressed once; every parser then parses the same in-memory text
`--repeats` times. Printed per parser: the best wall time (s), the process CPU time of that run (s,
all threads; on a shared machine contention shows as wall > CPU for one-thread parsers) and how many
items it read (fastobo: frames incl. [Typedef]; pronto: terms; obonet: graph nodes), a quick check
that it read the whole file. A parser that raises is reported as FAILED with its error's first line.
The last row per file times `gp_distributed.ontology.obo.load_ontology` end to end (read, gunzip, parse,
graph build and checks) for comparison.
"""

from __future__ import annotations

import argparse
import gzip
import io
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import fastobo
import obonet
import pronto

from gp_distributed.ontology.obo import load_ontology

_DEFAULT_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hpo-human-2025"
_DEFAULT_FILES = (_DEFAULT_DIR / "hp.obo.gz", _DEFAULT_DIR / "go-basic.obo.gz")


def _parsers(text: str) -> dict[str, Callable[[], int]]:
    """Name -> zero-argument callable that parses `text` and returns how many items it read."""
    raw = text.encode("utf-8")
    return {
        f"fastobo {fastobo.__version__} (threads=1)": lambda: len(fastobo.loads(text, threads=1)),
        f"fastobo {fastobo.__version__} (threads=auto)": lambda: len(fastobo.loads(text, threads=0)),
        f"pronto {pronto.__version__}": lambda: len(pronto.Ontology(io.BytesIO(raw), threads=1).terms()),
        f"obonet {obonet.__version__}": lambda: len(obonet.read_obo(io.StringIO(text), ignore_obsolete=False)),
    }


def _best_of(fn: Callable[[], int], repeats: int) -> str:
    """'wall cpu items' of the fastest (by wall time) of `repeats` calls of `fn`."""
    best = (float("inf"), float("inf"), 0)
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        items = fn()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu, items))
    return f"{best[0]:8.2f} {best[1]:8.2f} {best[2]:>8}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, default=list(_DEFAULT_FILES))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    print(f"{'file':<16} {'parser':<30} {'wall s':>8} {'cpu s':>8} {'items':>8}")
    for path in args.files:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            text = handle.read()
        for name, fn in _parsers(text).items():
            try:
                with warnings.catch_warnings():  # pronto warns once per odd clause: noise here
                    warnings.simplefilter("ignore")
                    result = _best_of(fn, args.repeats)
            except Exception as error:  # a parser failing on real data is a result, not a crash
                result = "FAILED: " + (str(error).splitlines() or [type(error).__name__])[0][:80]
            print(f"{path.name:<16} {name:<30} {result}", flush=True)
        relations = ("is_a", "part_of") if path.name.startswith("go") else ("is_a",)
        result = _best_of(lambda: len(load_ontology(path, relations)), args.repeats)
        print(f"{path.name:<16} {'load_ontology (end to end)':<30} {result}", flush=True)


if __name__ == "__main__":
    main()
