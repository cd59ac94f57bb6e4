"""A real multi-node Ray cluster on one host, for tests and benchmarks: one `ray start --head`
and more `ray start --address` raylets, each node with its own temp folder, ports and process
group, so one node can be killed alone (SIGKILL) and the whole cluster stopped without touching
any other Ray instance on the machine (no bare `ray stop`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).with_name("ray"))


def free_ports(n: int) -> list[int]:
    """n distinct ports that are free right now."""
    sockets = []
    for _ in range(n):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@dataclass
class Node:
    """One raylet (plus the GCS for the head) started by `ray start`."""

    name: str
    temp_dir: Path
    pgid: int
    log: Path
    processes: list[psutil.Process] = field(default_factory=list)

    def logs(self) -> Path:
        return self.temp_dir / "session_latest" / "logs"

    def work_done(self) -> Counter:
        """Ray tasks and actors that ran on this node, counted from the task-name markers Ray
        writes into its workers' log files."""
        found: Counter = Counter()
        for path in self.logs().glob("worker-*.out"):
            for line in path.read_text(errors="replace").splitlines():
                marker = re.match(r":(task|actor)_name:(.+)", line)
                if marker:
                    found[marker.group(2)] += 1
        return found

    def process_names(self) -> list[str]:
        """Command lines of the node's processes and of every worker its raylet started."""
        names = []
        for proc in self.processes:
            try:
                for p in [proc, *proc.children(recursive=True)]:
                    names.append(" ".join(p.cmdline()))
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return names

    def kill(self) -> None:
        """SIGKILL the node: its daemons and every worker process its raylet started."""
        family = list(self.processes)
        for proc in self.processes:
            try:
                family += proc.children(recursive=True)
            except psutil.NoSuchProcess:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        for proc in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(family, timeout=30)


class LocalCluster:
    """Ray nodes on this host; token authentication on (with a token of its own) or off."""

    def __init__(self, root: Path, object_store_mb: int = 512, token: bool = True) -> None:
        self.root = root
        self.object_store_bytes = object_store_mb * 2**20
        self.nodes: list[Node] = []
        self.port = free_ports(1)[0]
        auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self.env = {
            **os.environ,
            **(auth if token else {"RAY_AUTH_MODE": "disabled"}),
            "RAY_USAGE_STATS_ENABLED": "0",
            # A killed node is marked dead after 5 missed health checks a second apart, not 3 s
            # apart (Ray's default): the node-loss test waits 5 s, not 15, for what it tests.
            "RAY_health_check_period_ms": "1000",
        }
        self.env.pop("RAY_ADDRESS", None)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client_env(self, **extra: str) -> dict[str, str]:
        """The environment a driver needs to join (the token); RAY_ADDRESS only if given."""
        return {**self.env, **extra}

    def add_node(
        self, num_cpus: int, resources: dict[str, float] | None = None, memory: int | None = None
    ) -> Node:
        """Start a node (the first one is the head); `memory`: bytes of Ray's memory resource."""
        head = not self.nodes
        name = "head" if head else f"node{len(self.nodes)}"
        # Short paths: Ray's Unix socket names must stay under ~107 characters.
        temp_dir = self.root / name
        node_port, object_port, agent_port, agent_grpc, env_port, metrics = free_ports(6)
        command = [
            RAY,
            "start",
            *(["--head", "--port", str(self.port)] if head else ["--address", self.address]),
            "--num-cpus",
            str(num_cpus),
            "--resources",
            json.dumps(resources or {}),
            "--temp-dir",
            str(temp_dir),
            "--node-manager-port",
            str(node_port),
            "--object-manager-port",
            str(object_port),
            "--dashboard-agent-listen-port",
            str(agent_port),
            "--dashboard-agent-grpc-port",
            str(agent_grpc),
            "--runtime-env-agent-port",
            str(env_port),
            "--metrics-export-port",
            str(metrics),
            "--object-store-memory",
            str(self.object_store_bytes),
            "--disable-usage-stats",
            *(["--memory", str(memory)] if memory else []),
            *(["--include-dashboard", "false"] if head else []),
        ]
        log = self.root / f"{name}.start.log"
        with open(log, "wb") as out:
            # Its own session: the daemons it leaves running share this process group.
            starter = subprocess.Popen(
                command, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        node = Node(name, temp_dir, starter.pid, log)
        self.nodes.append(node)
        if starter.wait(timeout=180) != 0:
            raise RuntimeError(f"ray start failed:\n{log.read_text()[-3000:]}")
        node.processes = [
            p for p in psutil.process_iter() if self._pgid(p) == node.pgid and p.pid != starter.pid
        ]
        return node

    @staticmethod
    def _pgid(proc: psutil.Process) -> int | None:
        try:
            return os.getpgid(proc.pid)
        except (ProcessLookupError, PermissionError):
            return None

    def stop(self) -> None:
        """Kill every node of this cluster, workers included (and only those)."""
        for node in reversed(self.nodes):
            node.kill()
