"""End-to-end fixtures: one throwaway basalt cluster per test session.

The session starts PostgreSQL, Redis and every service built in
build/asan/bin (ASan+UBSan; override with BASALT_E2E_BIN_DIR) through
scripts/dev-cluster, on free ports, in a temporary run directory. Tests talk
to it over HTTP. At the end the cluster is stopped whatever happened, and
the service logs are searched for sanitizer reports, which fail the run.

A failing test gets the tail of every service log attached to its report;
the run directory is kept when anything failed (its path is printed).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
DEV_CLUSTER = REPO / "scripts" / "dev-cluster"
SERVICES = ("gateway", "platform", "automation", "llm-orchestrator",
            "mcp-server")
REQUIRED_BINARIES = ("gateway", "platform")
PORT_VARS = ("BASALT_PG_PORT", "BASALT_REDIS_PORT", "BASALT_GATEWAY_PORT",
             "BASALT_PLATFORM_PORT", "BASALT_AUTOMATION_PORT",
             "BASALT_LLM_PORT", "BASALT_MCP_PORT")
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")


def free_ports(n: int) -> list[int]:
    """n distinct ports that were free a moment ago (all bound at once)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Cluster:
    run_dir: Path
    env: dict[str, str]
    gateway_url: str
    platform_url: str
    log_offsets: dict[str, int] = field(default_factory=dict)

    def dev_cluster(self, *args: str, timeout: float = 180
                    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(DEV_CLUSTER), *args], env=self.env,
                              capture_output=True, text=True,
                              timeout=timeout, check=False)

    @property
    def private_key_pem(self) -> bytes:
        return (self.run_dir / "keys" / "jwt_private.pem").read_bytes()

    @property
    def public_key_pem(self) -> bytes:
        return (self.run_dir / "keys" / "jwt_public.pem").read_bytes()

    def log_path(self, service: str) -> Path:
        return self.run_dir / "logs" / f"{service}.log"

    def log_sizes(self) -> dict[str, int]:
        return {s: self.log_path(s).stat().st_size for s in SERVICES
                if self.log_path(s).exists()}

    def log_tail(self, service: str, since: int = 0, lines: int = 30) -> str:
        """The last `lines` lines the service logged after byte `since`."""
        path = self.log_path(service)
        if not path.exists():
            return ""
        with path.open("rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def sanitizer_reports(self) -> list[str]:
        found = []
        for service in SERVICES:
            path = self.log_path(service)
            if not path.exists():
                continue
            text = path.read_text(errors="replace")
            if any(m in text for m in SANITIZER_MARKERS):
                found.append(f"{service}: see {path}\n"
                             + "\n".join(text.splitlines()[-60:]))
        return found


# Auth hardening settings for the whole suite (services inherit them).
# Every test signs in from 127.0.0.1, so per-IP limits are generous;
# tests/e2e/test_auth_*.py rely on the per-account values, the short
# grace window and the short revocation cache.
ADMIN_EMAIL = "e2e-admin@example.com"
E2E_AUTH_ENV = {
    "LOGIN_RATE_LIMIT_PER_MIN": "100000",
    "REGISTER_RATE_LIMIT_PER_MIN": "100000",
    "LOGIN_IP_FREE_FAILURES": "100000",
    "LOGIN_FREE_FAILURES": "5",
    "LOGIN_BACKOFF_BASE_S": "30",
    "LOGIN_BACKOFF_MAX_S": "120",
    "REFRESH_REUSE_GRACE_S": "2",
    "REVOCATION_CACHE_TTL_S": "2",
    "ADMIN_EMAIL": ADMIN_EMAIL,
}

# The automation `http` job type refuses private and loopback targets
# (SSRF egress policy); the e2e upstreams listen on 127.0.0.1, so that
# one literal is allow-listed. "localhost" stays refused on purpose:
# tests/e2e/test_automation_egress.py relies on it.
E2E_AUTOMATION_ENV = {
    "HTTP_JOB_ALLOW_HOSTS": "127.0.0.1",
}


_cluster: Cluster | None = None


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    global _cluster
    bin_dir = Path(os.environ.get("BASALT_E2E_BIN_DIR",
                                  REPO / "build" / "asan" / "bin"))
    missing = [b for b in REQUIRED_BINARIES if not (bin_dir / b).exists()]
    if missing:
        pytest.fail(f"missing {', '.join(missing)} in {bin_dir}: "
                    "run `make asan` first", pytrace=False)

    run_dir = Path(tempfile.mkdtemp(prefix="basalt-e2e-"))
    # PostgreSQL runs as its own user (when we are root): let it enter.
    os.chmod(run_dir, 0o711)
    ports = dict(zip(PORT_VARS, free_ports(len(PORT_VARS)), strict=True))
    env = dict(os.environ)
    env.update({k: str(v) for k, v in ports.items()})
    env.update(BASALT_RUN_DIR=str(run_dir), BASALT_BIN_DIR=str(bin_dir),
               LOG_LEVEL=os.environ.get("LOG_LEVEL", "info"))
    env.update(E2E_AUTH_ENV)
    env.update(E2E_AUTOMATION_ENV)
    c = Cluster(
        run_dir=run_dir, env=env,
        gateway_url=f"http://127.0.0.1:{ports['BASALT_GATEWAY_PORT']}",
        platform_url=f"http://127.0.0.1:{ports['BASALT_PLATFORM_PORT']}")
    _cluster = c
    failed_before = request.session.testsfailed
    try:
        started = c.dev_cluster("start")
        if started.returncode != 0:
            pytest.fail("dev-cluster start failed:\n" + started.stdout
                        + started.stderr, pytrace=False)
        yield c
    finally:
        stopped = c.dev_cluster("stop")
        _cluster = None
        reports = c.sanitizer_reports()
        ok = (stopped.returncode == 0 and not reports
              and request.session.testsfailed == failed_before)
        if ok and not os.environ.get("BASALT_E2E_KEEP"):
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            request.config.stash[KEPT_RUN_DIR] = str(run_dir)
    if stopped.returncode != 0:
        pytest.fail("dev-cluster stop failed:\n" + stopped.stdout
                    + stopped.stderr, pytrace=False)
    if reports:
        pytest.fail("sanitizer reports in service logs:\n\n"
                    + "\n\n".join(reports), pytrace=False)


KEPT_RUN_DIR = pytest.StashKey[str]()


LOG_SIZES = pytest.StashKey[dict[str, int]]()


def pytest_runtest_call(item: pytest.Item) -> None:
    if _cluster is not None:
        item.stash[LOG_SIZES] = _cluster.log_sizes()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Iterator[None]:
    """Attaches what each service logged during a failed test."""
    report = yield
    if report.failed and _cluster is not None:
        sizes = item.stash.get(LOG_SIZES, {})
        for service in SERVICES:
            tail = _cluster.log_tail(service, sizes.get(service, 0))
            if tail:
                report.sections.append((f"{service} log", tail))
    return report


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    kept = config.stash.get(KEPT_RUN_DIR, None)
    if kept:
        terminalreporter.write_line(
            f"basalt e2e: cluster state and logs kept in {kept}")


@pytest.fixture(scope="session")
def gw(cluster: Cluster) -> Iterator[httpx.Client]:
    """HTTP client for the gateway."""
    with httpx.Client(base_url=cluster.gateway_url, timeout=15.0) as client:
        yield client


@pytest.fixture(scope="session")
def platform(cluster: Cluster) -> Iterator[httpx.Client]:
    """HTTP client for the platform service directly (ops endpoints)."""
    with httpx.Client(base_url=cluster.platform_url, timeout=15.0) as client:
        yield client


def unique_email(tag: str = "user") -> str:
    return f"e2e-{tag}-{uuid.uuid4().hex[:12]}@example.com"


STRONG_PASSWORD = "correct-Horse-battery-9-staple"


@dataclass
class User:
    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def register_and_login(client: httpx.Client, email: str | None = None,
                       password: str = STRONG_PASSWORD) -> User:
    email = email or unique_email()
    r = client.post("/auth/register",
                    json={"email": email, "password": password})
    assert r.status_code == 201, r.text
    r = client.post("/auth/login",
                    json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    body = r.json()
    return User(id=body["user"]["id"], email=body["user"]["email"],
                password=password, access_token=body["access_token"],
                refresh_token=body["refresh_token"])


@pytest.fixture(scope="session")
def user(gw: httpx.Client) -> User:
    """A registered, logged-in user shared by read-only tests."""
    return register_and_login(gw, unique_email("shared"))


def assert_error(resp: httpx.Response, status: int,
                 code: str | None = None) -> dict[str, str]:
    """Checks the design's error shape; returns the "error" object."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers.get("content-type", "").startswith(
        "application/json"), resp.headers
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err.get("code"), str) and err["code"], body
    assert isinstance(err.get("message"), str) and err["message"], body
    assert isinstance(err.get("request_id"), str) and err["request_id"], body
    if code is not None:
        assert err["code"] == code, body
    return err


def jwk_thumbprint(n: str, e: str) -> str:
    """RFC 7638 thumbprint of an RSA JWK (base64url SHA-256)."""
    canon = json.dumps({"e": e, "kty": "RSA", "n": n}, separators=(",", ":"),
                       sort_keys=True)
    return b64url(hashlib.sha256(canon.encode()).digest())
