"""Gateway streaming: SSE passes chunk by chunk, uploads stream through
with flat memory, a client that leaves cancels the upstream request, MCP
and auth headers pass untouched.

Upload size: GW_E2E_UPLOAD_MB (default 50; the soak/bench run uses 200).
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler

import httpx
import pytest
from gateway_harness import (
    Gateway,
    Upstream,
    gateway,
    read_body,
    reply_json,
    token,
)

UPLOAD_MB = int(os.environ.get("GW_E2E_UPLOAD_MB", "50"))
# Bound on how much the gateway may grow while a body passes through.
RSS_GROWTH_LIMIT_KB = 24 * 1024


class StreamState:
    def __init__(self) -> None:
        self.release = threading.Event()   # lets the SSE upstream finish
        self.gone = threading.Event()      # the upstream saw the client leave
        self.upload_bytes = 0
        self.upload_sha = ""
        self.headers: dict[str, str] = {}


def make_upstream(st: StreamState) -> Upstream:
    def handle(req: BaseHTTPRequestHandler) -> None:
        path = req.path.split("?")[0]
        if path == "/sse":
            req.send_response(200)
            req.send_header("Content-Type", "text/event-stream")
            req.send_header("Transfer-Encoding", "chunked")
            req.end_headers()

            def chunk(data: bytes) -> None:
                req.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                req.wfile.flush()

            chunk(b"data: first\n\n")
            # Only finishes once the client has seen the first event.
            st.release.wait(60)
            chunk(b"data: second\n\n")
            req.wfile.write(b"0\r\n\r\n")
            req.wfile.flush()
        elif path == "/endless":
            req.send_response(200)
            req.send_header("Content-Type", "text/event-stream")
            req.send_header("Transfer-Encoding", "chunked")
            req.end_headers()
            try:
                for _ in range(600):
                    data = b"data: tick\n\n"
                    req.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    req.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                st.gone.set()
                return
            req.close_connection = True
        elif path == "/small-chunked":
            # The whole chunked answer in one write, so libcurl has it
            # all (finished) before the gateway answers: sent from memory.
            req.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain"
                            b"\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
            req.wfile.flush()
        elif path == "/sized":
            req.send_response(200)
            req.send_header("Content-Type", "text/plain")
            req.send_header("Content-Length", "11")
            req.end_headers()
            if req.command != "HEAD":
                req.wfile.write(b"hello world")
        elif path == "/upload":
            h = hashlib.sha256()
            n = read_body(req, h.update)
            st.upload_bytes = n
            st.upload_sha = h.hexdigest()
            reply_json(req, 200, {"bytes": n, "sha256": h.hexdigest()})
        else:
            read_body(req, lambda b: None)
            st.headers = {k.lower(): v for k, v in req.headers.items()}
            reply_json(req, 401, {"seen": st.headers}, {
                "WWW-Authenticate": 'Bearer resource_metadata="http://x/"',
                "Mcp-Session-Id": "sess-42"})

    return Upstream(handle)


def routes(up: Upstream) -> dict:
    return {
        "upstreams": {"up": {"targets": [up.url]}},
        "routes": [
            {"name": "pub", "prefix": "/", "upstream": "up", "auth": "none",
             "max_body": (UPLOAD_MB + 1) << 20, "timeout_ms": 120000},
            {"name": "mcp", "prefix": "/mcp", "upstream": "up",
             "auth": "token"},
        ],
    }


@pytest.fixture(scope="module")
def env():
    st = StreamState()
    up = make_upstream(st)
    with gateway(routes(up), {"MAX_BODY_BYTES": str((UPLOAD_MB + 1) << 20)}
                 ) as gw:
        yield st, up, gw
    up.close()


def test_sse_chunks_arrive_before_upstream_finishes(env) -> None:
    st, _, gw = env
    st.release.clear()
    with httpx.stream("GET", gw.url + "/sse", timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers.get("x-accel-buffering") == "no"
        it = r.iter_raw()
        first = next(it)
        # The upstream is still blocked: this chunk was not buffered.
        assert b"data: first" in first
        assert not st.release.is_set()
        st.release.set()
        rest = b"".join(it)
    assert b"data: second" in first + rest


def test_small_answers_keep_body_and_length(env) -> None:
    """A finished answer goes out from memory with its length; HEAD keeps
    the upstream's Content-Length and sends no body."""
    _, _, gw = env
    r = httpx.get(gw.url + "/small-chunked", timeout=10)
    assert r.status_code == 200
    assert r.content == b"hello world"
    assert r.headers["content-length"] == "11"
    assert "transfer-encoding" not in r.headers
    assert "x-accel-buffering" not in r.headers
    r = httpx.get(gw.url + "/sized", timeout=10)
    assert (r.status_code, r.content) == (200, b"hello world")
    assert r.headers["content-length"] == "11"
    r = httpx.head(gw.url + "/sized", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-length"] == "11"
    assert r.content == b""


def test_upload_streams_with_flat_memory(env) -> None:
    _, _, gw = env
    size = UPLOAD_MB << 20
    block = os.urandom(1 << 16)
    want = hashlib.sha256()
    for _ in range(size // len(block)):
        want.update(block)
    # Warm up, then take the baseline.
    httpx.post(gw.url + "/upload", content=b"x" * 1000, timeout=30)
    base = gw.rss_kb()
    peak = base
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, gw.rss_kb())
            time.sleep(0.05)

    def body():
        for _ in range(size // len(block)):
            yield block

    t = threading.Thread(target=sample)
    t.start()
    try:
        r = httpx.post(gw.url + "/upload", content=body(),
                       headers={"Content-Length": str(size)}, timeout=300)
    finally:
        stop.set()
        t.join()
    assert r.status_code == 200, r.text
    assert r.json() == {"bytes": size, "sha256": want.hexdigest()}
    growth = peak - base
    print(f"RSS base {base} KiB peak {peak} KiB")
    assert growth < RSS_GROWTH_LIMIT_KB, (
        f"gateway RSS grew {growth} KiB for a {UPLOAD_MB} MiB upload")


def test_chunked_upload_passes(env) -> None:
    _, _, gw = env

    def body():
        for i in range(64):
            yield bytes([i % 256]) * 4096

    r = httpx.post(gw.url + "/upload", content=body(), timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["bytes"] == 64 * 4096


def test_client_disconnect_cancels_upstream(env) -> None:
    st, _, gw = env
    st.gone.clear()
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    s.sendall(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"tick" in s.recv(4096) or b"tick" in s.recv(4096)
    s.close()
    assert st.gone.wait(30), "upstream kept streaming to a gone client"


def test_mcp_and_auth_headers_pass_untouched(env) -> None:
    st, _, gw = env
    r = httpx.post(gw.url + "/mcp", json={"jsonrpc": "2.0"}, headers={
        "Authorization": "Bearer " + token(),
        "Mcp-Session-Id": "sess-42",
        "MCP-Protocol-Version": "2025-06-18",
        "Last-Event-ID": "ev-7",
        "Accept": "application/json, text/event-stream"}, timeout=30)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == \
        'Bearer resource_metadata="http://x/"'
    assert r.headers["mcp-session-id"] == "sess-42"
    seen = st.headers
    assert seen["mcp-session-id"] == "sess-42"
    assert seen["mcp-protocol-version"] == "2025-06-18"
    assert seen["last-event-id"] == "ev-7"
    assert seen["accept"] == "application/json, text/event-stream"
    assert seen["x-user-id"] == "user-1"
    assert "traceparent" in seen and "x-request-id" in seen


def test_client_leaving_idle_sse_then_sigterm_exits_promptly() -> None:
    """A client that leaves an SSE stream whose upstream is idle (waiting
    for its next event) must not keep the request in flight: SIGTERM then
    drains at once and the gateway exits 0 (it used to wait out the 25 s
    drain and abort in MHD_stop_daemon with suspended connections)."""
    hold = threading.Event()
    sent = threading.Event()

    def handle(req: BaseHTTPRequestHandler) -> None:
        req.send_response(200)
        req.send_header("Content-Type", "text/event-stream")
        req.send_header("Transfer-Encoding", "chunked")
        req.end_headers()
        data = b"data: first\n\n"
        req.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        req.wfile.flush()
        sent.set()
        hold.wait(60)  # idle: no more events until the test ends
        req.close_connection = True

    up = Upstream(handle)
    gw = Gateway({"upstreams": {"up": {"targets": [up.url]}},
                  "routes": [{"name": "sse", "prefix": "/", "upstream": "up",
                              "auth": "none", "timeout_ms": 120000}]})
    try:
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
        s.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while b"data: first" not in got:
            chunk = s.recv(4096)
            assert chunk, "gateway closed the stream early"
            got += chunk
        assert sent.wait(5)  # set right after the flush that we just read
        s.close()
        # The gateway notices the departure while the upstream stays idle.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = httpx.get(gw.url + "/metrics", timeout=5).text
            if 'route="sse",method="GET",status="499"' in m:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("request still in flight after the client "
                                 "left:\n" + m[-2000:])
        t0 = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        rc = gw.proc.wait(timeout=20)
        took = time.monotonic() - t0
        assert rc == 0, gw.log_path.read_text(errors="replace")[-4000:]
        # Well under the 25 s drain: nothing was left in flight.
        assert took < 15, f"drain took {took:.1f} s"
    finally:
        hold.set()
        text = gw.stop()
        up.close()
    assert "suspended connections" not in text
    assert "drain timed out" not in text


def test_sigterm_with_a_live_idle_stream_aborts_it_after_drain() -> None:
    """A client still on an idle SSE stream at SIGTERM: after DRAIN_S the
    upstream transfer is aborted and the gateway exits 0 (no abort in
    MHD_stop_daemon over a suspended connection)."""
    hold = threading.Event()

    def handle(req: BaseHTTPRequestHandler) -> None:
        req.send_response(200)
        req.send_header("Content-Type", "text/event-stream")
        req.send_header("Transfer-Encoding", "chunked")
        req.end_headers()
        data = b"data: first\n\n"
        req.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        req.wfile.flush()
        hold.wait(60)
        req.close_connection = True

    up = Upstream(handle)
    gw = Gateway({"upstreams": {"up": {"targets": [up.url]}},
                  "routes": [{"name": "sse", "prefix": "/", "upstream": "up",
                              "auth": "none", "timeout_ms": 120000}]},
                 {"DRAIN_S": "1"})
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    try:
        s.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while b"data: first" not in got:
            chunk = s.recv(4096)
            assert chunk, "gateway closed the stream early"
            got += chunk
        gw.proc.send_signal(signal.SIGTERM)
        rc = gw.proc.wait(timeout=30)
        assert rc == 0, gw.log_path.read_text(errors="replace")[-4000:]
        # The stream was ended, not left hanging.
        s.settimeout(10)
        rest = b""
        while True:
            try:
                chunk = s.recv(4096)
            except OSError:
                break
            if not chunk:
                break
            rest += chunk
    finally:
        s.close()
        hold.set()
        text = gw.stop()
        up.close()
    assert "suspended connections" not in text
