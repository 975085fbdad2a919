"""Blue/green rehearsal: deploy/cutover against the real gateway.

Blue is the session cluster's platform service. The test starts, on free
ports, a gateway of its own (ADMIN_TOKEN set, platform's green targets
configured) and green copies of the platform: one healthy, one answering
500 to 5 % of its requests (FAULT_INJECT_5XX_RATE, evenly spaced, so every
run sees the same failures). A client sends requests through that gateway
the whole time.

- A healthy green reaches 100 % and the client sees no failed request.
- A 5 %-failing green is rolled back to 0 within one analysis window, and
  the client's error rate returns to zero.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from conftest import REPO, SANITIZER_MARKERS, Cluster, free_ports

CUTOVER = REPO / "deploy" / "cutover"
ADMIN_TOKEN = "rehearsal-admin-token-0123456789abcdef"
WINDOW_S = 6.0
READY_S = 60.0
# The path every client request takes: cheap, no auth, served by platform.
PROBE_PATH = "/.well-known/jwks.json"


def dev_env(cluster: Cluster) -> dict[str, str]:
    """DATABASE_URL, REDIS_URL, key and secret paths of the cluster."""
    out = cluster.dev_cluster("env")
    assert out.returncode == 0, out.stderr
    env = {}
    for line in out.stdout.splitlines():
        m = re.match(r"export (\w+)='(.*)'$", line)
        if m:
            env[m.group(1)] = m.group(2)
    return env


def extra_env(cluster: Cluster, service: str) -> dict[str, str]:
    """<run dir>/env/<service>.env, as scripts/dev-cluster applies it."""
    path = cluster.run_dir / "env" / f"{service}.env"
    env = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                env[k] = v
    return env


@dataclass
class Proc:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def sanitizer_report(self) -> str | None:
        text = self.log.read_text(errors="replace")
        if any(m in text for m in SANITIZER_MARKERS):
            return f"{self.name}: see {self.log}\n" + "\n".join(
                text.splitlines()[-60:])
        return None


def start(cluster: Cluster, name: str, binary: str, env: dict[str, str],
          port: int) -> Proc:
    log = cluster.run_dir / "logs" / f"rehearsal-{name}.log"
    bin_dir = Path(cluster.env["BASALT_BIN_DIR"])
    full = {k: v for k, v in os.environ.items()
            if k in ("PATH", "LANG", "LC_ALL", "TZ")}
    full.update(ASAN_OPTIONS="abort_on_error=0:detect_leaks=1",
                UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1",
                HOST="127.0.0.1", PORT=str(port),
                LOG_LEVEL=cluster.env.get("LOG_LEVEL", "info"))
    full.update(env)
    with log.open("ab") as f:
        proc = subprocess.Popen([str(bin_dir / binary)], env=full, cwd=REPO,
                                stdout=f, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    p = Proc(name, f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + READY_S
    while True:
        assert proc.poll() is None, (
            f"{name} exited ({proc.returncode}):\n"
            + log.read_text(errors="replace")[-3000:])
        try:
            if httpx.get(p.url + "/readyz", timeout=2).status_code == 200:
                return p
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{name} not ready"
        time.sleep(0.2)


@dataclass
class Rig:
    gateway: Proc
    green: Proc
    faulty: Proc
    admin: httpx.Client
    procs: list[Proc] = field(default_factory=list)

    def pool(self) -> dict:
        r = self.admin.get("/admin/upstreams/platform")
        assert r.status_code == 200, r.text
        return r.json()

    def weights(self) -> dict[str, int]:
        cols = self.pool()["colors"]
        return {c: cols[c]["weight"] for c in ("blue", "green")}

    def wait_green_healthy(self, url: str) -> None:
        deadline = time.monotonic() + READY_S
        while True:
            targets = self.pool()["colors"]["green"]["targets"]
            if any(t["url"].rstrip("/") == url and t.get("healthy", True)
                   for t in targets):
                return
            assert time.monotonic() < deadline, targets
            time.sleep(0.3)


@pytest.fixture(scope="module")
def rig(cluster: Cluster) -> Iterator[Rig]:
    base = dev_env(cluster)
    gw_port, green_port, faulty_port = free_ports(3)
    platform_env = {
        "DATABASE_URL": base["DATABASE_URL"],
        "REDIS_URL": base["REDIS_URL"],
        "JWT_PRIVATE_KEY_FILE": base["JWT_PRIVATE_KEY_FILE"],
        "INTERNAL_TOKEN_FILE": base["INTERNAL_TOKEN_FILE"],
        "MIGRATIONS_DIR": str(REPO / "services" / "platform" / "migrations"),
        **extra_env(cluster, "platform"),
    }
    procs: list[Proc] = []
    admin = None
    try:
        green = start(cluster, "platform-green", "platform", platform_env,
                      green_port)
        procs.append(green)
        faulty = start(cluster, "platform-green-faulty", "platform",
                       {**platform_env, "FAULT_INJECT_5XX_RATE": "0.05"},
                       faulty_port)
        procs.append(faulty)
        ports = {k: cluster.env[k] for k in (
            "BASALT_PLATFORM_PORT", "BASALT_AUTOMATION_PORT",
            "BASALT_LLM_PORT", "BASALT_MCP_PORT")}
        gateway = start(cluster, "gateway", "gateway", {
            "ROUTES_FILE": str(REPO / "services" / "gateway" / "routes.json"),
            "JWT_PUBLIC_KEY_FILE": base["JWT_PUBLIC_KEY_FILE"],
            "INTERNAL_TOKEN_FILE": base["INTERNAL_TOKEN_FILE"],
            "REDIS_URL": base["REDIS_URL"],
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "UPSTREAM_PLATFORM_URL":
                f"http://127.0.0.1:{ports['BASALT_PLATFORM_PORT']}",
            "UPSTREAM_PLATFORM_GREEN_URL": green.url,
            "UPSTREAM_AUTOMATION_URL":
                f"http://127.0.0.1:{ports['BASALT_AUTOMATION_PORT']}",
            "UPSTREAM_LLM_ORCHESTRATOR_URL":
                f"http://127.0.0.1:{ports['BASALT_LLM_PORT']}",
            "UPSTREAM_MCP_SERVER_URL":
                f"http://127.0.0.1:{ports['BASALT_MCP_PORT']}",
            **extra_env(cluster, "gateway"),
        }, gw_port)
        procs.append(gateway)
        admin = httpx.Client(base_url=gateway.url, timeout=10, headers={
            "Authorization": f"Bearer {ADMIN_TOKEN}"})
        rig = Rig(gateway, green, faulty, admin, procs)
        assert rig.weights() == {"blue": 100, "green": 0}
        yield rig
    finally:
        if admin is not None:
            admin.close()
        for p in reversed(procs):
            p.stop()
        reports = [r for r in (p.sanitizer_report() for p in procs) if r]
        assert not reports, "\n\n".join(reports)


class Client:
    """Requests through the gateway in a loop until stopped; records each
    answer's time and status (0 for a transport error)."""

    def __init__(self, url: str):
        self.url = url
        self.results: list[tuple[float, int]] = []
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as c:
            while not self.stop_ev.is_set():
                try:
                    status = c.get(PROBE_PATH).status_code
                except httpx.HTTPError:
                    status = 0
                with self.lock:
                    self.results.append((time.monotonic(), status))
                self.stop_ev.wait(0.005)

    def __enter__(self) -> Client:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_ev.set()
        self.thread.join(timeout=30)

    def failures(self, since: float = 0.0) -> list[tuple[float, int]]:
        with self.lock:
            return [(t, s) for t, s in self.results
                    if t >= since and not 200 <= s < 300]

    def count(self, since: float = 0.0) -> int:
        with self.lock:
            return sum(1 for t, _ in self.results if t >= since)


def cutover(rig: Rig, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CUTOVER), "--gateway", rig.gateway.url,
         "--admin-token", ADMIN_TOKEN, "--window", str(WINDOW_S),
         "--interval", "0.5", "--min-requests", "15",
         # Latency under ASan on a loaded machine says little: the
         # rehearsal judges errors; tests/deploy covers the p99 rules.
         "--max-p99", "10", "--max-p99-ratio", "100", "--p99-slack", "5",
         *args],
        capture_output=True, text=True, timeout=300, check=False)


def green_requests(url: str) -> float:
    """Requests a platform process answered on PROBE_PATH (its own
    http_requests_total)."""
    text = httpx.get(url + "/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("http_requests_total{") and \
                f'route="{PROBE_PATH}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_healthy_green_reaches_100_without_a_failed_request(rig: Rig
                                                            ) -> None:
    rig.wait_green_healthy(rig.green.url)
    served_before = green_requests(rig.green.url)
    with Client(rig.gateway.url) as client:
        time.sleep(1.0)
        r = cutover(rig, "--targets", rig.green.url, "platform", "green")
        time.sleep(1.0)
    assert r.returncode == 0, r.stdout + r.stderr
    assert rig.weights() == {"blue": 0, "green": 100}
    for step in (10, 50, 100):
        assert f"step {step}% passed" in r.stdout, r.stdout
    assert client.count() > 100, client.count()
    assert client.failures() == [], (client.failures()[:10], r.stdout)
    assert green_requests(rig.green.url) > served_before
    # and back, at once
    r = subprocess.run([str(CUTOVER), "--gateway", rig.gateway.url,
                        "--admin-token", ADMIN_TOKEN, "--rollback",
                        "platform", "green"], capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert rig.weights() == {"blue": 100, "green": 0}


def test_failing_green_is_rolled_back_within_one_window(rig: Rig) -> None:
    if rig.weights() != {"blue": 100, "green": 0}:
        rig.admin.put("/admin/upstreams/platform",
                      json={"weights": {"blue": 100, "green": 0}})
    with Client(rig.gateway.url) as client:
        time.sleep(1.0)
        t0 = time.monotonic()
        r = cutover(rig, "--targets", rig.faulty.url, "platform", "green")
        t_done = time.monotonic()
        # after the rollback the client sees no error any more
        time.sleep(3.0)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert rig.weights() == {"blue": 100, "green": 0}
    assert "step 10% FAILED" in out and "error rate" in out, out
    assert "green 50%" not in out, out    # never went past the first step
    fails = client.failures(since=t0)
    assert fails, "the faulty green never answered 500: no rehearsal"
    assert all(s == 500 for _, s in fails), fails[:10]
    # From the first failure the client saw to the last: at most one
    # analysis window (plus a poll and the in-flight request).
    spread = fails[-1][0] - fails[0][0]
    assert spread <= WINDOW_S + 2.0, (spread, out)
    assert client.failures(since=t_done + 0.5) == []
    assert client.count(since=t_done + 0.5) > 20
