"""Fixtures: the fake OpenAI server, Redis, JWT keys and orchestrator
processes started through the service's real launcher (./run)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

HERE = Path(__file__).resolve().parent
SERVICE = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(SERVICE))
sys.path.insert(0, str(SERVICE.parent / "mcp-server" / "tests"))

from fake_openai import FakeOpenAI  # noqa: E402
from fake_platform import FakePlatform  # noqa: E402

INTERNAL = "test-internal-token-" + "x" * 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes] | None,
              timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout}s")


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeOpenAI]:
    f = FakeOpenAI().start()
    yield f
    f.stop()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("BASALT_TEST_REDIS_URL")
    if url:
        yield url
        return
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("BASALT_TEST_REDIS_URL unset and no redis-server")
    port = free_port()
    d = tempfile.mkdtemp(prefix="llm-test-redis-")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", d],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                break
        except OSError:
            if time.monotonic() > end:
                proc.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(d, ignore_errors=True)


@dataclass
class Keys:
    private_pem: bytes
    public_file: Path

    def token(self, sub: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": "basalt", "aud": "basalt", "sub": sub or
                str(uuid.uuid4()), "iat": now, "nbf": now,
                "exp": now + 900, "email": "t@example.com",
                "roles": ["user"], "jti": uuid.uuid4().hex}
        body.update(claims)
        return jwt.encode(body, self.private_pem, algorithm="RS256")


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv = k.private_bytes(serialization.Encoding.PEM,
                           serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())
    pub = k.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo)
    f = tmp_path_factory.mktemp("keys") / "pub.pem"
    f.write_bytes(pub)
    return Keys(priv, f)


@dataclass
class Proc:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_service(name: str, env: dict[str, str], tmp: Path) -> Proc:
    """Starts services/<name>/run on a free port; waits for /readyz."""
    port = free_port()
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("LLM_", "OPENAI_", "GEMINI_"))}
    full.update(HOST="127.0.0.1", PORT=str(port), LOG_LEVEL="info")
    full.update(env)
    log = tmp / f"{name}-{port}.log"
    run = SERVICE.parent / name / "run"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(run)], env=full, stdout=out,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/readyz", proc)
    except RuntimeError as e:
        proc.kill()
        raise RuntimeError(f"{name}: {e}\n{log.read_text()}") from None
    return Proc(url, proc, log)


@pytest.fixture(scope="session")
def service_factory(tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[Callable[[str, dict[str, str]], Proc]]:
    procs: list[Proc] = []
    tmp = tmp_path_factory.mktemp("logs")

    def make(name: str, env: dict[str, str]) -> Proc:
        p = start_service(name, env, tmp)
        procs.append(p)
        return p

    yield make
    for p in procs:
        p.stop()


def providers_json(fake: FakeOpenAI, aliases: dict[str, list[str]]
                   | None = None, extra: list[dict[str, Any]]
                   | None = None) -> str:
    import json
    provs = [{"name": "fake", "type": "openai", "base_url": fake.url,
              "api_key": "sk-fake", "models": ["echo"]},
             {"name": "backup", "type": "openai", "base_url": fake.url,
              "models": []}]
    provs += extra or []
    return json.dumps({"providers": provs, "aliases": aliases or {}})


def base_env(keys: Keys, redis_url: str) -> dict[str, str]:
    return {"JWT_PUBLIC_KEY_FILE": str(keys.public_file),
            "INTERNAL_TOKEN": INTERNAL, "REDIS_URL": redis_url,
            "LLM_BACKOFF_MS": "10", "LLM_KEEPALIVE_S": "0.2",
            "LLM_USER_RPM": "0", "LLM_USER_RPD": "0",
            "LLM_USER_TPM": "0", "LLM_USER_TPD": "0"}


@pytest.fixture(scope="session")
def platform() -> Iterator[FakePlatform]:
    p = FakePlatform().start()
    yield p
    p.stop()


@pytest.fixture(scope="session")
def mcp(service_factory: Callable[[str, dict[str, str]], Proc],
        platform: FakePlatform) -> Proc:
    return service_factory("mcp-server", {"GATEWAY_URL": platform.url})


@pytest.fixture(scope="session")
def orch(service_factory: Callable[[str, dict[str, str]], Proc],
         fake: FakeOpenAI, keys: Keys, redis_url: str, mcp: Proc,
         platform: FakePlatform) -> Proc:
    """The orchestrator most tests share: no budgets, fast back-off."""
    env = base_env(keys, redis_url)
    env.update(LLM_PROVIDERS=providers_json(fake, {
        "chain": ["fake/always500+chain", "backup/echo+chain"],
        "bad-first": ["fake/always400", "backup/echo"],
        "unauth-first": ["fake/always401", "backup/echo+u"],
        "all-429": ["fake/always429", "backup/always429"]}),
        MCP_URL=mcp.url + "/mcp", PLATFORM_URL=platform.url,
        LLM_RETRIES="2")
    return service_factory("llm-orchestrator", env)
