"""Fill the ignored `.whl/` folder with exactly the wheels of tools/gpu/wheels.txt (see tools/gpu/wheelhouse.sh).

For cp312 manylinux x86_64 (the device machine), one version per package, pinned in wheels.txt: wheels
already there at the pinned version are kept, other versions of a listed package and wheels of unlisted
packages are removed, missing ones are downloaded (`pip download --no-deps --only-binary=:all:`), and
those marked `build` are built from their sdist (`pip wheel --no-deps --no-build-isolation`; DeepSpeed
with DS_BUILD_OPS=0, a pure-Python wheel whose ops JIT-compile on first use). The MLflow group is on
when `--with-mlflow` is 1, off when 0, and with `auto` (default) when `bench_gpu_step.py imports`, run
with the project venv, finds the checked path importing mlflow. Then it prints each wheel (name,
version, MiB), the declared dependencies that are neither carried nor in the device image, and the
total; exits 1 naming the overflow when the total is over `--limit-mib` (default 55: the carry limit is
64 MiB for the whole working tree).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checklib import (
    REPO,
    Wheel,
    normalize,
    read_device_image,
    read_wheel_list,
    wheel_file_name_version,
)

MIB = 2**20
PLATFORMS = ["manylinux_2_39_x86_64", "manylinux_2_35_x86_64", "manylinux_2_34_x86_64", "manylinux_2_31_x86_64",
             "manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64", "linux_x86_64"]


def pip(python: str, *args: str, env: dict[str, str] | None = None) -> None:
    command = [python, "-m", "pip", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, check=False)
    noise = re.compile(r"^WARNING: Location .* is ignored")
    output = "\n".join(line for line in (done.stdout + done.stderr).splitlines() if not noise.match(line))
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed (rc {done.returncode}):\n{output[-3000:]}")


def download(python: str, wheel: Wheel, dest: Path) -> None:
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    pip(python, "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
        "--implementation", "cp", *platforms, "-d", str(dest), f"{wheel.name}=={wheel.version}")


def build(python: str, wheel: Wheel, dest: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="gp-sdist-") as scratch:
        env = {**os.environ, "DS_BUILD_OPS": "0", "DS_ACCELERATOR": "cpu"}
        pip(python, "download", "-q", "--no-deps", "--no-binary=:all:", "--no-build-isolation", "-d", scratch,
            f"{wheel.name}=={wheel.version}", env=env)
        sdists = [p for p in Path(scratch).iterdir() if p.name.endswith((".tar.gz", ".zip"))]
        if len(sdists) != 1:
            raise RuntimeError(f"{wheel.name}: expected one sdist, got {[p.name for p in Path(scratch).iterdir()]}")
        pip(python, "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-cache-dir", "-w", str(dest),
            str(sdists[0]), env=env)


def needs_mlflow(probe_python: str) -> tuple[bool, dict]:
    """Run `bench_gpu_step.py imports` with the project venv: does the checked path import mlflow?"""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "imports.json"
        env = {**os.environ, "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(REPO)}
        done = subprocess.run([probe_python, str(REPO / "tools/gpu/bench_gpu_step.py"), "imports", "--json",
                               str(report)], capture_output=True, text=True, timeout=600, env=env, cwd=REPO,
                              check=False)
        if not report.is_file():
            raise RuntimeError(f"the imports probe failed (rc {done.returncode}):\n{done.stderr[-3000:]}")
        data = json.loads(report.read_text())
    return bool(data["needs_mlflow"]), data


def declared_requirements(path: Path) -> list[str]:
    """Requires-Dist names of a wheel that apply on CPython 3.12 / Linux x86_64 without extras."""
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(name).decode("utf-8", "replace").splitlines()
    try:
        from packaging.markers import Marker
        from packaging.requirements import Requirement
    except ImportError:  # pip's vendored copy
        from pip._vendor.packaging.markers import Marker  # type: ignore[no-redef]
        from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
    environment = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
                   "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
                   "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}
    names = []
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        requirement = Requirement(line.split(":", 1)[1].strip())
        if requirement.marker is None or Marker(str(requirement.marker)).evaluate(environment):
            names.append(normalize(requirement.name))
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=REPO / ".whl")
    parser.add_argument("--limit-mib", type=float, default=float(os.environ.get("LIMIT_MIB", "55")))
    parser.add_argument("--with-mlflow", choices=["auto", "1", "0"], default=os.environ.get("WITH_MLFLOW", "auto"))
    parser.add_argument("--probe-python", default=str(REPO / ".venv/bin/python"),
                        help="the project venv's python: the imports probe and the version cross-check")
    args = parser.parse_args(argv)
    wheels, excluded = read_wheel_list()
    device = read_device_image()

    groups: set[str] = set()
    if args.with_mlflow == "1":
        groups.add("mlflow")
    elif args.with_mlflow == "auto":
        needed, report = needs_mlflow(args.probe_python)
        chain = (report["forced"].get("mlflow") or {}).get("chain", [])
        print(f"imports probe: the checked path {'imports' if needed else 'does not import'} mlflow"
              + (f" ({' <- '.join(chain[:3])})" if needed else ""))
        if report.get("needs_ray"):
            ray_chain = " <- ".join(report["forced"]["ray"].get("chain", [])[:3])
            print(f"ERROR: the checked path imports ray ({ray_chain}); its 79 MB wheel cannot be carried")
            return 1
        if needed:
            groups.add("mlflow")
    selected = [w for w in wheels if w.group is None or w.group in groups]
    wanted = {w.key: w for w in selected}

    # The venv's versions: the tested ones. A difference is reported, the pin in wheels.txt wins.
    script = ("import json, importlib.metadata as m, sys\nout = {}\nfor n in sys.argv[1:]:\n"
              "    try: out[n] = m.version(n)\n    except m.PackageNotFoundError: out[n] = None\nprint(json.dumps(out))")
    probe = subprocess.run([args.probe_python, "-c", script, *[w.name for w in selected]], capture_output=True,
                           text=True, check=False)
    venv_versions = json.loads(probe.stdout) if probe.returncode == 0 else {}
    for wheel in selected:
        have = venv_versions.get(wheel.name)
        if have is not None and have != wheel.version and not have.startswith(wheel.version + "+"):
            print(f"note: {wheel.name}: the venv has {have}, wheels.txt pins {wheel.version}")

    dest = args.dest
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(dest.iterdir()):
        parsed = wheel_file_name_version(path.name)
        keep = parsed is not None and parsed[0] in wanted and parsed[1] == wanted[parsed[0]].version
        if not keep:
            print(f"remove {path.name} ({'not in the list' if parsed is None or parsed[0] not in wanted else 'other version'})")
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    present = {wheel_file_name_version(p.name)[0] for p in dest.glob("*.whl")}
    failures = []
    for wheel in selected:
        if wheel.key in present:
            continue
        print(f"{'build' if wheel.build else 'fetch'} {wheel.name}=={wheel.version}", flush=True)
        try:
            (build if wheel.build else download)(sys.executable, wheel, dest)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            failures.append(f"{wheel.name}=={wheel.version}: {error}")

    files = {wheel_file_name_version(p.name)[0]: p for p in dest.glob("*.whl")}
    total = 0
    print(f"\n{'wheel':38} {'version':14} {'MiB':>7}  group")
    for wheel in selected:
        path = files.get(wheel.key)
        size = path.stat().st_size if path else 0
        total += size
        print(f"{wheel.name:38} {wheel.version:14} {size / MIB:7.2f}  {wheel.group or '-'}{'' if path else '  MISSING'}")
    print(f"{'total':38} {'':14} {total / MIB:7.2f}  ({len(files)} wheels in {dest}; limit {args.limit_mib:g} MiB)")

    tree = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                          check=False)
    if tree.returncode == 0:
        tree_bytes = sum((REPO / name).stat().st_size for name in tree.stdout.decode().split("\0")
                         if name and (REPO / name).is_file())
        print(f"the working tree that travels with them: {tree_bytes / MIB:.2f} MiB; together "
              f"{(tree_bytes + total) / MIB:.2f} MiB of the device tool's 64 MiB")

    carried = set(files) | device | set(excluded)
    unmet = {}
    for key, path in sorted(files.items()):
        missing = [n for n in declared_requirements(path) if n not in carried]
        if missing:
            unmet[key] = missing
    if unmet:
        print("declared by a carried wheel, neither carried nor in the device image (not imported on the checked "
              "path when the simulated image ran it; an ImportError on the device would name them):")
        for key, names in unmet.items():
            print(f"  {key}: {', '.join(names)}")

    status = 0
    if failures:
        print("FAILED to fetch or build:\n  " + "\n  ".join(failures))
        status = 1
    if total > args.limit_mib * MIB:
        biggest = sorted(((files[w.key].stat().st_size, w.name) for w in selected if w.key in files), reverse=True)[:4]
        print(f"OVER THE LIMIT by {(total - args.limit_mib * MIB) / MIB:.2f} MiB: {total / MIB:.2f} MiB > "
              f"{args.limit_mib:g} MiB; largest: " + ", ".join(f"{n} {s / MIB:.1f} MiB" for s, n in biggest))
        status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
