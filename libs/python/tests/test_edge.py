"""basalt_common.edge: request id on the response, status, metrics and
the access line."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest
from prometheus_client import CollectorRegistry

from basalt_common.edge import Exchange, HttpMetrics


def scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": path,
            "headers": headers}


def run(path: str, headers: list[tuple[bytes, bytes]], status: int,
        metrics: HttpMetrics, log: logging.Logger) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    async def main() -> None:
        ex = Exchange(scope(path, headers), send)
        try:
            await ex.send({"type": "http.response.start", "status": status,
                           "headers": [(b"content-type", b"text/plain")]})
            await ex.send({"type": "http.response.body", "body": b"x"})
        finally:
            ex.finish(metrics, path, log)

    anyio.run(main)
    return sent


def test_exchange(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    metrics = HttpMetrics(registry, (.1, 1))
    log = logging.getLogger("edge-test")
    tid = "4bf92f3577b34da6a3ce929d0e0e4736"
    with caplog.at_level(logging.INFO, logger="edge-test"):
        sent = run("/x", [(b"x-request-id", b"rid-7"),
                          (b"traceparent", f"00-{tid}-00f067aa0ba902b7-01"
                           .encode())], 201, metrics, log)
        run("/healthz", [], 200, metrics, log)
    assert (b"x-request-id", b"rid-7") in sent[0]["headers"]
    assert (b"content-type", b"text/plain") in sent[0]["headers"]
    assert sent[1] == {"type": "http.response.body", "body": b"x"}
    lines = [r for r in caplog.records if r.getMessage() == "request"]
    assert len(lines) == 1   # ops routes are counted, not logged
    assert lines[0].status == 201
    assert lines[0].path == "/x"
    assert registry.get_sample_value(
        "http_requests_total",
        {"method": "GET", "route": "/x", "status": "201"}) == 1
    assert registry.get_sample_value(
        "http_requests_total",
        {"method": "GET", "route": "/healthz", "status": "200"}) == 1
    assert registry.get_sample_value(
        "http_request_duration_seconds_count",
        {"method": "GET", "route": "/x"}) == 1


def test_exchange_replaces_a_bad_request_id() -> None:
    metrics = HttpMetrics(CollectorRegistry(), (1,))
    sent = run("/y", [(b"x-request-id", b"bad id!")], 200, metrics,
               logging.getLogger("edge-test"))
    rid = dict(sent[0]["headers"])[b"x-request-id"]
    assert rid != b"bad id!" and len(rid) == 32
