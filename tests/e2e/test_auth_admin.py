"""Roles and user administration (issue 3): ADMIN_EMAIL bootstrap,
GET /users, PATCH /users/{id}, disabled users locked out everywhere."""

from __future__ import annotations

import time

import httpx
import pytest
from conftest import (
    ADMIN_EMAIL,
    STRONG_PASSWORD,
    User,
    assert_error,
    register_and_login,
)


@pytest.fixture(scope="module")
def admin(gw: httpx.Client) -> User:
    r = gw.post("/auth/register", json={"email": ADMIN_EMAIL,
                                        "password": STRONG_PASSWORD})
    assert r.status_code in (201, 409), r.text
    r = gw.post("/auth/login", json={"email": ADMIN_EMAIL,
                                     "password": STRONG_PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "admin" in body["user"]["roles"]
    return User(id=body["user"]["id"], email=ADMIN_EMAIL,
                password=STRONG_PASSWORD,
                access_token=body["access_token"],
                refresh_token=body["refresh_token"])


def test_users_get_403(gw: httpx.Client, user: User):
    assert_error(gw.get("/users", headers=user.auth), 403, "forbidden")
    assert_error(gw.patch(f"/users/{user.id}", headers=user.auth,
                          json={"disabled": True}), 403, "forbidden")
    assert gw.get("/auth/me", headers=user.auth).status_code == 200


def test_admin_lists_users_with_cursor(gw: httpx.Client, admin: User):
    for _ in range(3):
        register_and_login(gw)
    seen: list[str] = []
    cursor = None
    for _ in range(1000):
        params = {"limit": "2"}
        if cursor:
            params["cursor"] = cursor
        r = gw.get("/users", headers=admin.auth, params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["users"]) <= 2
        for u in page["users"]:
            assert set(u) >= {"id", "email", "roles", "disabled",
                              "created_at"}
            assert "password_hash" not in u
        seen += [u["id"] for u in page["users"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) >= 4
    assert admin.id in seen
    for bad in ({"limit": "0"}, {"limit": "101"}, {"limit": "x"},
                {"cursor": "' OR 1=1 --"}, {"cursor": "1_2"}):
        assert_error(gw.get("/users", headers=admin.auth, params=bad), 422)


def test_disable_user_locks_them_out(gw: httpx.Client, admin: User):
    victim = register_and_login(gw)
    assert gw.get("/auth/me", headers=victim.auth).status_code == 200
    r = gw.patch(f"/users/{victim.id}", headers=admin.auth,
                 json={"disabled": True})
    assert r.status_code == 200, r.text
    assert r.json()["user"]["disabled"] is True
    # outstanding access token: refused well within a minute (at once here)
    start = time.monotonic()
    while gw.get("/auth/me", headers=victim.auth).status_code != 401:
        assert time.monotonic() - start < 60
        time.sleep(0.2)
    # also on routes to other upstreams: the gateway learns it through the
    # revocation channel or, at worst, when its revocation cache expires
    while gw.get("/automation/jobs", headers=victim.auth).status_code != 401:
        assert time.monotonic() - start < 60
        time.sleep(0.2)
    assert_error(gw.post("/auth/refresh", json={
        "refresh_token": victim.refresh_token}), 401)
    assert_error(gw.post("/auth/login", json={
        "email": victim.email, "password": victim.password}), 401,
        "invalid_credentials")
    # enabling lets them sign in again; old tokens stay dead
    r = gw.patch(f"/users/{victim.id}", headers=admin.auth,
                 json={"disabled": False})
    assert r.status_code == 200 and r.json()["user"]["disabled"] is False
    r = gw.post("/auth/login", json={"email": victim.email,
                                     "password": victim.password})
    assert r.status_code == 200, r.text
    fresh = r.json()["access_token"]
    time.sleep(1.1)  # iat granularity is a second
    r = gw.post("/auth/login", json={"email": victim.email,
                                     "password": victim.password})
    fresh = r.json()["access_token"]
    assert gw.get("/auth/me", headers={
        "Authorization": f"Bearer {fresh}"}).status_code == 200
    assert gw.get("/auth/me", headers=victim.auth).status_code == 401


def test_roles_change_and_validation(gw: httpx.Client, admin: User):
    u = register_and_login(gw)
    r = gw.patch(f"/users/{u.id}", headers=admin.auth,
                 json={"roles": ["user", "admin"]})
    assert r.status_code == 200, r.text
    assert sorted(r.json()["user"]["roles"]) == ["admin", "user"]
    time.sleep(1.1)
    promoted = gw.post("/auth/login", json={"email": u.email,
                                            "password": u.password}).json()
    assert "admin" in promoted["user"]["roles"]
    h = {"Authorization": f"Bearer {promoted['access_token']}"}
    assert gw.get("/users", headers=h, params={"limit": "1"}
                  ).status_code == 200
    for bad in ({"roles": ["root"]}, {"roles": []}, {"roles": "admin"},
                {"roles": ["user", "user"]}, {"disabled": "yes"},
                {"is_admin": True}, {}):
        assert_error(gw.patch(f"/users/{u.id}", headers=admin.auth,
                              json=bad), 422)
    assert_error(gw.patch("/users/00000000-0000-0000-0000-000000000000",
                          headers=admin.auth, json={"disabled": True}), 404)
    assert_error(gw.patch("/users/1;DROP TABLE users", headers=admin.auth,
                          json={"disabled": True}), 404)
    # no self lock-out
    assert_error(gw.patch(f"/users/{admin.id}", headers=admin.auth,
                          json={"disabled": True}), 409)
    assert_error(gw.patch(f"/users/{admin.id}", headers=admin.auth,
                          json={"roles": ["user"]}), 409)


def test_revoked_admin_token_loses_the_admin_api(gw: httpx.Client,
                                                 admin: User):
    """The gateway's /admin API checks revocation like any token route: a
    logged-out admin session cannot change upstream weights."""
    r = gw.post("/auth/login", json={"email": ADMIN_EMAIL,
                                     "password": STRONG_PASSWORD})
    assert r.status_code == 200, r.text
    auth = {"Authorization": "Bearer " + r.json()["access_token"]}
    assert gw.get("/admin/upstreams", headers=auth).status_code == 200
    assert gw.post("/auth/logout", headers=auth).status_code == 204
    end = time.monotonic() + 5
    while True:
        r = gw.get("/admin/upstreams", headers=auth)
        if r.status_code != 200 or time.monotonic() > end:
            break
        time.sleep(0.05)
    assert_error(r, 401, "invalid_token")
    # The admin's other session is untouched.
    assert gw.get("/admin/upstreams", headers=admin.auth).status_code == 200
