"""Several Ray nodes on this machine, each a `ray start --block` in a session of its own on 127.0.0.1.

A node's processes are its session's members and their descendants (raylet, agents, the workers the
raylet forks), so a node can be killed whole by those pids, and nothing else is ever signalled (never
`ray stop`). Token auth is on: every node and the test's own client use the token Ray keeps in
`~/.ray/auth_token` (the one `launcher.start_local_ray` uses too).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

RAY_BIN = Path(sys.executable).parent / "ray"
LOOPBACK_NODE = Path(__file__).resolve().parents[2] / "cluster" / "loopback_node.py"


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def node_environment(**extra: str) -> dict[str, str]:
    """This environment, token auth on, loopback only, nothing pointing at another cluster."""
    env = {k: v for k, v in os.environ.items() if k not in {"RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"}}
    env.update(RAY_AUTH_MODE="token", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0",
               PATH=f"{RAY_BIN.parent}:{env.get('PATH', '')}", **extra)
    return env


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@dataclass
class Node:
    name: str
    temp_dir: Path  # short (Ray's unix socket paths live ~64 characters below it)
    process: subprocess.Popen[bytes]
    log: Path

    def processes(self) -> list[psutil.Process]:
        """Every live process of this node: its session's members and their descendants (a zombie counts
        as gone: it holds nothing but its pid until its new parent reaps it)."""
        members = []
        for process in psutil.process_iter():
            try:
                if os.getsid(process.pid) == self.process.pid:
                    members.append(process)
            except (ProcessLookupError, PermissionError):
                continue
        for process in list(members):
            try:
                members += [c for c in process.children(recursive=True) if c not in members]
            except psutil.NoSuchProcess:
                continue
        return [p for p in members if _alive(p)]

    def kill(self) -> list[int]:
        """SIGKILL every process of this node, by pid (a node lost to a power cut); returns the pids."""
        killed: list[int] = []
        for _ in range(3):  # a process forked while we signalled is caught by the next sweep
            processes = [p for p in self.processes() if p.pid not in killed]
            if not processes:
                break
            for process in processes:
                try:
                    process.send_signal(signal.SIGKILL)
                    killed.append(process.pid)
                except psutil.NoSuchProcess:
                    continue
            time.sleep(0.2)
        self.process.wait(timeout=10)
        return killed

    def stop(self) -> None:
        """SIGTERM the node's `ray start` (it stops its children), then SIGKILL whatever is left."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        for process in self.processes():
            try:
                process.kill()
            except psutil.NoSuchProcess:
                continue
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@dataclass
class LoopbackCluster:
    """A head (`num_cpus` CPUs, dashboard on for Ray's state API) and worker nodes added on demand."""

    head_cpus: float = 0
    nodes: list[Node] = field(default_factory=list)
    gcs_address: str = ""
    dashboard_url: str = ""

    def start(self) -> LoopbackCluster:
        gcs, dashboard, client, agent, dash_metrics, autoscaler_metrics = free_ports(6)
        self.gcs_address, self.dashboard_url = f"127.0.0.1:{gcs}", f"http://127.0.0.1:{dashboard}"
        self._start_node("head", [
            "--head", f"--port={gcs}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard}", f"--ray-client-server-port={client}",
            f"--dashboard-agent-listen-port={agent}", f"--num-cpus={self.head_cpus}"],
            DASHBOARD_METRIC_PORT=str(dash_metrics), AUTOSCALER_METRIC_PORT=str(autoscaler_metrics))
        return self

    def add_node(self, name: str, num_cpus: float, resources: str | None = None) -> Node:
        (agent,) = free_ports(1)
        args = [f"--address={self.gcs_address}", f"--dashboard-agent-listen-port={agent}", f"--num-cpus={num_cpus}"]
        if resources:
            args.append(f"--resources={resources}")
        return self._start_node(name, args)

    def _start_node(self, name: str, args: list[str], **env: str) -> Node:
        temp_dir = Path(tempfile.mkdtemp(prefix=f"gpn{name[:1]}-", dir="/tmp"))
        log = temp_dir / "ray-start.log"
        # The head is Ray's own CLI; a worker node needs cluster/loopback_node.py to stay on loopback.
        command = [str(RAY_BIN), "start", "--node-ip-address=127.0.0.1"] if name == "head" else [sys.executable, str(LOOPBACK_NODE)]
        argv = [*command, "--block", f"--temp-dir={temp_dir}", "--disable-usage-stats", *args]
        with log.open("wb") as out:
            # A session of its own: the node's processes are exactly that session and its descendants.
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env=node_environment(**env), start_new_session=True)
        node = Node(name, temp_dir, process, log)
        self.nodes.append(node)
        deadline = time.monotonic() + 120
        # `ray start` writes the GCS address into its temp dir once its node is up.
        while not (temp_dir / "ray_current_cluster").is_file():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start of node {name} failed:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        return node

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def stop(self) -> None:
        """Worker nodes first, then the head; temp dirs removed."""
        for node in reversed(self.nodes):
            node.stop()
            shutil.rmtree(node.temp_dir, ignore_errors=True)
        self.nodes.clear()
