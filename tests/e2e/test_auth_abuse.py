"""Brute force, enumeration and hostile input on every auth endpoint
(issue 3). conftest's E2E_AUTH_ENV: 5 free failures per account, then
30 s back-off doubling; per-IP limits generous (all tests share an IP)."""

from __future__ import annotations

import httpx
from conftest import (
    STRONG_PASSWORD,
    assert_error,
    register_and_login,
    unique_email,
)


def login(gw: httpx.Client, email: str, pw: str) -> httpx.Response:
    return gw.post("/auth/login", json={"email": email, "password": pw})


def test_account_backoff_429_with_retry_after(gw: httpx.Client):
    u = register_and_login(gw)
    for _ in range(5):
        assert_error(login(gw, u.email, "wrong-password-1"), 401,
                     "invalid_credentials")
    r = login(gw, u.email, u.password)  # even the right password waits
    err = assert_error(r, 429, "rate_limited")
    assert 1 <= int(r.headers["retry-after"]) <= 30
    assert "retry" in err["message"]
    # other accounts from the same IP are not affected
    other = register_and_login(gw)
    assert login(gw, other.email, other.password).status_code == 200


def test_unknown_email_throttled_exactly_like_a_real_one(gw: httpx.Client):
    ghost = unique_email("ghost")
    real = register_and_login(gw)
    for _ in range(5):
        a = login(gw, ghost, "wrong-password-1")
        b = login(gw, real.email, "wrong-password-1")
        assert a.status_code == b.status_code == 401
        assert a.json()["error"]["code"] == b.json()["error"]["code"]
        assert a.json()["error"]["message"] == b.json()["error"]["message"]
    a, b = login(gw, ghost, "x" * 10), login(gw, real.email, "x" * 10)
    assert a.status_code == b.status_code == 429
    assert a.headers["retry-after"] == b.headers["retry-after"] or abs(
        int(a.headers["retry-after"]) - int(b.headers["retry-after"])) <= 1


def test_wrong_password_and_unknown_email_identical(gw: httpx.Client):
    real = register_and_login(gw)
    a = login(gw, real.email, real.password + "x")
    b = login(gw, unique_email("nobody"), real.password)
    assert a.status_code == b.status_code == 401
    ea, eb = a.json()["error"], b.json()["error"]
    assert (ea["code"], ea["message"]) == (eb["code"], eb["message"])
    assert set(a.headers) - {"x-request-id", "date", "content-length"} == \
        set(b.headers) - {"x-request-id", "date", "content-length"}


HOSTILE = [
    "' OR '1'='1", "admin'--", "\"; DROP TABLE platform.users; --",
    "x" * 10000, "\u0000", "\ud800", "😀" * 100, "", " ", None, 12, [],
    {"$ne": None},
]


def test_hostile_input_on_public_auth_endpoints(gw: httpx.Client):
    u = register_and_login(gw, unique_email("hostile"))
    for v in HOSTILE:
        for path, body in (
                ("/auth/login", {"email": v, "password": v}),
                ("/auth/login", {"email": u.email, "password": v}),
                ("/auth/register", {"email": v, "password": STRONG_PASSWORD}),
                ("/auth/refresh", {"refresh_token": v})):
            try:
                r = gw.post(path, json=body)
            except ValueError:  # unencodable (lone surrogate)
                continue
            assert 400 <= r.status_code < 500, (path, v, r.text)
            assert r.status_code != 404, (path, v)
            assert "error" in r.json()
    # raw junk bodies
    for raw in (b"{", b"[]", b"null", b"\xff\xfe", b"{\"email\":" * 1000):
        for path in ("/auth/login", "/auth/register", "/auth/refresh"):
            r = gw.post(path, content=raw,
                        headers={"Content-Type": "application/json"})
            assert 400 <= r.status_code < 500, (path, raw[:20], r.text)
    # oversize body
    r = gw.post("/auth/login", json={"email": "a@b.cd",
                                     "password": "x" * 200000})
    assert r.status_code == 413, r.text
    # the account is intact (its session and email unchanged)
    r = gw.get("/auth/me", headers=u.auth)
    assert r.status_code == 200 and r.json()["user"]["email"] == u.email


def test_hostile_input_on_authenticated_endpoints(gw: httpx.Client):
    u = register_and_login(gw)
    for v in HOSTILE:
        for method, path, body in (
                ("POST", "/auth/logout", {"scope": v}),
                ("POST", "/auth/password", {"current_password": v,
                                            "new_password": v}),
                ("POST", "/auth/password", {"current_password": v,
                                            "new_password":
                                            STRONG_PASSWORD + "!"})):
            try:
                r = gw.request(method, path, json=body, headers=u.auth)
            except ValueError:
                continue
            assert 400 <= r.status_code < 500, (path, v, r.text)
            if r.status_code == 429:
                break
    for sid in ("' OR 1=1 --", "%00", "x" * 300, "..%2f..%2fetc"):
        r = gw.delete(f"/auth/sessions/{sid}", headers=u.auth)
        assert 400 <= r.status_code < 500, (sid, r.text)
    # still signed in with the same password and session
    assert gw.get("/auth/me", headers=u.auth).status_code == 200
    assert len(gw.get("/auth/sessions", headers=u.auth).json()
               ["sessions"]) == 1


def test_jwks_publishes_the_signing_key(gw: httpx.Client, user):
    keys = gw.get("/.well-known/jwks.json").json()["keys"]
    assert keys and all(k["kty"] == "RSA" and k["alg"] == "RS256"
                        for k in keys)
    assert all("d" not in k for k in keys)
