"""An upstream that goes away: the gateway fails fast, then recovers.

Runs last (file order): it restarts the platform service.
"""

from __future__ import annotations

import time

import httpx
from conftest import Cluster, User, assert_error

RECOVERY_S = 60


def test_platform_down_then_back(gw: httpx.Client, cluster: Cluster,
                                 user: User) -> None:
    stopped = cluster.dev_cluster("stop-service", "platform")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    try:
        for _ in range(3):
            t0 = time.monotonic()
            r = gw.get("/auth/me", headers=user.auth, timeout=10.0)
            took = time.monotonic() - t0
            assert r.status_code in (502, 503), r.text
            assert_error(r, r.status_code)
            # A bound against hanging on a dead upstream, not a benchmark.
            assert took < 3.0, f"took {took:.2f}s"
        # The gateway itself stays alive and healthy.
        assert gw.get("/healthz").status_code == 200
    finally:
        started = cluster.dev_cluster("start-service", "platform")
        assert started.returncode == 0, started.stdout + started.stderr

    deadline = time.monotonic() + RECOVERY_S
    while True:
        r = gw.get("/auth/me", headers=user.auth)
        if r.status_code == 200:
            break
        assert time.monotonic() < deadline, (
            f"still {r.status_code} {RECOVERY_S}s after restart: {r.text}")
        time.sleep(0.5)
    assert r.json()["user"]["id"] == user.id
    r = gw.post("/auth/login", json={"email": user.email,
                                     "password": user.password})
    assert r.status_code == 200, r.text
