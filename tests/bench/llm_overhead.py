#!/usr/bin/env python3
"""llm_overhead — what the orchestrator (and the gateway) add on top of a
model provider, against the fake OpenAI-compatible upstream of the tests
(services/llm-orchestrator/tests/fake_openai.py, its own process).

 1. Non-streaming chat completion, sequential, keep-alive connections:
    p50/p99 latency calling the fake directly vs through the orchestrator
    → p50 added (goal < 2 ms; LiteLLM publishes 3.25 ms).
 2. Streaming time to first byte of the first content chunk: directly,
    through the orchestrator, and through gateway + orchestrator
    (/llm/v1/chat/completions with a verified RS256 token) → added
    (goal < 5 ms through gateway + orchestrator).

Starts everything on free ports (release gateway from build/bin when it is
built; the gateway part is skipped otherwise) and stops it afterwards.
Settings: LLM_BENCH_N requests per measurement (300), LLM_BENCH_WARMUP (30).
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

REPO = Path(__file__).resolve().parents[2]
PY = str(REPO / ".venv" / "bin" / "python")
N = int(os.environ.get("LLM_BENCH_N", "300"))
WARMUP = int(os.environ.get("LLM_BENCH_WARMUP", "30"))
INTERNAL = uuid.uuid4().hex * 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"llm_overhead: {what} exited")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"llm_overhead: {what} not ready")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def measure_complete(client: httpx.Client, url: str,
                     headers: dict[str, str]) -> list[float]:
    body = {"model": "fake/echo", "messages": [
        {"role": "user", "content": "hi"}]}
    out = []
    for i in range(WARMUP + N):
        t = time.perf_counter()
        r = client.post(url, json=body, headers=headers)
        took = time.perf_counter() - t
        assert r.status_code == 200, r.text
        if i >= WARMUP:
            out.append(took * 1000)
    return out


def measure_ttfb(client: httpx.Client, url: str,
                 headers: dict[str, str], model: str) -> list[float]:
    body = {"model": model, "stream": True, "messages": [
        {"role": "user", "content": "hi"}]}
    out = []
    for i in range(WARMUP + N // 3):
        t = time.perf_counter()
        first = None
        with client.stream("POST", url, json=body, headers=headers) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if first is None and '"w0"' in line:
                    first = time.perf_counter() - t
        assert first is not None
        if i >= WARMUP:
            out.append(first * 1000)
    return out


def row(name: str, xs: list[float], base: list[float] | None) -> None:
    p50, p99 = statistics.median(xs), pct(xs, 99)
    added = f"  added p50 {p50 - statistics.median(base):+.3f} ms" \
        if base else ""
    print(f"  {name:<34} p50 {p50:8.3f} ms  p99 {p99:8.3f} ms{added}")


def main() -> None:
    procs: list[subprocess.Popen[bytes]] = []
    tmp = Path(tempfile.mkdtemp(prefix="llm-bench-"))
    try:
        fp = free_port()
        fake = subprocess.Popen(
            [PY, str(REPO / "services/llm-orchestrator/tests/fake_openai.py"),
             str(fp)], stdout=subprocess.DEVNULL)
        procs.append(fake)
        fake_url = f"http://127.0.0.1:{fp}/v1"
        wait(fake_url + "/models", fake, "fake upstream")

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pub = tmp / "pub.pem"
        pub.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo))

        op = free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LLM_", "OPENAI_", "GEMINI_"))}
        env.update(HOST="127.0.0.1", PORT=str(op), LOG_LEVEL="warn",
                   INTERNAL_TOKEN=INTERNAL, JWT_PUBLIC_KEY_FILE=str(pub),
                   LLM_USER_RPM="0", LLM_USER_RPD="0", LLM_USER_TPM="0",
                   LLM_USER_TPD="0", REDIS_URL="", PLATFORM_URL="",
                   LLM_PROVIDERS=json.dumps({"providers": [
                       {"name": "fake", "base_url": fake_url,
                        "models": ["echo"]}]}))
        orch = subprocess.Popen([str(REPO / "services/llm-orchestrator/run")],
                                env=env, stdout=subprocess.DEVNULL)
        procs.append(orch)
        orch_url = f"http://127.0.0.1:{op}"
        wait(orch_url + "/readyz", orch, "llm-orchestrator")

        gw_url = None
        gw_bin = REPO / "build" / "bin" / "gateway"
        if gw_bin.exists():
            gp = free_port()
            routes = tmp / "routes.json"
            routes.write_text(json.dumps({
                "upstreams": {"llm-orchestrator": {"targets": [orch_url]}},
                "routes": [{"name": "llm", "prefix": "/llm",
                            "upstream": "llm-orchestrator",
                            "strip_prefix": True, "auth": "token",
                            "timeout_ms": 120000}]}))
            genv = dict(os.environ, HOST="127.0.0.1", PORT=str(gp),
                        LOG_LEVEL="warn", ROUTES_FILE=str(routes),
                        JWT_PUBLIC_KEY_FILE=str(pub),
                        INTERNAL_TOKEN=INTERNAL)
            gw = subprocess.Popen([str(gw_bin)], env=genv,
                                  stdout=subprocess.DEVNULL)
            procs.append(gw)
            gw_url = f"http://127.0.0.1:{gp}"
            wait(gw_url + "/readyz", gw, "gateway")

        now = int(time.time())
        token = jwt.encode({"iss": "basalt", "aud": "basalt", "sub": "bench",
                            "iat": now, "nbf": now, "exp": now + 3600,
                            "jti": uuid.uuid4().hex, "roles": ["user"]},
                           key.private_bytes(
                               serialization.Encoding.PEM,
                               serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption()),
                           algorithm="RS256")
        bearer = {"Authorization": f"Bearer {token}"}
        trusted = {"X-Internal-Token": INTERNAL, "X-User-Id": "bench"}

        with httpx.Client(timeout=30) as c:
            print(f"  (n={N}, sequential, keep-alive; fake upstream in its "
                  "own process)")
            direct = measure_complete(c, fake_url + "/chat/completions", {})
            via = measure_complete(c, orch_url + "/v1/chat/completions",
                                   trusted)
            print("  non-streaming completion latency")
            row("direct to fake upstream", direct, None)
            row("through orchestrator", via, direct)
            if gw_url:
                via_gw = measure_complete(
                    c, gw_url + "/llm/v1/chat/completions", bearer)
                row("through gateway + orchestrator", via_gw, direct)
            print("  streaming time to first content chunk")
            t_direct = measure_ttfb(c, fake_url + "/chat/completions", {},
                                    "words=20")
            t_orch = measure_ttfb(c, orch_url + "/v1/chat/completions",
                                  trusted, "fake/words=20")
            row("direct to fake upstream", t_direct, None)
            row("through orchestrator", t_orch, t_direct)
            if gw_url:
                t_gw = measure_ttfb(c, gw_url + "/llm/v1/chat/completions",
                                    bearer, "fake/words=20")
                row("through gateway + orchestrator", t_gw, t_direct)
            else:
                print("  (gateway part skipped: build/bin/gateway missing)")
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()


if __name__ == "__main__":
    sys.exit(main())
