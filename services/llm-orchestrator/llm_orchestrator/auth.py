"""Who is calling.

1. The gateway's X-User-Id / X-User-Email / X-User-Roles headers, trusted
   only when X-Internal-Token equals INTERNAL_TOKEN (constant-time compare).
2. Otherwise `Authorization: Bearer <JWT>` verified with
   JWT_PUBLIC_KEY_FILE: RS256 only, `iss`, `aud`, `exp` (and `nbf`)
   checked with 60 s leeway, `sub` required.
Neither → 401.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

import jwt


@dataclass
class Identity:
    user_id: str
    email: str = ""
    roles: list[str] = field(default_factory=list)
    # Headers to act as this user towards other services (the MCP server,
    # the platform): the bearer token when the client sent one.
    authorization: str = ""


class AuthError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Authenticator:
    def __init__(self, internal_token: str, public_key: str, issuer: str,
                 audience: str) -> None:
        self.internal_token = internal_token.encode()
        self.public_key = public_key
        self.issuer = issuer
        self.audience = audience

    def identify(self, headers: Mapping[str, str]) -> Identity:
        authz = headers.get("authorization", "")
        sent = headers.get("x-internal-token")
        if self.internal_token and sent is not None and hmac.compare_digest(
                sent.encode(), self.internal_token):
            uid = headers.get("x-user-id", "")
            if uid:
                roles = [r.strip() for r in
                         headers.get("x-user-roles", "").split(",")
                         if r.strip()]
                return Identity(uid, headers.get("x-user-email", ""), roles,
                                authz)
        scheme, _, token = authz.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("missing_token",
                            "an Authorization: Bearer token is required")
        if not self.public_key:
            raise AuthError("invalid_token", "bearer tokens cannot be "
                            "verified here (JWT_PUBLIC_KEY_FILE not set)")
        try:
            claims = jwt.decode(
                token.strip(), self.public_key, algorithms=["RS256"],
                issuer=self.issuer, audience=self.audience, leeway=60,
                options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError:
            raise AuthError("token_expired", "the token has expired") from None
        except jwt.PyJWTError as e:
            raise AuthError("invalid_token",
                            f"the token is not valid ({type(e).__name__})"
                            ) from None
        roles = claims.get("roles") or []
        if isinstance(roles, str):
            roles = [roles]
        return Identity(str(claims["sub"]), str(claims.get("email", "")),
                        [str(r) for r in roles], authz)
