"""Gateway upstream pools: health-check ejection, circuit breaker, admin
blue-green weights, SIGHUP reload under load, colour in metrics.

Each test starts its own gateway process (ASan binary) and upstream
processes on free ports.
"""

from __future__ import annotations

import threading
import time

import httpx
from gateway_harness import gateway, token, upstreams

ADMIN_TOKEN = "admin-token-for-e2e-0123456789"
HC_INTERVAL_MS = 200
# Bound to wait for state changes that take a few intervals (not timing).
SETTLE_S = 30


def admin(gw, name: str = "") -> dict:
    r = httpx.get(gw.url + "/admin/upstreams" + (f"/{name}" if name else ""),
                  headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                  timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def wait_for(cond, what: str) -> None:
    deadline = time.monotonic() + SETTLE_S
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def target_state(gw, pool: str, url: str) -> dict:
    for color in admin(gw, pool)["colors"].values():
        for t in color["targets"]:
            if t["url"] == url:
                return t
    raise AssertionError(f"{url} not in {pool}")


def test_killed_target_is_ejected_without_5xx() -> None:
    with upstreams("a", "b", "c") as (a, b, c):
        routes = {
            "upstreams": {"p": {
                "health_check": {"path": "/readyz",
                                 "interval_ms": HC_INTERVAL_MS},
                "blue": {"targets": [a.url, b.url, c.url]}}},
            "routes": [{"name": "r", "prefix": "/", "upstream": "p",
                        "auth": "none"}],
        }
        with gateway(routes, {"ADMIN_TOKEN": ADMIN_TOKEN}) as gw, \
                httpx.Client(base_url=gw.url, timeout=10) as cl:
            seen = {cl.get("/whoami").json()["name"] for _ in range(30)}
            assert seen == {"a", "b", "c"}
            b.kill()
            wait_for(lambda: not target_state(gw, "p", b.url)["healthy"],
                     "b to be marked unhealthy")
            for _ in range(60):
                r = cl.get("/whoami")
                assert r.status_code == 200, r.text
                assert r.json()["name"] in ("a", "c")
            m = cl.get("/metrics").text
            assert 'gateway_target_healthy{upstream="p",color="blue",' \
                f'target="{b.url}"}} 0' in m


def test_idempotent_requests_retry_on_dead_target() -> None:
    with upstreams("a", "b") as (a, b):
        routes = {
            "upstreams": {"p": {"targets": [a.url, b.url]}},
            "routes": [{"name": "r", "prefix": "/", "upstream": "p",
                        "auth": "none"}],
        }
        b.kill()
        with gateway(routes) as gw, \
                httpx.Client(base_url=gw.url, timeout=10) as cl:
            for _ in range(10):
                r = cl.get("/whoami")
                assert r.status_code == 200, r.text
            assert "gateway_upstream_retries_total" in cl.get("/metrics").text


def test_breaker_opens_then_half_opens() -> None:
    with upstreams("a") as (a,):
        routes = {
            "upstreams": {"p": {
                "breaker": {"failures": 3, "open_ms": 400},
                "blue": {"targets": [a.url]}}},
            "routes": [{"name": "r", "prefix": "/", "upstream": "p",
                        "auth": "none"}],
        }
        with gateway(routes, {"ADMIN_TOKEN": ADMIN_TOKEN}) as gw, \
                httpx.Client(base_url=gw.url, timeout=10) as cl:
            for _ in range(3):
                assert cl.get("/fail").status_code == 503
            assert target_state(gw, "p", a.url)["breaker"] == "open"
            served = a.count()
            # Open: answered at the edge, the upstream sees nothing.
            r = cl.get("/whoami")
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "upstream_unavailable"
            assert a.count() == served
            # After open_ms one probe goes through and closes it.
            wait_for(lambda: cl.get("/whoami").status_code == 200,
                     "the half-open probe")
            assert a.count() == served + 1
            assert target_state(gw, "p", a.url)["breaker"] == "closed"
            # A failed probe opens it again.
            for _ in range(3):
                cl.get("/fail")
            assert target_state(gw, "p", a.url)["breaker"] == "open"
            wait_for(lambda: cl.get("/fail").status_code == 503 and
                     target_state(gw, "p", a.url)["breaker"] == "open" and
                     a.count() > served + 3, "a failed half-open probe")


def test_admin_weights_take_effect_at_once() -> None:
    with upstreams("blue1", "green1") as (bl, gr):
        routes = {
            "upstreams": {"p": {
                "sticky": False,
                "blue": {"targets": [bl.url], "weight": 100},
                "green": {"targets": [gr.url], "weight": 0}}},
            "routes": [{"name": "r", "prefix": "/", "upstream": "p",
                        "auth": "none"}],
        }
        with gateway(routes, {"ADMIN_TOKEN": ADMIN_TOKEN}) as gw, \
                httpx.Client(base_url=gw.url, timeout=10) as cl:
            names = {cl.get("/whoami").json()["name"] for _ in range(20)}
            assert names == {"blue1"}
            put = {"weights": {"blue": 0, "green": 100}}
            # Auth: none, a non-admin token, then the admin role / token.
            r = cl.put("/admin/upstreams/p", json=put)
            assert r.status_code == 401
            r = cl.put("/admin/upstreams/p", json=put, headers={
                "Authorization": "Bearer " + token(roles=["user"])})
            assert r.status_code == 403
            r = cl.put("/admin/upstreams/p", json={"weights": {"blue": 50}},
                       headers={"Authorization": "Bearer " + ADMIN_TOKEN})
            assert r.status_code == 400
            r = cl.put("/admin/upstreams/p", json=put, headers={
                "Authorization": "Bearer " + token(roles=["admin"])})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["colors"]["green"]["weight"] == 100
            assert body["colors"]["blue"]["weight"] == 0
            names = {cl.get("/whoami").json()["name"] for _ in range(20)}
            assert names == {"green1"}
            listing = admin(gw)
            assert [u["name"] for u in listing["upstreams"]] == ["p"]
            m = cl.get("/metrics").text
            assert ('gateway_requests_total{route="r",method="GET",'
                    'status="200",upstream="p",color="green"}') in m
            assert ('gateway_requests_total{route="r",method="GET",'
                    'status="200",upstream="p",color="blue"}') in m


def test_sighup_reload_under_load_loses_nothing() -> None:
    with upstreams("a") as (a,):
        def routes(extra: bool) -> dict:
            rs = [{"name": "r", "prefix": "/", "upstream": "p",
                   "auth": "none"}]
            if extra:
                rs.append({"name": "new", "prefix": "/new", "upstream": "p",
                           "strip_prefix": True, "auth": "none"})
            return {"upstreams": {"p": {"targets": [a.url]}}, "routes": rs}

        with gateway(routes(False)) as gw:
            stop = threading.Event()
            bad: list[str] = []
            done = [0]

            def load() -> None:
                with httpx.Client(base_url=gw.url, timeout=30) as cl:
                    while not stop.is_set():
                        try:
                            r = cl.get("/whoami")
                            if r.status_code != 200:
                                bad.append(f"{r.status_code} {r.text}")
                        except httpx.HTTPError as e:
                            bad.append(repr(e))
                        done[0] += 1

            threads = [threading.Thread(target=load) for _ in range(4)]
            for t in threads:
                t.start()
            try:
                for i in range(10):
                    gw.reload(routes(i % 2 == 0))
                    time.sleep(0.1)
                gw.reload(routes(True))
                wait_for(lambda: httpx.get(gw.url + "/new/whoami",
                                           timeout=10).status_code == 200,
                         "the reloaded route")
            finally:
                stop.set()
                for t in threads:
                    t.join()
            assert not bad, bad[:5]
            assert done[0] > 0
