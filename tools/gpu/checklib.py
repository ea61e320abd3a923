"""Standard-library helpers of the GPU check: the wheel list, item records and the summary, metadata stubs.

Nothing here imports a third-party package, so the summary is written even when the environment under
test cannot import torch. Subcommands (used by tools/gpu/check.sh):
    python tools/gpu/checklib.py record --items F --summary OUT.json --name N --status S --rc RC --seconds T
                                        [--log LOG] [--result JSON] [--jsonl JSONL --expect a,b,...]
    python tools/gpu/checklib.py finish --items F --summary OUT.json       (also prints the table)
    python tools/gpu/checklib.py metadata-stubs --dir DIR                  (see `metadata_stubs`)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WHEEL_LIST = HERE / "wheels.txt"
DEVICE_IMAGE = HERE / "device_image.txt"
STATUSES = ("ok", "failed", "timeout", "skipped")


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of -_. as one -."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Wheel:
    name: str  # as written in the list
    version: str
    build: bool  # built from the sdist
    group: str | None

    @property
    def key(self) -> str:
        return normalize(self.name)


def read_wheel_list(path: Path = WHEEL_LIST) -> tuple[list[Wheel], dict[str, str]]:
    """(wheels to carry, {excluded name: reason}) from tools/gpu/wheels.txt."""
    wheels: list[Wheel] = []
    excluded: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line, _, comment = raw.partition("#")
        line = line.strip()
        if not line:
            continue
        if line.startswith("-"):
            excluded[normalize(line[1:].strip())] = comment.strip()
            continue
        spec, *flags = line.split()
        name, sep, version = spec.partition("==")
        if not sep or not version:
            raise ValueError(f"{path}:{number}: expected NAME==VERSION, got {spec!r}")
        group = None
        for flag in flags:
            if flag.startswith("group="):
                group = flag[len("group="):]
            elif flag != "build":
                raise ValueError(f"{path}:{number}: unknown flag {flag!r}")
        wheels.append(Wheel(name, version, "build" in flags, group))
    keys = [w.key for w in wheels]
    if len(keys) != len(set(keys)):
        raise ValueError(f"{path}: a package is listed twice")
    return wheels, excluded


def read_device_image(path: Path = DEVICE_IMAGE) -> set[str]:
    """Normalized names of the distributions in the device image."""
    return {normalize(line.strip()) for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")}


def wheel_file_name_version(filename: str) -> tuple[str, str] | None:
    """('zarr', '3.1.6') for 'zarr-3.1.6-py3-none-any.whl'; None for other files."""
    if not filename.endswith(".whl"):
        return None
    parts = filename[:-4].split("-")
    return (normalize(parts[0]), parts[1]) if len(parts) >= 5 else None


# ------------------------------------------------------------------------------------- metadata stubs

# gp_distributed/checkpoint.py `library_versions()` asks importlib.metadata for these when it writes a
# checkpoint; on the device ray is absent, mlflow is carried as mlflow-skinny (another distribution name)
# and gp_distributed runs from the working tree without being installed.
VERSIONED = ("torch", "deepspeed", "ray", "transformers", "peft", "zarr", "mlflow", "gp_distributed")


def _project_version() -> str:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


ALIASES = {"mlflow": "mlflow-skinny"}  # the carried distribution that provides the module


def _alias_version(name: str) -> str | None:
    try:
        return metadata.version(ALIASES[name]) if name in ALIASES else None
    except metadata.PackageNotFoundError:
        return None


def metadata_stubs(directory: Path) -> dict[str, str]:
    """Metadata-only `.dist-info` folders in `directory` (put it on sys.path) for each of VERSIONED that has
    no metadata here: gp_distributed gets pyproject's version, mlflow that of mlflow-skinny where that provides
    the module (MLflow warns when the two differ), the others `0+absent`. No module is created,
    so an import of ray still fails; only `importlib.metadata.version` answers. Returns {name: version}."""
    written = {}
    for name in VERSIONED:
        try:
            metadata.version(name)
            continue
        except metadata.PackageNotFoundError:
            pass
        version = _project_version() if name == "gp_distributed" else _alias_version(name) or "0+absent"
        info = directory / f"{name}-{version}.dist-info"
        info.mkdir(parents=True, exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        written[name] = version
    return written


# ------------------------------------------------------------------------------------ items and summary


def _tail(path: Path | None, lines: int = 6) -> str:
    if path is None or not path.is_file():
        return ""
    text = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return "\n".join(text[-lines:])[-1500:]


def _load_items(items: Path) -> list[dict[str, Any]]:
    if not items.is_file():
        return []
    return [json.loads(line) for line in items.read_text().splitlines() if line.strip()]


def record(args: argparse.Namespace) -> None:
    """Append the item (and the sub-items of a JSONL result) to the items file; rewrite the summary."""
    status = args.status
    entry: dict[str, Any] = {"name": args.name, "status": status, "rc": args.rc, "seconds": round(args.seconds, 2)}
    if args.result and Path(args.result).is_file():
        try:
            entry["result"] = json.loads(Path(args.result).read_text())
        except json.JSONDecodeError as error:
            entry["result_error"] = str(error)
    if status != "ok":
        reported = (entry.get("result") or {}).get("errors") if isinstance(entry.get("result"), dict) else None
        entry["error"] = args.error or (json.dumps(reported) if reported else "") or _tail(
            Path(args.log) if args.log else None)
    elif args.error:
        entry["note"] = args.error
    elif "result" not in entry and args.log:
        entry["note"] = _tail(Path(args.log), 1)[-200:]
    entries = [entry]
    if args.jsonl:
        seen = {}
        path = Path(args.jsonl)
        for line in path.read_text().splitlines() if path.is_file() else []:
            try:
                sub = json.loads(line)
            except json.JSONDecodeError:
                continue
            seen[sub.get("name", "?")] = sub
        for name in [n for n in (args.expect or "").split(",") if n]:
            if name not in seen:
                cause = status if status in ("timeout", "skipped") else "failed"
                seen[name] = {"name": name, "status": cause,
                              "error": f"the {args.name} process ended ({status}, rc {args.rc}) before this item"}
        for name, sub in seen.items():
            sub_status = sub.get("status", "failed")
            entries.append({"name": name, "status": sub_status if sub_status in STATUSES else "failed",
                            "part_of": args.name, "seconds": round(float(sub.get("seconds", 0.0)), 2),
                            **({"error": sub["error"]} if "error" in sub else {}),
                            "result": {k: v for k, v in sub.items() if k not in ("name", "status", "error")}})
    with open(args.items, "a") as handle:
        handle.writelines(json.dumps(item) + "\n" for item in entries)
    write_summary(Path(args.items), Path(args.summary), final=False)


def write_summary(items: Path, summary: Path, *, final: bool) -> dict[str, Any]:
    loaded = _load_items(items)
    meta_path = items.with_name("meta.json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    counts = {status: sum(1 for i in loaded if i["status"] == status) for status in STATUSES}
    payload = {**meta, "complete": final, "updated_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
               "counts": counts, "items": loaded}
    summary.write_text(json.dumps(payload, indent=1) + "\n")
    return payload


def _headline(item: dict[str, Any]) -> str:
    result = item.get("result") or {}
    if "mfu" in result:
        return (f"{result.get('step_seconds', 0):.3f} s/step, {result.get('achieved_tflops', 0):.3g} TFLOP/s, "
                f"MFU {100 * result['mfu']:.1f} % (causal {100 * result.get('mfu_causal_attention', 0):.1f} %), "
                f"peak {result.get('peak_memory_gib') or 0:.1f} GiB")
    if "tflops_median" in result:
        return f"peak {result['tflops_median']:.3g} TFLOP/s ({result.get('dtype')}, n={result.get('n')})"
    if "genes_per_second" in result:
        memory = (f", peak {result['peak_gib']:.2f} GiB vs ZeRO {result['predicted_model_states_gib']:.2f} GiB"
                  if result.get("peak_gib") is not None else "")
        return (f"{result['genes_per_second']:.2f} genes/s, {result['tokens_per_second']:.0f} tokens/s, "
                f"{result['step_seconds']:.3f} s/step{memory}")
    text = item.get("error") or item.get("note") or ""
    return text.strip().splitlines()[-1][:110] if text.strip() else ""


def finish(args: argparse.Namespace) -> int:
    payload = write_summary(Path(args.items), Path(args.summary), final=True)
    print(f"\n{'item':42} {'status':8} {'s':>6}  detail")
    for item in payload["items"]:
        print(f"{item['name'][:42]:42} {item['status']:8} {item.get('seconds', 0):6.1f}  {_headline(item)}")
    print(f"counts: {payload['counts']}  summary: {args.summary}")
    return 1 if payload["counts"]["failed"] or payload["counts"]["timeout"] else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("--items", required=True)
    rec.add_argument("--summary", required=True)
    rec.add_argument("--name", required=True)
    rec.add_argument("--status", choices=STATUSES, required=True)
    rec.add_argument("--rc", type=int, default=0)
    rec.add_argument("--seconds", type=float, default=0.0)
    rec.add_argument("--log")
    rec.add_argument("--error")
    rec.add_argument("--result")
    rec.add_argument("--jsonl")
    rec.add_argument("--expect")
    fin = sub.add_parser("finish")
    fin.add_argument("--items", required=True)
    fin.add_argument("--summary", required=True)
    stubs = sub.add_parser("metadata-stubs")
    stubs.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "record":
        record(args)
        return 0
    if args.command == "finish":
        return finish(args)
    written = metadata_stubs(args.dir)
    print(json.dumps(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
