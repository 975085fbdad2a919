"""Operational endpoints: health, readiness, metrics, JWKS."""

from __future__ import annotations

import base64

import httpx
import pytest
from conftest import Cluster, jwk_thumbprint
from cryptography.hazmat.primitives.serialization import load_pem_public_key


@pytest.fixture(params=["gateway", "platform"])
def service(request: pytest.FixtureRequest, gw: httpx.Client,
            platform: httpx.Client) -> httpx.Client:
    return gw if request.param == "gateway" else platform


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_200(service: httpx.Client, path: str) -> None:
    r = service.get(path)
    assert r.status_code == 200, r.text


def test_metrics_are_prometheus_text(service: httpx.Client) -> None:
    service.get("/healthz")
    r = service.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    assert "http_requests_total" in r.text
    assert "# TYPE http_requests_total counter" in r.text


def test_jwks_publishes_the_dev_key(gw: httpx.Client,
                                    cluster: Cluster) -> None:
    r = gw.get("/.well-known/jwks.json")
    assert r.status_code == 200, r.text
    keys = r.json()["keys"]
    pub = load_pem_public_key(cluster.public_key_pem).public_numbers()

    def as_int(s: str) -> int:
        padded = s + "=" * (-len(s) % 4)
        return int.from_bytes(base64.urlsafe_b64decode(padded), "big")

    match = [k for k in keys if k.get("kty") == "RSA" and
             as_int(k["n"]) == pub.n and as_int(k["e"]) == pub.e]
    assert len(match) == 1, keys
    key = match[0]
    assert key.get("alg") == "RS256"
    assert key.get("use") == "sig"
    assert key["kid"] == jwk_thumbprint(key["n"], key["e"])
    assert "d" not in key and "p" not in key, "private parts published"
