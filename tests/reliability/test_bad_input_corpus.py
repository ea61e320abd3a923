"""Bad-input corpus through the real `gp` entry point (issue 7 item 1): every case exits 2 with ONE line
on stderr that names the file (and line, or config key), and leaves no partial output behind: no store
at --out nor its temporary siblings, no predictions file, no run directory, no MLflow run.

Complements tests/integration/test_ingest_cli.py (FASTA, OBO cycles, label terms, id-map conflicts) and
tests/unit/test_reader_bad_input.py (readers called directly): here GO files, OBO syntax, label and id-map
layouts, configs, stores, model URIs and checkpoints, all as a user meets them on the command line.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from gp_distributed.checkpoint import CheckpointMeta, write_meta
from gp_distributed.cli import main
from gp_distributed.config import config_to_yaml, load_config
from gp_distributed.synthetic.generator import SyntheticDataset, make_synthetic

GENE2GO_HEADER = "#tax_id\tGeneID\tGO_ID\tEvidence\tQualifier\tGO_term\tPubMed\tCategory\n"
GO_ABSENT_FROM_ONTOLOGY = "GO:0000001"  # synthetic GO terms are GO:99xxxxx plus the three roots


def one_error_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run `gp argv`; assert exit status 2 and exactly one stderr line of the CLI's form; return it."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"gp {argv[0]}: error: "), lines[0]
    return lines[0].removeprefix(f"gp {argv[0]}: error: ")


def located(path: Path, line: int | None = None) -> str:
    """How an error starts when it locates a problem in `path` (at `line`)."""
    return f"{path}:{line}:" if line is not None else f"{path}:"


def assert_nothing_at(out: Path) -> None:
    assert not out.exists(), f"partial output left at {out}"
    siblings = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
    assert siblings == [], f"temporary siblings left: {siblings}"


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def edit_line(source: Path, target: Path, line: int, edit: Callable[[str], str]) -> Path:
    """Copy `source` (plain text) to `target` with 1-based `line` rewritten by `edit`."""
    lines = source.read_text().splitlines(keepends=True)
    lines[line - 1] = edit(lines[line - 1])
    return write(target, "".join(lines))


def truncated_gzip(data: bytes, path: Path) -> tuple[Path, int]:
    """`data` gzipped and cut in half at `path`, and the first line its readable part leaves incomplete."""
    packed = gzip.compress(data)
    cut = packed[: len(packed) // 2]
    readable = zlib.decompressobj(wbits=31).decompress(cut)
    return write(path, cut), readable.count(b"\n") + 1


# --- gp ingest: GO files, OBO, label files, id maps, exclusive pairs -------------------------------


@dataclass(frozen=True)
class Inputs:
    data: SyntheticDataset
    gene2go: Path  # the synthetic GAF rewritten in NCBI gene2go layout


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    data = make_synthetic(tmp_path_factory.mktemp("synthetic"), n_genes=60, seed=3)
    rows = [GENE2GO_HEADER]
    for line in data.gaf.read_text().splitlines():
        if not line.startswith("!"):
            f = line.split("\t")
            rows.append("\t".join(["10090", f[1], f[4], f[6], f[3], "term name", "-", "Function"]) + "\n")
    return Inputs(data, write(data.out_dir / "gene2go", "".join(rows)))


def ingest_argv(inputs: Inputs, out: Path, replace: dict[str, Path], extra: tuple[str, ...]) -> list[str]:
    d = inputs.data
    files = {"fasta": d.fasta, "id-map": d.id_map, "labels": d.labels, "ontology": d.mp_obo, "go": d.gaf,
             "go-ontology": d.go_obo, **replace}
    argv = ["ingest", "--quiet", "--alphabet", "dna", "--labels-format", "mgi", "--go-format", "gaf",
            "--min-genes", "3", "--out", str(out), "ingest.min_concept_genes=2", *extra]
    for flag, path in files.items():
        argv += [f"--{flag}", str(path)]
    return argv


@dataclass(frozen=True)
class IngestCase:
    flag: str  # the --flag whose file is replaced by the bad one
    build: Callable[[Path, Inputs], Path | tuple[Path, int]]  # -> bad file (and its expected line)
    line: int | None  # expected line (None: none reported, or returned by build)
    words: tuple[str, ...]  # what the message must say
    extra: tuple[str, ...] = ()  # further argv


def _absent_go_term(t: Path, i: Inputs) -> Path:
    return edit_line(i.data.gaf, t / "x.gaf", 5, lambda s: s.replace("GO:9900211", GO_ABSENT_FROM_ONTOLOGY))


def _gene2go_bad_id_gz(t: Path, i: Inputs) -> Path:
    text = edit_line(i.gene2go, t / "plain", 4, lambda s: s.replace("\tGO:", "\tGO", 1)).read_bytes()
    return write(t / "gene2go.gz", gzip.compress(text))


OBO_HEADER = "format-version: 1.2\nontology: mp\n\n"
OBO_ROOT = "[Term]\nid: MP:0000001\nname: mammalian phenotype\n\n"

INGEST_CASES = {
    "gene2go.gz malformed GO id": IngestCase("go", _gene2go_bad_id_gz, 4, ("GO id 'GO99", "GO:digits"),
                                             ("--go-format", "gene2go")),
    "gaf wrong column count": IngestCase(
        "go", lambda t, i: edit_line(i.data.gaf, t / "x.gaf", 6, lambda s: "\t".join(s.split("\t")[:12]) + "\n"),
        6, ("17 or 15 or 16", "found 12")),
    "gene2go truncated gzip": IngestCase(
        "go", lambda t, i: truncated_gzip(i.gene2go.read_bytes(), t / "gene2go.gz"), None, ("truncated",),
        ("--go-format", "gene2go")),
    "GO term not in the GO ontology (strict)": IngestCase("go", _absent_go_term, 5,
                                                          ("GO term unknown or obsolete", "strict"), ("--strict",)),
    "GAF read as --go-format tsv": IngestCase("go", lambda t, i: shutil.copy(i.data.gaf, t / "x.gaf"), 1,
                                              ("expected 2", "found 1"), ("--go-format", "tsv")),
    "GO file not UTF-8": IngestCase(
        "go", lambda t, i: write(t / "x.gaf", i.data.gaf.read_bytes().replace(b"synthetic gene Syn1", b"gene \xff", 1)),
        5, ("not UTF-8",)),
    "ontology not an OBO at all": IngestCase("ontology", lambda t, i: shutil.copy(i.data.fasta, t / "x.obo"), 1,
                                             ("OBO syntax error",)),
    "ontology bad header": IngestCase(
        "ontology", lambda t, i: write(t / "x.obo", "format-version: 1.2\nsubsetdef: no_description\n\n" + OBO_ROOT), 2,
        ("OBO syntax error",)),
    "ontology term without id": IngestCase(
        "ontology", lambda t, i: write(t / "x.obo", OBO_HEADER + OBO_ROOT + "[Term]\nname: no id\nis_a: MP:0000001\n"),
        9, ("OBO syntax error",)),
    "ontology non-UTF-8 bytes": IngestCase(
        "ontology", lambda t, i: write(t / "x.obo", (OBO_HEADER + OBO_ROOT).encode().replace(b"mal", b"m\xe4l")),
        6, ("not UTF-8",)),
    "ontology gzipped garbage": IngestCase(
        "ontology", lambda t, i: write(t / "x.obo.gz", gzip.compress(bytes(range(256)) * 4)), 2, ("not UTF-8",)),
    "ontology .gz that is not gzip": IngestCase("ontology", lambda t, i: shutil.copy(i.data.mp_obo, t / "x.obo.gz"),
                                                None, ("not gzip",)),
    "GO ontology corrupt gzip": IngestCase(
        "go-ontology", lambda t, i: write(t / "go.obo.gz", b"\x1f\x8b\x08\x00" + b"garbage" * 50), None, ("gzip",)),
    "labels: MGI report read as hpo": IngestCase("labels", lambda t, i: shutil.copy(i.data.labels, t / "x.rpt"), 1,
                                                 ("not an HPO genes_to_phenotype header",),
                                                 ("--labels-format", "hpo", "ingest.label_root=MP:0000001")),
    "labels: MGI report read as impc": IngestCase("labels", lambda t, i: shutil.copy(i.data.labels, t / "x.rpt"), 1,
                                                  ("not an IMPC", "mp_term_id"), ("--labels-format", "impc")),
    "id map with one column": IngestCase(
        "id-map", lambda t, i: edit_line(i.data.id_map, t / "ids.tsv", 3, lambda s: s.split("\t")[0] + "\n"), 3,
        ("expected 3", "found 1")),
    "id map with four columns": IngestCase(
        "id-map", lambda t, i: write(t / "ids.tsv", "".join(f"{s.rstrip()}\textra\n" for s in i.data.id_map.open())), 1,
        ("expected 2 or 3", "found 4")),
    "exclusive pair with an unknown term": IngestCase(
        "exclusive-pairs", lambda t, i: write(t / "pairs.tsv", "term_a_id\tterm_b_id\nMP:9900110\tMP:0999999\n"), 2,
        ("MP:0999999",)),
}


@pytest.mark.parametrize("case", list(INGEST_CASES))
def test_ingest_bad_file(case: str, inputs: Inputs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = INGEST_CASES[case]
    built = spec.build(tmp_path, inputs)
    bad, line = built if isinstance(built, tuple) else (built, spec.line)
    out = tmp_path / "out.zarr"
    message = one_error_line(ingest_argv(inputs, out, {spec.flag: bad}, spec.extra), capsys)
    assert message.startswith(located(bad, line)), message
    for word in spec.words:
        assert word in message, message
    assert_nothing_at(out)


def test_go_term_not_in_the_go_ontology_is_a_counted_skip(inputs: Inputs, tmp_path: Path, capsys) -> None:
    """Without --strict the documented behaviour is a skip, counted in the summary (not an error)."""
    gaf = _absent_go_term(tmp_path, inputs)
    assert main(ingest_argv(inputs, tmp_path / "out.zarr", {"go": gaf}, ())) == 0
    assert "GO term unknown or obsolete: 1" in capsys.readouterr().out


# --- configs: gp train --config / gp ingest --config, and key=value overrides ----------------------


@pytest.fixture
def tracking_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tracking URI of this test only, its database not created yet."""
    db = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    return db


def assert_no_finished_run(db: Path) -> None:
    """No MLflow run in `db` is marked finished (a failed command must not look like a success)."""
    if db.exists():
        with sqlite3.connect(db) as connection:
            statuses = [row[0] for row in connection.execute("SELECT status FROM runs")]
        assert "FINISHED" not in statuses, statuses


@dataclass(frozen=True)
class ConfigCase:
    yaml: str | None  # the --config file's text (None: the file does not exist); {tmp} is the test's dir
    where: str  # how the message starts: {cfg} the config file, {src} "<it> + overrides", {tmp} the test's dir
    words: tuple[str, ...] = ()
    argv: tuple[str, ...] = ()  # flags and overrides after --config


TRAIN_CASES = {
    "yaml syntax error": ConfigCase("train:\n  max_steps: 30\n  run_name: [a,\n", "{cfg}:4: invalid YAML"),
    "yaml duplicate key": ConfigCase("train:\n  max_steps: 30\n  warmup_steps: 1\n  max_steps: 40\n",
                                     "{cfg}:4: invalid YAML", ("duplicate key 'max_steps'",)),
    "top level not a mapping": ConfigCase("- train\n", "{cfg}: top level must be a mapping"),
    "missing config file": ConfigCase(None, "{cfg}: cannot read", ("No such file",)),
    "unknown key": ConfigCase("train:\n  max_stpes: 3\n", "{src}: train.max_stpes: unknown key"),
    "wrong type": ConfigCase("train:\n  micro_batch_size: many\n", "{src}: train.micro_batch_size: ", ("integer",)),
    "bf16 on CPU workers": ConfigCase("train:\n  precision: bf16\n", "{src}: train.precision: ", ("use_gpu",)),
    "warmup not shorter than the run": ConfigCase("train:\n  max_steps: 10\n  warmup_steps: 10\n",
                                                  "{src}: train.warmup_steps: ", ("max_steps (10)",)),
    "fault rank beyond the workers": ConfigCase("scaling:\n  num_workers: 2\nfaults:\n  kill_at_step: 3\n"
                                                "  kill_rank: 2\n", "{src}: faults.kill_rank: ", ("num_workers=2",)),
    "fault step after the run": ConfigCase("train:\n  max_steps: 5\n  warmup_steps: 1\nfaults:\n  kill_at_step: 9\n",
                                           "{src}: faults.kill_at_step: ", ("never fire",)),
    "override unknown key": ConfigCase("", "{src}: train.max_stepz: unknown key", argv=("train.max_stepz=3",)),
    "override bad value": ConfigCase("", "{src}: train.max_steps: ", ("integer",), ("train.max_steps=abc",)),
    "override invalid yaml": ConfigCase("", "override: train.max_steps: value '[1' is not valid YAML",
                                        argv=("train.max_steps=[1",)),
    "negative --workers": ConfigCase("", "{src}: scaling.num_workers: ", ("0",), ("--workers", "-1")),
    "data.store not a gene store": ConfigCase("data:\n  store: {tmp}/cfg.yaml\n", "{tmp}/cfg.yaml: not a gene store"),
    "data.store missing": ConfigCase("data:\n  store: {tmp}/none.zarr\n", "config: data.store: ", ("gp ingest",)),
}


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_train_bad_config(case: str, tmp_path: Path, tracking_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = TRAIN_CASES[case]
    cfg = tmp_path / "cfg.yaml"
    if spec.yaml is not None:
        write(cfg, spec.yaml.format(tmp=tmp_path))
    argv = ["train", "--config", str(cfg), *spec.argv, f"train.storage_path={tmp_path}/runs"]
    message = one_error_line(argv, capsys)
    assert message.startswith(spec.where.format(cfg=cfg, src=f"{cfg} + overrides", tmp=tmp_path)), message
    for word in spec.words:
        assert word in message, message
    assert not (tmp_path / "runs").exists()  # no run directory, no checkpoint
    assert not tracking_db.exists()  # MLflow never reached: no run, finished or not


INGEST_CONFIG_CASES = {
    "min_genes below 1": ConfigCase("ingest:\n  min_genes: 0\n", "{src}: ingest.min_genes: ", ("greater than",)),
    "unknown GO format": ConfigCase("ingest:\n  go_format: gff\n", "{src}: ingest.go_format: ", ("gene2go",)),
    "tab-indented yaml": ConfigCase("ingest:\n\tmin_genes: 3\n", "{cfg}:2: invalid YAML"),
    "split leaves no training genes": ConfigCase("ingest:\n  split:\n    valid_fraction: 0.5\n    test_fraction: 0.5\n",
                                                 "{src}: ingest.split: ", ("no training genes",)),
    "--go without --go-ontology": ConfigCase("ingest:\n  go: {tmp}/cfg.yaml\n", "ingest: ingest.go_ontology: "),
}


@pytest.mark.parametrize("case", list(INGEST_CONFIG_CASES))
def test_ingest_bad_config(case: str, inputs: Inputs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = INGEST_CONFIG_CASES[case]
    out = tmp_path / "out.zarr"
    d = inputs.data
    files = {"fasta": d.fasta, "labels": d.labels, "ontology": d.mp_obo, "out": out}
    cfg = write(tmp_path / "cfg.yaml", spec.yaml.format(tmp=tmp_path))
    argv = ["ingest", "--quiet", "--config", str(cfg), "--labels-format", "mgi", "--alphabet", "dna"]
    for flag, path in files.items():
        argv += [f"--{flag}", str(path)]
    message = one_error_line(argv, capsys)
    assert message.startswith(spec.where.format(cfg=cfg, src=f"{cfg} + overrides", tmp=tmp_path)), message
    for word in spec.words:
        assert word in message, message
    assert_nothing_at(out)


# --- stores: gp inspect, gp baseline --store, gp evaluate --store ----------------------------------


@dataclass(frozen=True)
class DamageCase:
    argv: Callable[[Path, Path], list[str]]  # (damaged path, demo store) -> argv
    damage: Callable[[Path], object]  # breaks a sound store (or checkpoint) in place
    where: str  # how the message starts; {path}: the damaged path, {run}: its parent, {uri}: tracking URI
    words: tuple[str, ...] = ()


def _flip_residue_bytes(store: Path) -> None:
    shard = store / "seq" / "residues" / "c" / "0"  # the demo store's residues fit in one shard
    data = bytearray(shard.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0xFF
    write(shard, bytes(data))


def _schema_version(store: Path, version: int) -> None:
    meta = json.loads((store / "zarr.json").read_text())
    meta["attributes"]["schema_version"] = version
    write(store / "zarr.json", json.dumps(meta))


def _replace_by_file(path: Path) -> None:
    shutil.rmtree(path)
    write(path, "not a store")


def _inspect(store: Path, _: Path) -> list[str]:
    return ["inspect", str(store)]


STORE_CASES = {
    "inspect: a regular file": DamageCase(_inspect, _replace_by_file, "{path}: not a gene store"),
    "inspect: an empty directory": DamageCase(_inspect, lambda s: (shutil.rmtree(s), s.mkdir()),
                                              "{path}: not a gene store"),
    "inspect: zarr.json truncated": DamageCase(
        _inspect, lambda s: write(s / "zarr.json", (s / "zarr.json").read_bytes()[:5000]), "{path}/zarr.json:"),
    "inspect: zarr.json garbage": DamageCase(_inspect, lambda s: write(s / "zarr.json", bytes(range(256))),
                                             "{path}/zarr.json:"),
    "inspect: array metadata garbage": DamageCase(_inspect, lambda s: write(s / "seq/offsets/zarr.json", "{"),
                                                  "{path}/seq/offsets/zarr.json:"),
    "inspect: another schema version": DamageCase(_inspect, lambda s: _schema_version(s, 99),
                                                  "{path}: schema version 99"),
    "inspect: array missing": DamageCase(_inspect, lambda s: shutil.rmtree(s / "genes/split"), "{path}: ",
                                         ("genes/split",)),
    "inspect: corrupted residue shard": DamageCase(_inspect, _flip_residue_bytes, "{path}: corrupted residue data",
                                                   ("seq/residues/c/0",)),
    "baseline: corrupted residue shard": DamageCase(
        lambda s, _: ["baseline", "--store", str(s), "--name", "naive", "--report", str(s.parent / "report.json")],
        _flip_residue_bytes, "{path}: corrupted residue data", ("seq/residues/c/0",)),
    "evaluate: --store is a file": DamageCase(
        lambda s, _: ["evaluate", "--quiet", "--checkpoint", str(s.parent), "--store", str(s), "--report",
                      str(s.parent / "report.json")], _replace_by_file, "{path}: not a gene store"),
}
@pytest.mark.parametrize("case", sorted(STORE_CASES))
def test_bad_store(case: str, demo_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = STORE_CASES[case]
    store = shutil.copytree(demo_store, tmp_path / "store.zarr")
    spec.damage(store)
    message = one_error_line(spec.argv(store, demo_store), capsys)
    assert message.startswith(spec.where.format(path=store)), message
    for word in spec.words:
        assert word in message, message
    assert not (tmp_path / "report.json").exists()


def test_inspect_verifies_a_sound_store(demo_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The checksum pass of `gp inspect` (which catches the corrupted shard above) passes a sound store."""
    assert main(["inspect", str(demo_store)]) == 0
    out = capsys.readouterr().out
    assert f"{demo_store}: schema 1, alphabet protein, 500 genes, residue checksums verified" in out


# --- model URIs and checkpoints: gp predict --model, gp evaluate --checkpoint, gp explain -----------


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An existing, empty MLflow tracking database (no registered model, no run)."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('registry')}/mlflow.db"
    MlflowClient(uri).search_experiments()  # creates the tables
    return uri


def make_checkpoint(directory: Path, store: Path) -> Path:
    """A complete-looking checkpoint of the demo config (checkpoint.py contract: config.yaml, meta.json
    written last, trainable.safetensors); its weights are placeholders, the cases break it further."""
    directory.mkdir(parents=True)
    demo = load_config(Path(__file__).parents[2] / "configs" / "demo.yaml", typed_values={"data.store": store})
    save_file({"head.weight": torch.zeros(8, 8)}, str(directory / "trainable.safetensors"))
    meta = CheckpointMeta(step=1, world_size=1, zero_stage=2, tracking_run_id=None)
    write_meta(directory, meta, config_to_yaml(demo))
    return directory


def _truncate(path: Path) -> None:
    write(path, path.read_bytes()[: path.stat().st_size // 2])


def _predict(model: str, *extra: str) -> Callable[[Path, Path], list[str]]:
    return lambda c, _: ["predict", "--quiet", "--model", model.format(path=c, run=c.parent),
                         *(e.format(path=c) for e in extra)]


def _evaluate(c: Path, store: Path) -> list[str]:
    return ["evaluate", "--quiet", "--checkpoint", str(c), "--store", str(store), "--report",
            str(c.parent / "report.json")]


def _nothing(_: Path) -> None:
    return None


MODEL_CASES = {
    "models:/ name not in the registry": DamageCase(_predict("models:/no-such-model@champion"), _nothing,
                                                    "models:/no-such-model@champion: ", ("{uri}", "not found")),
    "models:/ without a name": DamageCase(_predict("models:/"), _nothing, "models:/: ", ("models:/name",)),
    "runs:/ of an unknown run": DamageCase(_predict("runs:/0123456789abcdef/model"), _nothing,
                                           "runs:/0123456789abcdef/model: ", ("not found",)),
    "tracking database missing": DamageCase(
        _predict("models:/genepheno@champion", "--tracking-uri", "sqlite:///{path}/none.db"), _nothing,
        "sqlite:///{path}/none.db: no MLflow database"),
    "directory that is not a model": DamageCase(_predict("{path}"), lambda c: [p.unlink() for p in list(c.iterdir())],
                                                "{path}: not a models:/ or runs:/ URI"),
    "model path that does not exist": DamageCase(_predict("{path}/missing"), _nothing, "{path}/missing: no such model"),
    "predict: checkpoint without meta.json": DamageCase(_predict("{path}"), lambda c: (c / "meta.json").unlink(),
                                                        "{path}: incomplete checkpoint"),
    "predict: run without a complete checkpoint": DamageCase(_predict("{run}"), lambda c: (c / "meta.json").unlink(),
                                                             "{run}: run directory without a complete checkpoint"),
    "predict: truncated safetensors": DamageCase(_predict("{path}"), lambda c: _truncate(c / "trainable.safetensors"),
                                                 "{path}/trainable.safetensors: "),
    "predict: MLmodel file unparsable": DamageCase(_predict("{path}"), lambda c: write(c / "MLmodel", "flavors: [\n"),
                                                   "{path}", ("MLmodel",)),
    "predict: --out is a directory": DamageCase(
        lambda c, _: ["predict", "--quiet", "--model", str(c), "--out", str(c)], _nothing,
        "{path}: --out must name a file"),
    "evaluate: checkpoint without meta.json": DamageCase(_evaluate, lambda c: (c / "meta.json").unlink(),
                                                         "{path}: incomplete checkpoint (no meta.json)"),
    "evaluate: meta.json truncated": DamageCase(_evaluate, lambda c: _truncate(c / "meta.json"),
                                                "{path}/meta.json: invalid JSON"),
    "evaluate: meta.json without its step": DamageCase(
        _evaluate, lambda c: write(c / "meta.json", '{"format_version": 1}'), "{path}/meta.json: ", ("step",)),
    "evaluate: config.yaml unparsable": DamageCase(_evaluate, lambda c: write(c / "config.yaml", "train: [1,\n"),
                                                   "{path}/config.yaml:2: invalid YAML"),
    "evaluate: config.yaml missing": DamageCase(_evaluate, lambda c: (c / "config.yaml").unlink(),
                                                "{path}/config.yaml: cannot read"),
    "evaluate: truncated safetensors": DamageCase(_evaluate, lambda c: _truncate(c / "trainable.safetensors"),
                                                  "{path}/trainable.safetensors: "),
    "explain: --log-to-run of an unknown run": DamageCase(
        lambda c, _: ["explain", "--quiet", "--model", str(c), "--out-dir", str(c.parent / "explained"),
                      "--log-to-run", "0123456789abcdef"], _nothing, "{uri}: no MLflow run 0123456789abcdef"),
}


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_bad_model(case: str, demo_store: Path, registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   capsys: pytest.CaptureFixture[str]) -> None:
    spec = MODEL_CASES[case]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry)
    checkpoint = make_checkpoint(tmp_path / "run" / "checkpoint_00000001", demo_store)
    spec.damage(checkpoint)
    argv = spec.argv(checkpoint, demo_store)
    if argv[0] in ("predict", "explain"):
        argv += ["--fasta", str(write(tmp_path / "genes.fasta", ">g1\nMKVLAAGIVGLLLAQ\n")), "--store", str(demo_store)]
    if argv[0] == "predict" and "--out" not in argv:
        argv += ["--out", str(tmp_path / "predictions.tsv"), "--cafa", str(tmp_path / "predictions.cafa")]
    message = one_error_line(argv, capsys)
    assert message.startswith(spec.where.format(path=checkpoint, run=checkpoint.parent, uri=registry)), message
    for word in spec.words:
        assert word.format(uri=registry) in message, message
    outputs = {"predictions.tsv", "predictions.cafa", "report.json", "explained", "none.db"}
    assert [p.name for p in tmp_path.rglob("*") if p.name in outputs] == []
    assert_no_finished_run(Path(registry.removeprefix("sqlite:///")))
