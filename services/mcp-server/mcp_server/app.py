"""ASGI application: the SDK's Streamable HTTP app at /mcp plus /healthz,
/readyz and /metrics, wrapped in a middleware for request ids, JSON access
logs, Prometheus metrics and the bearer-token requirement."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from mcp.server.transport_security import TransportSecuritySettings
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import logs
from .platform import Platform
from .server import build
from .settings import Settings

log = logging.getLogger("mcp_server")
_RID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)


def error_body(code: str, message: str, rid: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message,
                                 "request_id": rid}}).encode()


class Edge:
    """Pure ASGI middleware (keeps streaming bodies streaming)."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.registry = registry
        self.requests = Counter(
            "http_requests_total", "HTTP requests by final status",
            ["method", "route", "status"], registry=registry)
        self.duration = Histogram(
            "http_request_duration_seconds", "HTTP request duration",
            ["method", "route"], buckets=BUCKETS, registry=registry)

    def _ops(self, route: str) -> Response:
        if route == "/metrics":
            return Response(generate_latest(self.registry),
                            media_type=CONTENT_TYPE_LATEST)
        # No dependency of its own to check for readiness: the gateway is
        # called per request and its failures become tool errors.
        return JSONResponse({"status": "ok" if route == "/healthz"
                             else "ready"})

    async def __call__(self, scope: Scope, receive: Receive,
                       send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope["headers"]}
        rid = headers.get("x-request-id", "")
        if not _RID.match(rid):
            rid = uuid.uuid4().hex
        logs.request_id_var.set(rid)
        logs.trace_id_var.set(logs.trace_id_from(headers.get("traceparent")))
        path: str = scope["path"]
        route = path if path in ("/mcp", "/healthz", "/readyz",
                                 "/metrics") else "other"
        method: str = scope["method"]
        status = 500
        start = time.perf_counter()

        async def send_wrapped(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
                msg["headers"] = [*msg.get("headers", []),
                                  (b"x-request-id", rid.encode())]
            await send(msg)

        try:
            auth = headers.get("authorization", "")
            if route == "/mcp" and not auth.lower().startswith("bearer "):
                status = 401
                await send_wrapped({
                    "type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"),
                                (b"www-authenticate",
                                 b'Bearer realm="basalt"')]})
                await send({"type": "http.response.body",
                            "body": error_body(
                                "missing_token",
                                "the MCP endpoint needs the user's "
                                "Authorization: Bearer token", rid)})
                return
            if route in ("/healthz", "/readyz", "/metrics") and method in (
                    "GET", "HEAD"):
                await self._ops(route)(scope, receive, send_wrapped)
                return
            await self.app(scope, receive, send_wrapped)
        finally:
            took = time.perf_counter() - start
            self.requests.labels(method, route, str(status)).inc()
            self.duration.labels(method, route).observe(took)
            if route not in ("/healthz", "/readyz", "/metrics"):
                log.info("request", extra={
                    "method": method, "path": path, "status": status,
                    "duration_ms": round(took * 1000, 3)})


def create_app(settings: Settings,
               platform: Platform | None = None) -> ASGIApp:
    platform = platform or Platform(settings.gateway_url,
                                    settings.platform_timeout_s)
    mcp = build(platform, settings.sample_rows)
    registry = CollectorRegistry()

    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=settings.allowed_hosts(),
        allowed_origins=settings.allowed_origins())
    inner = mcp.streamable_http_app(
        streamable_http_path="/mcp", stateless_http=True, json_response=True,
        transport_security=security, host=settings.host)
    app: Any = Edge(inner, registry)
    # uvicorn runs the lifespan of the outer app; pass it through.
    return app  # type: ignore[no-any-return]
