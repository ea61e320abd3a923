"""tools/bench_ingest.py on the demo bundle: the report holds the ratio and every phase as numbers.

No timing is asserted (a benchmark on a shared machine); the values are checked for consistency.
The one benchmark run (--repeats 1) takes ~20 s here, dominated by parsing the full HP and GO files.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import re
import shlex
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "bench_ingest.py"
INPUT_NAMES = [
    "proteins.fasta.gz",
    "gene_ids.tsv",
    "genes_to_phenotype.txt.gz",
    "hp.obo.gz",
    "gene2go.gz",
    "go-basic.obo.gz",
    "hpo_opposite_pairs.tsv",
]
PHASES = [
    "load_ontology hp.obo.gz (is_a)",
    "load_ontology go-basic.obo.gz (is_a, part_of)",
    "read_fasta proteins.fasta.gz",
    "read_id_map gene_ids.tsv",
    "read_labels genes_to_phenotype.txt.gz",
    "read_go_annotations gene2go.gz",
    "rest of build_store_content (derived)",
    "build_store_content (the readers above + the rest)",
    "write_store",
]
NUMBER = r"-?\d+\.\d+"


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_ingest_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run(tool: ModuleType, demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """(returned result, printed text, JSON file content) of one `--repeats 1` run on data/demo."""
    out = tmp_path_factory.mktemp("bench") / "result.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = tool.main(["--bundle", str(demo_dir), "--repeats", "1", "--json", str(out)])
    return result, printed.getvalue(), json.loads(out.read_text())


def test_bundle_config_takes_every_input_from_the_bundle(tool: ModuleType, demo_dir: Path, tmp_path: Path) -> None:
    config = tool.bundle_config(demo_dir, tmp_path / "store.zarr")
    files = tool.input_files(config)
    assert [p.name for p in files] == INPUT_NAMES
    assert all(p.parent == demo_dir and p.is_file() for p in files)
    assert (config.labels_format, config.go_format, config.alphabet) == ("hpo", "gene2go", "protein")
    assert config.out == tmp_path / "store.zarr"


def test_json_holds_ratio_and_phases_as_consistent_numbers(run: tuple[dict[str, Any], str, dict[str, Any]]) -> None:
    result, _, written = run
    assert written == json.loads(json.dumps(result))
    assert written["input_files"] == INPUT_NAMES
    decompression, ingest, warm = written["decompression"], written["ingest"], written["warm ingest"]
    for row in (decompression, ingest, warm):
        assert row["wall_s"] > 0 and row["cpu_s"] > 0 and math.isfinite(row["mb_per_s"])
    assert written["ratio_percent"] == pytest.approx(100 * decompression["wall_s"] / ingest["wall_s"])
    assert written["warm_ratio_percent"] == pytest.approx(100 * decompression["wall_s"] / warm["wall_s"])
    assert written["warm_ratio_cpu_percent"] == pytest.approx(100 * decompression["cpu_s"] / warm["cpu_s"])
    assert decompression["mb_per_s"] == pytest.approx(written["input_mb"] / decompression["wall_s"])
    assert written["decompressed_mb"] > written["input_mb"] > 0
    assert list(written["phases"]) == PHASES
    phases = written["phases"]
    readers = sum(phases[name]["wall_s"] for name in PHASES[:6])
    derived, whole = phases[PHASES[6]]["wall_s"], phases[PHASES[7]]["wall_s"]
    assert derived == pytest.approx(whole - readers)
    assert all(phases[name]["wall_s"] > 0 for name in PHASES if name != PHASES[6])
    assert len(written["load_average_start"]) == len(written["load_average_end"]) == 3
    assert written["machine"]["cores"] >= 1
    argv = ["--bundle", written["bundle"], "--repeats", "1", "--json", written["command"].split()[-1]]
    assert written["command"] == shlex.join([".venv/bin/python", "tools/bench_ingest.py", *argv])


def test_printed_table_shows_the_ratio_and_each_phase(run: tuple[dict[str, Any], str, dict[str, Any]]) -> None:
    result, printed, _ = run
    ratio = re.search(rf"ingest at ({NUMBER}) % of decompression speed", printed)
    assert ratio is not None and float(ratio.group(1)) == pytest.approx(result["ratio_percent"], abs=0.006)
    warm = re.search(rf"warm ingest at ({NUMBER}) % of decompression speed", printed)
    assert warm is not None and float(warm.group(1)) == pytest.approx(result["warm_ratio_percent"], abs=0.006)
    assert re.search(rf"load average .*start \[{NUMBER}, {NUMBER}, {NUMBER}\]", printed)
    for name in PHASES:
        row = re.search(rf"^{re.escape(name)}\s+({NUMBER})\s+({NUMBER})\s+({NUMBER})$", printed, re.MULTILINE)
        assert row is not None, name
        assert float(row.group(1)) == pytest.approx(result["phases"][name]["wall_s"], abs=0.0006)


def test_repeats_below_one_are_refused(tool: ModuleType) -> None:
    with pytest.raises(SystemExit):
        tool.main(["--repeats", "0"])


def test_a_bundle_without_the_inputs_is_refused_naming_the_file(
    tool: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        tool.main(["--bundle", str(tmp_path), "--repeats", "1"])
    assert f"{tmp_path / 'proteins.fasta.gz'}: no such file" in capsys.readouterr().err
