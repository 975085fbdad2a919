"""Calls to the platform's public API through the gateway, as the user.

The MCP server holds no credentials of its own: every call carries the
requesting user's `Authorization: Bearer` header, so the gateway verifies
the token again and the platform applies that user's permissions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from basalt_common.logs import request_id_var


class PlatformError(Exception):
    """A platform call that did not succeed, with a message for the model."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"platform answered {status} {code}: {message}"
                         if status else message)
        self.status = status
        self.code = code


class Platform:
    def __init__(self, base_url: str, timeout_s: float,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url, timeout=httpx.Timeout(timeout_s, connect=5.0),
            transport=transport)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(self, method: str, path: str,
                      headers: Mapping[str, str] | None,
                      params: Mapping[str, Any] | None = None,
                      json_body: Any = None) -> dict[str, Any]:
        out: dict[str, str] = {"Accept": "application/json"}
        auth = _header(headers, "authorization")
        if not auth:
            raise PlatformError(0, "unauthenticated",
                                "no bearer token to act as the user")
        out["Authorization"] = auth
        for name in ("traceparent",):
            v = _header(headers, name)
            if v:
                out[name] = v
        rid = request_id_var.get()
        if rid:
            out["X-Request-Id"] = rid
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            r = await self._client.request(method, path, headers=out,
                                           params=clean, json=json_body)
        except httpx.TimeoutException:
            raise PlatformError(0, "timeout",
                                f"{method} {path}: the platform did not "
                                "answer in time") from None
        except httpx.HTTPError as e:
            raise PlatformError(0, "unavailable",
                                f"{method} {path}: platform unreachable "
                                f"({type(e).__name__})") from None
        try:
            body = r.json()
        except ValueError:
            body = None
        if r.status_code >= 400:
            code, msg = "http_error", r.text[:300]
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                code = str(body["error"].get("code", code))
                msg = str(body["error"].get("message", msg))
            raise PlatformError(r.status_code, code, f"{method} {path}: {msg}")
        if not isinstance(body, dict):
            raise PlatformError(r.status_code, "bad_response",
                                f"{method} {path}: not a JSON object")
        return body


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if headers is None:
        return None
    v = headers.get(name)
    if v is None:
        v = headers.get(name.title())
    return v
