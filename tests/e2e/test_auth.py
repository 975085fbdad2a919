"""Accounts through the gateway: register, login, /auth/me."""

from __future__ import annotations

import httpx
from conftest import (
    STRONG_PASSWORD,
    User,
    assert_error,
    register_and_login,
    unique_email,
)


def test_register_login_me(gw: httpx.Client) -> None:
    email = unique_email("norm")
    r = gw.post("/auth/register",
                json={"email": f"  {email.upper()} ",
                      "password": STRONG_PASSWORD})
    assert r.status_code == 201, r.text
    created = r.json()["user"]
    assert created["email"] == email
    assert "password" not in r.text and "argon2" not in r.text

    r = gw.post("/auth/login",
                json={"email": email, "password": STRONG_PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"].lower() == "bearer"
    assert body["expires_in"] > 0
    assert body["access_token"].count(".") == 2
    assert body["refresh_token"]
    assert body["user"]["id"] == created["id"]

    r = gw.get("/auth/me",
               headers={"Authorization": f"Bearer {body['access_token']}"})
    assert r.status_code == 200, r.text
    me = r.json()["user"]
    assert me["id"] == created["id"]
    assert me["email"] == email


def test_login_email_is_normalised_too(gw: httpx.Client, user: User) -> None:
    r = gw.post("/auth/login", json={"email": f" {user.email.upper()}\t",
                                     "password": user.password})
    assert r.status_code == 200, r.text


def test_wrong_password_and_unknown_email_look_the_same(
        gw: httpx.Client, user: User) -> None:
    wrong = gw.post("/auth/login", json={"email": user.email,
                                         "password": user.password + "x"})
    unknown = gw.post("/auth/login", json={"email": unique_email("nobody"),
                                           "password": user.password})
    e1 = assert_error(wrong, 401)
    e2 = assert_error(unknown, 401)
    assert (e1["code"], e1["message"]) == (e2["code"], e2["message"])
    assert e1["request_id"] != e2["request_id"]
    assert "access_token" not in wrong.text


def test_duplicate_email_conflicts(gw: httpx.Client, user: User) -> None:
    for email in (user.email, "  " + user.email.upper()):
        r = gw.post("/auth/register",
                    json={"email": email, "password": STRONG_PASSWORD})
        assert_error(r, 409)


def test_weak_password_rejected(gw: httpx.Client) -> None:
    for pw in ("short", "password", "12345678"):
        r = gw.post("/auth/register",
                    json={"email": unique_email("weak"), "password": pw})
        assert_error(r, 422)


def test_missing_fields_rejected(gw: httpx.Client) -> None:
    r = gw.post("/auth/register", json={"email": unique_email("nopw")})
    assert_error(r, 422)
    r = gw.post("/auth/register", json={"password": STRONG_PASSWORD})
    assert_error(r, 422)


def test_each_user_sees_only_themselves(gw: httpx.Client, user: User) -> None:
    other = register_and_login(gw)
    r = gw.get("/auth/me", headers=other.auth)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["id"] == other.id != user.id
