"""cluster/: the local head scripts against a real Ray 2.60 head, and the cluster specs as Ray reads them.

The head test is the one place a shell script is the thing under test. It starts its own head on
free loopback ports in a fresh temp dir with a token file of its own, talks to it only at the
addresses it recorded (never `ray.init()` without an address, never `ray stop`), and always stops it
with cluster/stop-local-head.sh. The spec tests parse the YAML files and check them with Ray's own
schema and packaging code.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml

from .loopback_cluster import free_ports

REPO_ROOT = Path(__file__).resolve().parents[2]
CLUSTER_DIR = REPO_ROOT / "cluster"
LOCAL_HEAD = CLUSTER_DIR / "local-head.sh"
STOP_HEAD = CLUSTER_DIR / "stop-local-head.sh"
RAY_BIN = Path(sys.executable).parent / "ray"
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}
# Env vars `gp train` passes in its own ray.init(runtime_env=...): a job runtime env naming any of them
# makes Ray 2.60 fail the job ("Failed to merge the Job's runtime env").
LAUNCHER_ENV_VARS = {"RAY_AUTH_MODE", "TOKENIZERS_PARALLELISM", "DS_ACCELERATOR"}


def _isolated_env(**extra: str) -> dict[str, str]:
    """This environment without anything that could point a Ray client at some other cluster or token."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_API_SERVER_ADDRESS"}}
    env["GP_RAY_BIN"] = str(RAY_BIN)
    env.update(extra)
    return env


def _run(argv: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a command to completion with its output captured as text; callers assert on the exit status."""
    return subprocess.run(argv, env=env, check=False, capture_output=True, text=True, timeout=timeout)


def _run_together(commands: list[tuple[list[str], dict[str, str]]]) -> list[subprocess.CompletedProcess[str]]:
    """Run (argv, env) pairs at once; their results in order."""
    running = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for argv, env in commands]
    results = []
    for process in running:
        stdout, stderr = process.communicate(timeout=60)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    return results


def _read_state(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line)


def _http_status(url: str, token: str | None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _session_processes(leader_pid: int) -> list[psutil.Process]:
    """The head's processes: its session and the descendants of those (a job's driver has its own session)."""
    members = [p for p in psutil.process_iter() if _sid(p) == leader_pid]
    for process in list(members):
        members += [child for child in _children(process) if child not in members]
    return members


def _still_running(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those not gone within 5 s; a zombie counts as gone (it holds nothing but its pid)."""
    deadline = time.monotonic() + 5
    while True:
        running = [p for p in processes if _alive(p)]
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.2)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _sid(process: psutil.Process) -> int | None:
    try:
        return os.getsid(process.pid)
    except (ProcessLookupError, PermissionError):
        return None


def _children(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.fixture
def head_dir() -> Iterator[Path]:
    # Short and fresh: Ray puts unix sockets ~64 characters below its temp dir (limit 107).
    path = Path(tempfile.mkdtemp(prefix="gph-", dir="/tmp"))
    try:
        yield path
    finally:
        state = path / "gp-head.env"
        if state.exists():
            _run([str(STOP_HEAD), str(state)])
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.integration
@pytest.mark.timeout(150)
def test_local_head_on_loopback_with_token_auth_stops_only_itself(head_dir: Path) -> None:
    gcs_port, dashboard_port = free_ports(2)
    token_file = head_dir / "token"
    started = _run([str(LOCAL_HEAD), "--port", str(gcs_port), "--dashboard-port", str(dashboard_port),
                    "--num-cpus", "1", "--temp-dir", str(head_dir), "--token-file", str(token_file),
                    "--start-timeout", "75"], env=_isolated_env(), timeout=90)
    assert started.returncode == 0, started.stdout + started.stderr

    state = _read_state(head_dir / "gp-head.env")
    dashboard_url = f"http://127.0.0.1:{dashboard_port}"
    assert state["GP_HEAD_GCS_ADDRESS"] == f"127.0.0.1:{gcs_port}"
    assert state["GP_HEAD_DASHBOARD_URL"] == dashboard_url
    assert state["GP_HEAD_TOKEN_PATH"] == str(token_file)
    assert f"GCS address:   127.0.0.1:{gcs_port}" in started.stdout
    assert (f"RAY_AUTH_TOKEN_PATH={token_file} RAY_AUTH_MODE=token {RAY_BIN} job submit --address {dashboard_url} "
            f"--working-dir {REPO_ROOT} --runtime-env {CLUSTER_DIR / 'runtime_env.yaml'} -- "
            f"gp train --config configs/demo.yaml train.storage_path={REPO_ROOT}/runs "
            f"tracking.tracking_uri=sqlite:///{REPO_ROOT}/mlflow.db") in started.stdout
    token = token_file.read_text()
    assert re.fullmatch(r"[0-9a-f]{64}", token) and token_file.stat().st_mode & 0o077 == 0

    leader_pid = int(state["GP_HEAD_LEADER_PID"])
    processes = _session_processes(leader_pid)
    names = {p.name() for p in processes}
    assert {"gcs_server", "raylet"} <= names, names
    pids = {p.pid for p in processes}
    listening = [c for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN and c.pid in pids]
    assert listening and {c.laddr.ip for c in listening} <= LOOPBACK, listening

    # The job API: the token opens it; none is 401, a wrong one 403.
    assert _http_status(f"{dashboard_url}/api/jobs/", token) == 200
    assert _http_status(f"{dashboard_url}/api/jobs/", None) == 401
    assert _http_status(f"{dashboard_url}/api/jobs/", "0" * 64) == 403
    # The real CLI, as a user runs it: the job client over HTTP, and a GCS client (which needs Ray's
    # single-machine mode to dial 127.0.0.1, see cluster/README.md); run side by side to save time.
    with_token = _isolated_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_file))
    wrong_token = _isolated_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0" * 64)
    single_machine = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    job_list = [str(RAY_BIN), "job", "list", "--address", dashboard_url]
    status = [str(RAY_BIN), "status", "--address", state["GP_HEAD_GCS_ADDRESS"]]
    listed, shown, denied = _run_together([
        (job_list, with_token), (status, with_token | single_machine), (status, wrong_token | single_machine)])
    assert listed.returncode == 0, listed.stderr
    # The autoscaler's status report can lag the head's start by a few seconds on a loaded machine.
    deadline = time.monotonic() + 60
    while "No cluster status" in shown.stdout + shown.stderr and time.monotonic() < deadline:
        time.sleep(2)
        shown = _run(status, env=with_token | single_machine)
    assert shown.returncode == 0 and "0.0/1.0 CPU" in shown.stdout, shown.stdout + shown.stderr
    assert denied.returncode != 0 and "InvalidAuthToken" in denied.stderr

    bystander = subprocess.Popen(["sleep", "120"])  # not the head's: must outlive the stop
    try:
        stopped = _run([str(STOP_HEAD), str(head_dir / "gp-head.env")])
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert f"head {leader_pid} stopped" in stopped.stdout
        assert not _still_running(processes), [p.pid for p in _still_running(processes)]
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", dashboard_port), timeout=2).close()
    again = _run([str(STOP_HEAD), str(head_dir / "gp-head.env")])
    assert again.returncode == 0 and "already stopped" in again.stdout


def test_scripts_refuse_bad_usage_before_starting_anything(tmp_path: Path) -> None:
    unknown = _run([str(LOCAL_HEAD), "--bogus"], env=_isolated_env())
    assert unknown.returncode == 2 and "unknown argument: --bogus" in unknown.stderr
    long_dir = tmp_path / ("x" * 60)
    too_long = _run([str(LOCAL_HEAD), "--temp-dir", str(long_dir)], env=_isolated_env())
    assert too_long.returncode == 2 and "unix sockets" in too_long.stderr
    assert not long_dir.exists()

    missing = _run([str(STOP_HEAD), str(tmp_path / "none.env")])
    assert missing.returncode == 2 and "no such state file" in missing.stderr
    bad = tmp_path / "bad.env"
    bad.write_text("GP_HEAD_LEADER_PID=1\nrm -rf /\n")
    refused = _run([str(STOP_HEAD), str(bad)])
    assert refused.returncode == 2 and f"{bad}:2: not a local-head state line" in refused.stderr


def test_runtime_env_uploads_the_code_and_demo_data_and_nothing_heavy(tmp_path: Path) -> None:
    from ray._private.runtime_env.packaging import create_package

    runtime_env = yaml.safe_load((CLUSTER_DIR / "runtime_env.yaml").read_text())
    assert set(runtime_env) == {"excludes", "env_vars"}
    assert not LAUNCHER_ENV_VARS & set(runtime_env["env_vars"])
    assert all(isinstance(v, str) for v in runtime_env["env_vars"].values())

    tree = tmp_path / "repo"
    kept = ["gp_distributed/cli.py", "gp_distributed/data/build/keep.py", "configs/demo.yaml",
            "data/demo/proteins.fasta.gz", "cluster/runtime_env.yaml"]
    dropped = [".git/HEAD", ".venv/bin/python", "build/demo_store.zarr/zarr.json", "runs/demo/ckpt",
               "mlruns/0/meta.yaml", "mlflow.db", "gp_distributed/__pycache__/cli.cpython-311.pyc",
               "gp_distributed.egg-info/PKG-INFO", ".pytest_cache/v/cache"]
    for name in kept + dropped:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(name)
    package = tmp_path / "package.zip"
    create_package(str(tree), package, include_gitignore=False, excludes=runtime_env["excludes"])
    uploaded = {n for n in zipfile.ZipFile(package).namelist() if not n.endswith("/")}
    assert uploaded == set(kept)


def test_ray_cluster_launcher_spec_passes_rays_schema_with_token_auth_everywhere() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    spec = yaml.safe_load((CLUSTER_DIR / "ray-cluster.yaml").read_text())
    validate_config(prepare_config(spec))  # Ray's own JSON schema, after filling the AWS defaults
    assert spec["docker"]["image"] == "rayproject/ray:2.60.0-py311-gpu"
    assert "--env RAY_AUTH_MODE=token" in spec["docker"]["run_options"]
    starts = [c for c in spec["head_start_ray_commands"] + spec["worker_start_ray_commands"] if "ray start" in c]
    assert len(starts) == 2 and all("RAY_AUTH_MODE=token ray start" in c for c in starts)
    assert "--dashboard-host=127.0.0.1" in spec["head_start_ray_commands"][-1]
    assert spec["file_mounts"]["/home/ray/.ray/auth_token"] == "~/.ray/auth_token"
    gpu = spec["available_node_types"]["gpu_8x_h100"]["node_config"]
    assert gpu["InstanceType"] == "p5.48xlarge"
    cuda_torch = '"torch==2.13.0" --index-url https://download.pytorch.org/whl/cu128'
    assert any(cuda_torch in command for command in spec["setup_commands"])


def test_kuberay_rayjob_runs_gp_train_on_8_gpu_pods_with_token_auth_and_pinned_images() -> None:
    job = yaml.safe_load((CLUSTER_DIR / "kuberay-rayjob.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    assert spec["entrypoint"].startswith("gp train --config configs/generator-1.2b-lora.yaml ")
    assert spec["shutdownAfterJobFinishes"] is True
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == "2.60.0"
    assert cluster["authOptions"] == {"mode": "token", "secretName": "gp-ray-token"}
    assert not LAUNCHER_ENV_VARS & set(yaml.safe_load(spec["runtimeEnvYAML"]).get("env_vars", {}))
    (worker_group,) = cluster["workerGroupSpecs"]
    (worker,) = worker_group["template"]["spec"]["containers"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 8
    assert worker["resources"]["requests"]["nvidia.com/gpu"] == 8
    (head,) = cluster["headGroupSpec"]["template"]["spec"]["containers"]
    images = {head["image"], worker["image"]}
    assert len(images) == 1 and re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+-ray2\.60\.0-py311-cu\d+", images.pop())


def test_every_cluster_file_keeps_token_auth_and_no_secret() -> None:
    """Each file in cluster/ is checked here, so a new one cannot arrive without a token-auth check."""
    texts = {path.name: path.read_text() for path in CLUSTER_DIR.iterdir() if path.is_file()}
    assert set(texts) == {"local-head.sh", "stop-local-head.sh", "runtime_env.yaml", "ray-cluster.yaml",
                          "kuberay-rayjob.yaml", "README.md", "loopback_node.py"}
    for name, text in texts.items():
        assert not re.search(r"\b[0-9a-f]{64}\b", text), f"{name} holds something shaped like a token"
    assert "export RAY_AUTH_MODE=token" in texts["local-head.sh"]
    # A loopback worker node forces token auth and single-machine mode (loopback) on every process it starts.
    assert 'os.environ["RAY_AUTH_MODE"] = "token"' in texts["loopback_node.py"]
    assert 'os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"' in texts["loopback_node.py"]
    # Never `ray stop`: the head script runs Ray for these two subcommands only, the stop script not at all.
    head_code = _code_lines(texts["local-head.sh"])
    ray_calls = re.findall(r'(?:^\s*|setsid\s+|&&\s*)"\$ray_bin" (\S+)', head_code, re.MULTILINE)
    assert set(ray_calls) == {"get-auth-token", '"${start_args[@]}"'}
    assert re.search(r"start_args=\(start --head --block\b", texts["local-head.sh"])
    assert not re.search(r"ray_bin|^\s*(\S*/)?ray\s", _code_lines(texts["stop-local-head.sh"]), re.MULTILINE)
    # Token auth is a cluster property: the runtime env must not (and cannot) carry it, see the file.
    assert "RAY_AUTH_MODE" not in yaml.safe_load(texts["runtime_env.yaml"])["env_vars"]
    assert yaml.safe_load(texts["ray-cluster.yaml"])["docker"]["run_options"].count("--env RAY_AUTH_MODE=token") == 1
    assert yaml.safe_load(texts["kuberay-rayjob.yaml"])["spec"]["rayClusterSpec"]["authOptions"]["mode"] == "token"
    # Every Ray client command the README tells a user to run carries the token mode.
    commands = [line for line in _bash_blocks(texts["README.md"]) if re.search(r"\bray (job|status)\b", line)]
    assert len(commands) >= 5 and all("RAY_AUTH_MODE=token" in line for line in commands), commands


def _code_lines(script: str) -> str:
    """A shell script without its comment lines."""
    return "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))


def _bash_blocks(markdown: str) -> list[str]:
    """The lines inside the ```bash blocks of a Markdown text."""
    lines, inside = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```bash"
        elif inside:
            lines.append(line)
    return lines
