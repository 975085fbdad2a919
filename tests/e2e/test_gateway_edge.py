"""Gateway edge: shared rate limits (two gateway processes, one Redis),
fail-open/closed, CORS preflight at the edge, security and forwarding
headers, header limits.

Uses the session cluster's Redis; the gateways and the upstream are this
file's own processes.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from conftest import Cluster
from gateway_harness import gateway, token, upstreams

LIMIT = 10


def routes(up_url: str, fail: str = "open") -> dict:
    name = "rl-" + uuid.uuid4().hex[:8]  # fresh buckets per test
    return {
        "upstreams": {"p": {"targets": [up_url]}},
        "routes": [
            {"name": name, "prefix": "/limited", "upstream": "p",
             "auth": "none",
             "rate_limit": {"limit": LIMIT, "period_s": 3600,
                            "fail": fail}},
            {"name": name + "-user", "prefix": "/user", "upstream": "p",
             "rate_limit": {"limit": 3, "period_s": 3600}},
            {"name": "cors", "prefix": "/cors", "upstream": "p",
             "auth": "none", "methods": ["GET", "POST"],
             "cors": {"origins": ["https://app.example.com"],
                      "credentials": True,
                      "expose_headers": ["X-Request-Id"]}},
            {"name": "open", "prefix": "/", "upstream": "p",
             "auth": "none"},
        ],
    }


@pytest.fixture(scope="module")
def redis_url(cluster: Cluster) -> str:
    return f"redis://127.0.0.1:{cluster.env['BASALT_REDIS_PORT']}/0"


def test_429_exactly_at_the_limit_across_two_gateways(redis_url) -> None:
    with upstreams("a") as (a,):
        rs = routes(a.url)
        env = {"REDIS_URL": redis_url}
        with gateway(rs, env) as g1, gateway(rs, env) as g2:
            codes = []
            last = None
            for i in range(LIMIT + 5):
                last = httpx.get((g1 if i % 2 else g2).url + "/limited/x",
                                 timeout=10)
                codes.append(last.status_code)
            assert codes == [200] * LIMIT + [429] * 5, codes
            assert last.json()["error"]["code"] == "rate_limited"
            assert int(last.headers["retry-after"]) >= 1
            assert last.headers["ratelimit-limit"] == str(LIMIT)
            assert last.headers["ratelimit-remaining"] == "0"
            assert int(last.headers["ratelimit-reset"]) > 0
            ok = httpx.get(g1.url + "/open", timeout=10)
            assert ok.status_code == 200
            # Keyed by user on token routes: each user has their own.
            for sub in ("alice", "bob"):
                hdr = {"Authorization": "Bearer " + token(sub=sub)}
                got = [httpx.get(g2.url + "/user/x", headers=hdr,
                                 timeout=10).status_code for _ in range(4)]
                assert got == [200, 200, 200, 429], (sub, got)
            m = httpx.get(g1.url + "/metrics", timeout=10).text
            assert "gateway_ratelimit_decisions_total" in m
            assert 'decision="limited"' in m


def test_fail_open_and_closed_without_redis() -> None:
    with upstreams("a") as (a,):
        env = {"REDIS_URL": "redis://127.0.0.1:1/0",
               "RATE_LIMIT_TIMEOUT_MS": "50"}
        with gateway(routes(a.url, "open"), env) as g:
            r = httpx.get(g.url + "/limited/x", timeout=10)
            assert r.status_code == 200
        with gateway(routes(a.url, "closed"), env) as g:
            r = httpx.get(g.url + "/limited/x", timeout=10)
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "rate_limit_unavailable"


def test_cors_preflight_and_headers() -> None:
    with upstreams("a") as (a,), gateway(routes(a.url)) as g:
        served = a.count()
        r = httpx.options(g.url + "/cors/x", headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-trace"},
            timeout=10)
        assert r.status_code == 204, r.text
        assert r.headers["access-control-allow-origin"] == \
                "https://app.example.com"
        assert r.headers["access-control-allow-credentials"] == "true"
        assert "POST" in r.headers["access-control-allow-methods"]
        assert r.headers["access-control-allow-headers"] == \
                "content-type, x-trace"
        assert a.count() == served  # answered at the edge
        r = httpx.options(g.url + "/cors/x", headers={
            "Origin": "https://evil.example.com",
            "Access-Control-Request-Method": "POST"}, timeout=10)
        assert r.status_code == 403
        r = httpx.get(g.url + "/cors/x",
                      headers={"Origin": "https://app.example.com"},
                      timeout=10)
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == \
                "https://app.example.com"
        assert r.headers["access-control-expose-headers"] == \
                "X-Request-Id"
        r = httpx.get(g.url + "/open/x",
                      headers={"Origin": "https://app.example.com"},
                      timeout=10)
        assert "access-control-allow-origin" not in r.headers


def test_security_headers_and_limits() -> None:
    with upstreams("a") as (a,), \
            gateway(routes(a.url), {"MAX_HEADERS": "20"}) as g:
        r = httpx.get(g.url + "/x", timeout=10)
        assert r.status_code == 200
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert len(r.headers["x-request-id"]) > 0
        many = {f"X-H{i}": "v" for i in range(30)}
        r = httpx.get(g.url + "/x", headers=many, timeout=10)
        assert r.status_code == 431
        # Just under MAX_HEADER_BYTES (8 KiB by default) still passes.
        near = {"X-Near": "v" * 7600}
        r = httpx.get(g.url + "/x", headers=near, timeout=10)
        assert r.status_code == 200
        big = {"X-Big": "v" * 40000}
        r = httpx.get(g.url + "/x", headers=big, timeout=10)
        # Over MAX_HEADER_BYTES: MHD refuses the request itself.
        assert r.status_code == 431
