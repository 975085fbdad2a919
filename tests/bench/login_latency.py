"""Login latency (argon2id dominates by design) and responsiveness.

Starts a throwaway cluster (scripts/dev-cluster, release binaries from
build/bin, free ports, temporary run directory), then on the platform
service directly:
  1. ms per login, sequential (median and p95);
  2. GET /healthz latency alone, then while LOGIN_THREADS clients log in
     back to back: the service must stay responsive to other routes.
Throttling is switched off for the run (it would refuse a benchmark).
BENCH_SECONDS bounds each phase (default 1.0). Prints one line per number.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "bench-Horse-battery-9-staple"
LOGIN_THREADS = int(os.environ.get("LOGIN_THREADS", "2"))


def free_ports(n: int) -> list[int]:
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


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def main() -> int:
    seconds = float(os.environ.get("BENCH_SECONDS", "1.0"))
    run = Path(tempfile.mkdtemp(prefix="basalt-bench-"))
    os.chmod(run, 0o711)
    names = ("BASALT_PG_PORT", "BASALT_REDIS_PORT", "BASALT_GATEWAY_PORT",
             "BASALT_PLATFORM_PORT", "BASALT_AUTOMATION_PORT",
             "BASALT_LLM_PORT", "BASALT_MCP_PORT")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    env = dict(os.environ, **{k: str(v) for k, v in ports.items()})
    env.update(BASALT_RUN_DIR=str(run),
               BASALT_BIN_DIR=str(REPO / "build" / "bin"),
               LOG_LEVEL="warn", LOGIN_RATE_LIMIT_PER_MIN="0",
               REGISTER_RATE_LIMIT_PER_MIN="0")
    dc = str(REPO / "scripts" / "dev-cluster")
    started = subprocess.run([dc, "start"], env=env, capture_output=True,
                             text=True, timeout=300)
    try:
        if started.returncode != 0:
            print(started.stdout + started.stderr, file=sys.stderr)
            return 1
        base = f"http://127.0.0.1:{ports['BASALT_PLATFORM_PORT']}"
        with httpx.Client(base_url=base, timeout=30) as c:
            emails = [f"bench-{i}-{time.time_ns()}@example.com"
                      for i in range(LOGIN_THREADS + 1)]
            for e in emails:
                r = c.post("/auth/register",
                           json={"email": e, "password": PASSWORD})
                assert r.status_code == 201, r.text
            lat = []
            end = time.monotonic() + seconds
            while time.monotonic() < end or len(lat) < 5:
                t = time.monotonic()
                r = c.post("/auth/login",
                           json={"email": emails[0], "password": PASSWORD})
                lat.append((time.monotonic() - t) * 1000)
                assert r.status_code == 200, r.text
            med = statistics.median(lat)
            print(f"login latency (sequential)       median {med:7.1f} ms"
                  f"  p95 {pct(lat, .95):7.1f} ms  ({len(lat)} logins)")

            def healthz(dur: float) -> list[float]:
                out = []
                stop = time.monotonic() + dur
                while time.monotonic() < stop or len(out) < 20:
                    t = time.monotonic()
                    assert c.get("/healthz").status_code == 200
                    out.append((time.monotonic() - t) * 1000)
                    time.sleep(0.005)
                return out

            idle = healthz(seconds)
            stop = threading.Event()
            count = [0]

            def login_loop(email: str) -> None:
                with httpx.Client(base_url=base, timeout=30) as lc:
                    while not stop.is_set():
                        lc.post("/auth/login",
                                json={"email": email, "password": PASSWORD})
                        count[0] += 1

            threads = [threading.Thread(target=login_loop, args=(e,))
                       for e in emails[1:]]
            for t in threads:
                t.start()
            busy = healthz(seconds)
            stop.set()
            for t in threads:
                t.join()
            print(f"/healthz idle                    median "
                  f"{statistics.median(idle):7.2f} ms  p99 "
                  f"{pct(idle, .99):7.2f} ms")
            print(f"/healthz during {LOGIN_THREADS} login loops     median "
                  f"{statistics.median(busy):7.2f} ms  p99 "
                  f"{pct(busy, .99):7.2f} ms  ({count[0]} logins)")
        return 0
    finally:
        subprocess.run([dc, "stop"], env=env, capture_output=True,
                       timeout=120)
        shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
