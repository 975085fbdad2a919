"""ASGI application: the SDK's Streamable HTTP app at /mcp plus /healthz,
/readyz and /metrics, wrapped in a middleware for request ids, JSON access
logs, Prometheus metrics and the bearer-token requirement."""

from __future__ import annotations

import json
import logging
from typing import Any

from basalt_common.edge import OPS_ROUTES, Exchange, HttpMetrics
from mcp.server.transport_security import TransportSecuritySettings
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    generate_latest,
)
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .platform import Platform
from .server import build
from .settings import Settings

log = logging.getLogger("mcp_server")
ROUTES = frozenset({"/mcp", *OPS_ROUTES})
BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)


def error_body(code: str, message: str, rid: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message,
                                 "request_id": rid}}).encode()


class Edge:
    """Pure ASGI middleware (keeps streaming bodies streaming)."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.registry = registry
        self.http = HttpMetrics(registry, BUCKETS)

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
        ex = Exchange(scope, send)
        route = ex.path if ex.path in ROUTES else "other"
        try:
            auth = ex.headers.get("authorization", "")
            if route == "/mcp" and not auth.lower().startswith("bearer "):
                await ex.send({
                    "type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"),
                                (b"www-authenticate",
                                 b'Bearer realm="basalt"')]})
                await ex.send({"type": "http.response.body",
                               "body": error_body(
                                   "missing_token",
                                   "the MCP endpoint needs the user's "
                                   "Authorization: Bearer token", ex.rid)})
                return
            if route in OPS_ROUTES and ex.method in ("GET", "HEAD"):
                await self._ops(route)(scope, receive, ex.send)
                return
            await self.app(scope, receive, ex.send)
        finally:
            ex.finish(self.http, route, log)


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
