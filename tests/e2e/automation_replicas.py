"""Extra automation replicas for the workflow e2e tests.

A replica is the same ASan binary the cluster runs, started from the test
with the cluster automation's own environment (read from /proc) and a
different PORT plus per-test overrides, against the same PostgreSQL and
Redis. Callers talk to replicas directly with the internal-token headers.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx
from conftest import Cluster, free_ports

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:",
                     "ERROR: LeakSanitizer")


def main_pid(cluster: Cluster) -> int:
    text = (cluster.run_dir / "pids" / "automation.pid").read_text()
    return int(text.split()[0])


def automation_env(cluster: Cluster) -> dict[str, str]:
    raw = Path(f"/proc/{main_pid(cluster)}/environ").read_bytes()
    env = {}
    for item in raw.decode(errors="replace").split("\0"):
        if "=" in item:
            k, v = item.split("=", 1)
            env[k] = v
    return env


def internal_token(cluster: Cluster) -> str:
    return (cluster.run_dir / "secrets" / "internal_token").read_text(
    ).strip()


def as_user(cluster: Cluster, user_id: str | None = None,
            roles: str = "") -> dict[str, str]:
    return {"X-Internal-Token": internal_token(cluster),
            "X-User-Id": user_id or f"u-{uuid.uuid4().hex[:12]}",
            "X-User-Roles": roles}


class Replica:
    def __init__(self, cluster: Cluster, base_env: dict[str, str],
                 name: str, **overrides: str) -> None:
        self.port = free_ports(1)[0]
        self.name = name
        self.log = cluster.run_dir / "logs" / f"automation-{name}.log"
        env = dict(base_env)
        env.update(PORT=str(self.port), **overrides)
        self.url = f"http://127.0.0.1:{self.port}"
        binary = Path(cluster.env["BASALT_BIN_DIR"]) / "automation"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([str(binary)], env=env, stdout=out,
                                         stderr=subprocess.STDOUT,
                                         cwd=str(Path(__file__).resolve()
                                                 .parents[2]))
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            if self.proc.poll() is not None:
                raise AssertionError(f"replica {self.name} exited: "
                                     + self.log.read_text()[-3000:])
            try:
                if httpx.get(self.url + "/readyz",
                             timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"replica {self.name} not ready")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def term(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def sanitizer_report(self) -> str | None:
        text = self.log.read_text(errors="replace")
        if any(m in text for m in SANITIZER_MARKERS):
            return text[-4000:]
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.term()


def wait_for(pred, timeout: float = 60, step: float = 0.2, what: str = ""):
    until = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > until:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


def start_cluster_automation(cluster: Cluster) -> None:
    res = cluster.dev_cluster("start-service", "automation")
    assert res.returncode == 0, res.stdout + res.stderr


def stop_cluster_automation(cluster: Cluster) -> None:
    res = cluster.dev_cluster("stop-service", "automation")
    assert res.returncode == 0, res.stdout + res.stderr


def env_without_pid(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k != "BASALT_PID_FILE"}


__all__ = [
    "Replica",
    "as_user",
    "automation_env",
    "env_without_pid",
    "os",
    "start_cluster_automation",
    "stop_cluster_automation",
    "wait_for",
]
