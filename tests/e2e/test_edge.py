"""Gateway edge behaviour: request identity, body handling, header trust."""

from __future__ import annotations

import json
import re

import httpx
from conftest import STRONG_PASSWORD, User, assert_error, unique_email


def test_request_id_is_echoed(gw: httpx.Client) -> None:
    rid = "e2e-request-0123456789abcdef"
    r = gw.get("/healthz", headers={"X-Request-Id": rid})
    assert r.headers.get("x-request-id") == rid
    # It also reaches the upstream and comes back in an error body.
    r = gw.get("/auth/me", headers={"X-Request-Id": rid})
    err = assert_error(r, 401)
    assert r.headers.get("x-request-id") == rid
    assert err["request_id"] == rid


def test_request_id_is_generated(gw: httpx.Client) -> None:
    a = gw.get("/healthz").headers.get("x-request-id")
    b = gw.get("/healthz").headers.get("x-request-id")
    assert a and b and a != b


def test_invalid_request_id_is_replaced(gw: httpx.Client) -> None:
    bad = "x" * 500
    r = gw.get("/healthz", headers={"X-Request-Id": bad})
    rid = r.headers.get("x-request-id")
    assert rid and rid != bad


def test_traceparent_is_returned_or_accepted(gw: httpx.Client) -> None:
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    r = gw.get("/healthz", headers={"traceparent": tp})
    assert r.status_code == 200


def test_malformed_json_is_400(gw: httpx.Client) -> None:
    r = gw.post("/auth/register", content=b'{"email": "a@b.co", "password":',
                headers={"Content-Type": "application/json"})
    assert_error(r, 400)


def test_json_not_an_object_is_400(gw: httpx.Client) -> None:
    r = gw.post("/auth/register", content=b'["a@b.co"]',
                headers={"Content-Type": "application/json"})
    assert_error(r, 400)


def test_oversize_body_is_413(gw: httpx.Client) -> None:
    filler = "x" * (2 * 1024 * 1024)
    body = json.dumps({"email": unique_email("big"),
                       "password": STRONG_PASSWORD,
                       "pad": filler}).encode()
    r = gw.post("/auth/register", content=body,
                headers={"Content-Type": "application/json"})
    assert_error(r, 413)


def test_client_identity_headers_are_not_trusted(gw: httpx.Client,
                                                 user: User) -> None:
    forged = {"X-User-Id": user.id, "X-User-Email": user.email,
              "X-User-Roles": "admin", "X-Internal-Token": "guess"}
    assert_error(gw.get("/auth/me", headers=forged), 401)


def test_identity_comes_from_the_token(gw: httpx.Client, user: User) -> None:
    other = "00000000-0000-4000-8000-000000000000"
    r = gw.get("/auth/me", headers={**user.auth, "X-User-Id": other,
                                    "X-User-Email": "evil@example.com"})
    assert r.status_code == 200, r.text
    assert r.json()["user"]["id"] == user.id
    assert r.json()["user"]["email"] == user.email


def test_unknown_route_is_404(gw: httpx.Client) -> None:
    assert_error(gw.get("/no/such/route"), 404)


def test_wrong_method_is_405(gw: httpx.Client) -> None:
    r = gw.get("/auth/register")
    assert_error(r, 405)
    assert "POST" in r.headers.get("allow", "")


def test_prefix_needs_a_segment_boundary(gw: httpx.Client) -> None:
    # "/authx" is not under "/auth": no route, not the auth upstream.
    assert_error(gw.get("/authx/me"), 404)


def test_errors_never_leak_internals(gw: httpx.Client) -> None:
    r = gw.post("/auth/login", json={"email": 12, "password": []})
    assert 400 <= r.status_code < 500
    assert not re.search(r"(?i)sql|postgres|stack|\.c:\d+", r.text), r.text
