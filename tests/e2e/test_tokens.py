"""Access-token verification at the gateway (RFC 8725 hygiene).

Tokens are forged here with the dev key pair from the run directory; a
correctly signed token of our own must pass, which shows that each
rejection below is due to the one thing the test changes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from conftest import Cluster, User, assert_error
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def kid(gw: httpx.Client) -> str:
    keys = gw.get("/.well-known/jwks.json").json()["keys"]
    assert len(keys) >= 1
    return keys[0]["kid"]


def claims(u: User, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    c = {"iss": "basalt", "aud": "basalt", "sub": u.id, "email": u.email,
         "roles": ["user"], "iat": now, "nbf": now, "exp": now + 300,
         "jti": uuid.uuid4().hex}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def sign_rs256(key: bytes | rsa.RSAPrivateKey, payload: dict[str, Any],
               kid: str) -> str:
    return jwt.encode(payload, key, algorithm="RS256",
                      headers={"kid": kid, "typ": "JWT"})


def raw_token(header: dict[str, Any], payload: dict[str, Any],
              signer: Any = None) -> str:
    """Assembles a JWS by hand (PyJWT refuses the attacks we need)."""
    h = b64url(json.dumps(header, separators=(",", ":")).encode())
    p = b64url(json.dumps(payload, separators=(",", ":")).encode())
    sig = signer(f"{h}.{p}".encode()) if signer else b""
    return f"{h}.{p}.{b64url(sig)}"


def me(gw: httpx.Client, token: str) -> httpx.Response:
    return gw.get("/auth/me", headers={"Authorization": f"Bearer {token}"})


def test_self_signed_valid_token_is_accepted(
        gw: httpx.Client, cluster: Cluster, user: User, kid: str) -> None:
    tok = sign_rs256(cluster.private_key_pem, claims(user), kid)
    r = me(gw, tok)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["id"] == user.id


def test_no_token(gw: httpx.Client) -> None:
    assert_error(gw.get("/auth/me"), 401)


@pytest.mark.parametrize("value", ["", "Bearer", "Basic dXNlcjpw",
                                   "Bearer not.a.jwt", "Bearer a.b",
                                   "Bearer " + "A" * 9000])
def test_garbage_authorization(gw: httpx.Client, value: str) -> None:
    r = gw.get("/auth/me", headers={"Authorization": value})
    assert_error(r, 401)


def test_expired_token(gw: httpx.Client, cluster: Cluster, user: User,
                       kid: str) -> None:
    now = int(time.time())
    tok = sign_rs256(cluster.private_key_pem,
                     claims(user, iat=now - 7200, nbf=now - 7200,
                            exp=now - 3600), kid)
    assert_error(me(gw, tok), 401)


def test_token_not_yet_valid(gw: httpx.Client, cluster: Cluster, user: User,
                             kid: str) -> None:
    now = int(time.time())
    tok = sign_rs256(cluster.private_key_pem,
                     claims(user, nbf=now + 3600, exp=now + 7200), kid)
    assert_error(me(gw, tok), 401)


@pytest.mark.parametrize("over", [{"iss": "evil"}, {"aud": "other"},
                                  {"iss": None}, {"aud": None},
                                  {"exp": None}, {"sub": None}])
def test_wrong_or_missing_claims(gw: httpx.Client, cluster: Cluster,
                                 user: User, kid: str,
                                 over: dict[str, Any]) -> None:
    tok = sign_rs256(cluster.private_key_pem, claims(user, **over), kid)
    assert_error(me(gw, tok), 401)


def test_token_signed_with_another_key(gw: httpx.Client, user: User,
                                       kid: str) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tok = sign_rs256(other, claims(user), kid)
    assert_error(me(gw, tok), 401)


def test_tampered_payload(gw: httpx.Client, cluster: Cluster, user: User,
                          kid: str) -> None:
    tok = sign_rs256(cluster.private_key_pem, claims(user), kid)
    h, _, s = tok.split(".")
    p = b64url(json.dumps(claims(user, roles=["admin"])).encode())
    assert_error(me(gw, f"{h}.{p}.{s}"), 401)


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none(gw: httpx.Client, user: User, kid: str, alg: str) -> None:
    tok = raw_token({"alg": alg, "typ": "JWT", "kid": kid}, claims(user))
    assert_error(me(gw, tok), 401)


def test_hs256_keyed_with_public_pem(gw: httpx.Client, cluster: Cluster,
                                     user: User, kid: str) -> None:
    """The classic algorithm confusion: HMAC with the RSA public key."""
    pem = cluster.public_key_pem
    der = serialization.load_pem_public_key(pem).public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo)
    for secret in (pem, pem.strip(), der):
        for header in ({"alg": "HS256", "typ": "JWT", "kid": kid},
                       {"alg": "HS256", "typ": "JWT"}):
            tok = raw_token(header, claims(user),
                            lambda m, k=secret: hmac.new(
                                k, m, hashlib.sha256).digest())
            assert_error(me(gw, tok), 401)


def test_unknown_kid(gw: httpx.Client, cluster: Cluster, user: User) -> None:
    tok = sign_rs256(cluster.private_key_pem, claims(user), "no-such-kid")
    assert_error(me(gw, tok), 401)
