"""What both services' edge middlewares do around a request: request id
and trace id into the log context, X-Request-Id on the response, the
final status, the HTTP metrics and one JSON access line.

Pure ASGI (no response buffering), so streaming bodies stay streaming.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import Message, Scope, Send

from basalt_common import logs

OPS_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})


class HttpMetrics:
    """http_requests_total{method,route,status} and
    http_request_duration_seconds{method,route} on one registry."""

    def __init__(self, registry: CollectorRegistry,
                 buckets: Sequence[float]) -> None:
        self.requests = Counter(
            "http_requests_total", "HTTP requests by final status",
            ["method", "route", "status"], registry=registry)
        self.duration = Histogram(
            "http_request_duration_seconds", "HTTP request duration",
            ["method", "route"], buckets=buckets, registry=registry)


class Exchange:
    """One HTTP request/response as the edge middleware sees it.

    Creating it sets the request id (the caller's X-Request-Id when sane)
    and trace id into the log context; pass `send` on instead of the
    server's send to add X-Request-Id and learn the status; call
    `finish` once, in a `finally`.
    """

    def __init__(self, scope: Scope, send: Send) -> None:
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                        for k, v in scope["headers"]}
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.status = 500
        self.rid = logs.request_id_from(self.headers.get("x-request-id"))
        logs.request_id_var.set(self.rid)
        logs.trace_id_var.set(
            logs.trace_id_from(self.headers.get("traceparent")))
        self._send = send
        self._start = time.perf_counter()

    async def send(self, msg: Message) -> None:
        if msg["type"] == "http.response.start":
            self.status = msg["status"]
            msg["headers"] = [*msg.get("headers", []),
                              (b"x-request-id", self.rid.encode())]
        await self._send(msg)

    def finish(self, metrics: HttpMetrics, route: str,
               log: logging.Logger) -> None:
        """Counts the exchange under `route` (a bounded label: the path
        for known routes, else "other") and logs it unless it is an ops
        endpoint."""
        took = time.perf_counter() - self._start
        metrics.requests.labels(self.method, route, str(self.status)).inc()
        metrics.duration.labels(self.method, route).observe(took)
        if route not in OPS_ROUTES:
            log.info("request", extra={
                "method": self.method, "path": self.path,
                "status": self.status,
                "duration_ms": round(took * 1000, 3)})
