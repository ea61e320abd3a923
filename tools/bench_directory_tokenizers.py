"""Tokenising one 100 kbp DNA gene with the tokenizers model directories bring (NT's EsmTokenizer over
6-mers, GENERator's DNAKmerTokenizer; replicas of their real layout, tests/fixtures/backbones): the
Hugging Face tokenizer path against the numpy fast path (`kmer_table_for`), same windows asserted.

    .venv/bin/python tools/bench_directory_tokenizers.py [--length 100000] [--repeats 5]

Prints, per tokenizer and window strategy, the best-of-repeats wall time of `encode_windows` on each
path, their ratio, and the one-time cost of recognising the table (probe included).
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gp_distributed.data.directory_tokenizer import load_directory_tokenizer
from gp_distributed.data.tokenize import encode_windows, kmer_table_for
from tests.fixtures.backbones.replicas import write_generator, write_nt_v1


def best_seconds(call: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def gene(length: int) -> bytes:
    """ACGT with about 1 % N (in runs) and 0.05 % other IUPAC codes, fixed seed."""
    rng = np.random.default_rng(100)
    codes = rng.choice(np.frombuffer(b"ACGT", dtype=np.uint8), size=length)
    for start in rng.integers(0, length - 50, size=length // 5000):
        codes[start : start + 50] = ord("N")
    codes[rng.integers(0, length, size=length // 2000)] = rng.choice(np.frombuffer(b"RYKMSW", dtype=np.uint8))
    return codes.tobytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sequence = gene(args.length)
    root = Path(tempfile.mkdtemp(prefix="bench-tokenizers-"))
    tokenizers = {"NT (EsmTokenizer, 6-mers)": load_directory_tokenizer(write_nt_v1(root / "nt"), False),
                  "GENERator (DNAKmerTokenizer)": load_directory_tokenizer(write_generator(root / "gen"), True)}
    print(f"one gene of {len(sequence)} bp, best of {args.repeats}")
    print("| tokenizer | strategy (1,000-token windows) | tokenizer path ms | fast path ms | speed-up | table build ms |")
    print("|---|---|---:|---:|---:|---:|")
    for name, tokenizer in tokenizers.items():
        start = time.perf_counter()
        table = kmer_table_for(tokenizer)
        build_ms = (time.perf_counter() - start) * 1e3
        assert table is not None, name
        for strategy, max_windows in (("random", 1), ("all", 10**6)):
            run = functools.partial(encode_windows, sequence, tokenizer, 1000, strategy, max_windows)
            fast_windows = run(np.random.default_rng(0), kmer_table=table)
            assert [w.tolist() for w in fast_windows] == [w.tolist() for w in run(np.random.default_rng(0))], name
            slow = best_seconds(lambda: run(np.random.default_rng(0)), args.repeats)  # noqa: B023  # called at once
            fast = best_seconds(lambda: run(np.random.default_rng(0), kmer_table=table), args.repeats)  # noqa: B023
            print(f"| {name} | {strategy} | {slow * 1e3:.1f} | {fast * 1e3:.2f} | {slow / fast:.0f}x | {build_ms:.1f} |")


if __name__ == "__main__":
    main()
