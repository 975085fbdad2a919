"""Refresh rotation, reuse detection, logout, sessions, password change
(issue 3), end to end through the gateway. Settings come from conftest's
E2E_AUTH_ENV (REFRESH_REUSE_GRACE_S=2, REVOCATION_CACHE_TTL_S=2)."""

from __future__ import annotations

import threading
import time

import httpx
from conftest import STRONG_PASSWORD, assert_error, register_and_login

GRACE_S = 2


def refresh(gw: httpx.Client, token: str) -> httpx.Response:
    return gw.post("/auth/refresh", json={"refresh_token": token})


def me(gw: httpx.Client, access: str) -> httpx.Response:
    return gw.get("/auth/me", headers={"Authorization": f"Bearer {access}"})


def eventually_401(gw: httpx.Client, access: str, within: float) -> float:
    """Seconds until /auth/me refuses `access` (fails after `within`)."""
    start = time.monotonic()
    while True:
        r = me(gw, access)
        if r.status_code == 401:
            return time.monotonic() - start
        assert r.status_code == 200, r.text
        assert time.monotonic() - start < within, "token still accepted"
        time.sleep(0.05)


def test_refresh_rotates_and_old_token_is_single_use(gw: httpx.Client):
    u = register_and_login(gw)
    r = refresh(gw, u.refresh_token)
    assert r.status_code == 200, r.text
    body = r.json()
    assert r.headers.get("cache-control") == "no-store"
    assert body["refresh_token"] != u.refresh_token
    assert body["token_type"] == "Bearer"
    assert me(gw, body["access_token"]).status_code == 200
    # the child rotates again
    r2 = refresh(gw, body["refresh_token"])
    assert r2.status_code == 200, r2.text


def test_reuse_after_grace_revokes_the_family(gw: httpx.Client):
    u = register_and_login(gw)
    child = refresh(gw, u.refresh_token).json()
    time.sleep(GRACE_S + 1)
    r = refresh(gw, u.refresh_token)
    assert_error(r, 401, "refresh_token_reused")
    # every token of the family is dead now: the child cannot refresh
    assert_error(refresh(gw, child["refresh_token"]), 401,
                 "invalid_refresh_token")
    # and the family's access tokens are denylisted at once
    assert_error(me(gw, child["access_token"]), 401)
    assert_error(me(gw, u.access_token), 401)


def test_reuse_within_grace_gets_a_fresh_child(gw: httpx.Client):
    u = register_and_login(gw)
    first = refresh(gw, u.refresh_token)
    again = refresh(gw, u.refresh_token)
    assert first.status_code == 200 and again.status_code == 200, again.text
    a, b = first.json(), again.json()
    assert a["refresh_token"] != b["refresh_token"]
    # both children work (same family, e.g. a retried request)
    assert refresh(gw, a["refresh_token"]).status_code == 200
    assert refresh(gw, b["refresh_token"]).status_code == 200


def test_concurrent_refresh_of_one_token(gw: httpx.Client, cluster):
    """The row lock serialises them: each gets its own child (grace), no
    child is handed out twice, and nothing 5xxs."""
    u = register_and_login(gw)
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def go() -> None:
        with httpx.Client(base_url=cluster.gateway_url, timeout=15) as c:
            r = refresh(c, u.refresh_token)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in results)
    assert all(c in (200, 401) for c in codes), codes
    ok = [r.json()["refresh_token"] for r in results if r.status_code == 200]
    assert len(ok) >= 1
    assert len(set(ok)) == len(ok)


def test_logout_kills_the_access_token_at_once(gw: httpx.Client):
    u = register_and_login(gw)
    assert me(gw, u.access_token).status_code == 200
    r = gw.post("/auth/logout", headers=u.auth)
    assert r.status_code == 204, r.text
    # pub/sub reaches the gateway within milliseconds; allow 1 s of
    # scheduling on a loaded machine
    assert eventually_401(gw, u.access_token, within=1.0) < 1.0
    assert_error(refresh(gw, u.refresh_token), 401, "invalid_refresh_token")


def test_logout_global_ends_every_session(gw: httpx.Client):
    u = register_and_login(gw)
    r = gw.post("/auth/login", json={"email": u.email,
                                     "password": u.password})
    other = r.json()
    r = gw.post("/auth/logout?scope=global", headers=u.auth)
    assert r.status_code == 204, r.text
    eventually_401(gw, other["access_token"], within=1.0)
    assert_error(refresh(gw, other["refresh_token"]), 401)
    assert_error(refresh(gw, u.refresh_token), 401)


def test_logout_bad_scope(gw: httpx.Client):
    u = register_and_login(gw)
    for scope in ("everything", "GLOBAL", "' OR 1=1 --"):
        assert_error(gw.post("/auth/logout", params={"scope": scope},
                             headers=u.auth), 422, "validation_failed")
    assert_error(gw.post("/auth/logout", json={"scope": 5},
                         headers=u.auth), 422)
    assert me(gw, u.access_token).status_code == 200


def test_sessions_list_and_delete(gw: httpx.Client):
    u = register_and_login(gw)
    second = gw.post("/auth/login", json={"email": u.email,
                                          "password": u.password},
                     headers={"User-Agent": "e2e-phone/1.0"}).json()
    r = gw.get("/auth/sessions", headers=u.auth)
    assert r.status_code == 200, r.text
    sessions = r.json()["sessions"]
    assert len(sessions) == 2
    current = [s for s in sessions if s["current"]]
    assert len(current) == 1
    phone = [s for s in sessions if s["user_agent"] == "e2e-phone/1.0"]
    assert len(phone) == 1 and not phone[0]["current"]
    for s in sessions:
        assert set(s) >= {"id", "created_at", "last_used_at", "expires_at",
                          "user_agent", "ip", "current"}
    # end the phone session: its tokens die, ours live on
    r = gw.delete(f"/auth/sessions/{phone[0]['id']}", headers=u.auth)
    assert r.status_code == 204, r.text
    eventually_401(gw, second["access_token"], within=1.0)
    assert_error(refresh(gw, second["refresh_token"]), 401)
    assert me(gw, u.access_token).status_code == 200
    left = gw.get("/auth/sessions", headers=u.auth).json()["sessions"]
    assert [s["id"] for s in left] == [current[0]["id"]]
    # unknown, foreign and malformed ids: 404, nothing changes
    other = register_and_login(gw)
    theirs = gw.get("/auth/sessions", headers=other.auth).json()["sessions"]
    assert_error(gw.delete(f"/auth/sessions/{theirs[0]['id']}",
                           headers=u.auth), 404)
    assert_error(gw.delete("/auth/sessions/not-a-uuid", headers=u.auth), 404)
    assert_error(gw.delete(f"/auth/sessions/{phone[0]['id']}",
                           headers=u.auth), 404)
    assert me(gw, other.access_token).status_code == 200


def test_password_change_ends_other_sessions(gw: httpx.Client):
    u = register_and_login(gw)
    other = gw.post("/auth/login", json={"email": u.email,
                                         "password": u.password}).json()
    new_pw = STRONG_PASSWORD + "-new"
    # wrong current password: refused, nothing ends
    r = gw.post("/auth/password", headers=u.auth,
                json={"current_password": "nope-nope-nope",
                      "new_password": new_pw})
    assert_error(r, 403, "invalid_credentials")
    assert me(gw, other["access_token"]).status_code == 200
    # weak new password
    r = gw.post("/auth/password", headers=u.auth,
                json={"current_password": u.password,
                      "new_password": "password"})
    assert_error(r, 422, "validation_failed")
    r = gw.post("/auth/password", headers=u.auth,
                json={"current_password": u.password,
                      "new_password": new_pw})
    assert r.status_code == 200, r.text
    assert r.json()["revoked_sessions"] == 1
    eventually_401(gw, other["access_token"], within=1.0)
    assert_error(refresh(gw, other["refresh_token"]), 401)
    # this session goes on; only the new password signs in
    assert me(gw, u.access_token).status_code == 200
    assert refresh(gw, u.refresh_token).status_code == 200
    assert_error(gw.post("/auth/login", json={"email": u.email,
                                              "password": u.password}), 401)
    assert gw.post("/auth/login", json={"email": u.email,
                                        "password": new_pw}
                   ).status_code == 200


def test_session_endpoints_need_a_token(gw: httpx.Client):
    for method, path in (("POST", "/auth/logout"), ("GET", "/auth/sessions"),
                         ("DELETE", "/auth/sessions/x"),
                         ("POST", "/auth/password")):
        r = gw.request(method, path)
        assert r.status_code == 401, (method, path, r.text)


def test_services_refuse_revoked_bearer_tokens_directly(gw: httpx.Client,
                                                        cluster):
    """Service-to-service calls carry the bearer token straight to a
    service: libs/identity checks the same denylist there."""
    u = register_and_login(gw)
    auto = f"http://127.0.0.1:{cluster.env['BASALT_AUTOMATION_PORT']}"
    with httpx.Client(timeout=15) as c:
        assert c.get(f"{cluster.platform_url}/auth/me",
                     headers=u.auth).status_code == 200
        assert c.get(f"{auto}/automation/jobs",
                     headers=u.auth).status_code == 200
        assert gw.post("/auth/logout", headers=u.auth).status_code == 204
        assert c.get(f"{cluster.platform_url}/auth/me",
                     headers=u.auth).status_code == 401
        # automation cached "not revoked" for up to REVOCATION_CACHE_TTL_S
        start = time.monotonic()
        while c.get(f"{auto}/automation/jobs",
                    headers=u.auth).status_code != 401:
            assert time.monotonic() - start < 30
            time.sleep(0.2)


def test_logout_others_keeps_this_session(gw: httpx.Client):
    u = register_and_login(gw)
    other = gw.post("/auth/login", json={"email": u.email,
                                         "password": u.password}).json()
    r = gw.post("/auth/logout", json={"scope": "others"}, headers=u.auth)
    assert r.status_code == 204, r.text
    eventually_401(gw, other["access_token"], within=1.0)
    assert me(gw, u.access_token).status_code == 200
    assert refresh(gw, u.refresh_token).status_code == 200
