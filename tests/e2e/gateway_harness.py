"""Helpers for the gateway's own end-to-end tests (test_gateway_*.py).

They start extra gateway processes (the ASan binary) with their own routes
file and env, and small Python upstreams in threads of the test process, on
free ports. Nothing here touches the shared session cluster except, where a
test asks for it, its Redis.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("BASALT_E2E_BIN_DIR", REPO / "build/asan/bin"))
SECRET = "e2e-gateway-secret-0123456789abcdef0123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid: int) -> int:
    """Resident set size of a process in KiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Upstream:
    """A threaded HTTP/1.1 upstream; `handler(req)` serves each request."""

    def __init__(self, handler: Callable[[BaseHTTPRequestHandler], None]):
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                outer.count += 1
                handler(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any
            do_HEAD = do_OPTIONS = _any

        self.count = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def read_body(req: BaseHTTPRequestHandler,
              sink: Callable[[bytes], None]) -> int:
    """Reads a Content-Length or chunked request body into sink."""
    total = 0
    cl = req.headers.get("Content-Length")
    if cl is not None:
        left = int(cl)
        while left > 0:
            chunk = req.rfile.read(min(left, 1 << 16))
            if not chunk:
                break
            sink(chunk)
            total += len(chunk)
            left -= len(chunk)
        return total
    if "chunked" in req.headers.get("Transfer-Encoding", ""):
        while True:
            size = int(req.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while req.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return total
            left = size
            while left > 0:
                chunk = req.rfile.read(min(left, 1 << 16))
                sink(chunk)
                total += len(chunk)
                left -= len(chunk)
            req.rfile.readline()
    return total


def reply_json(req: BaseHTTPRequestHandler, status: int, obj: object,
               headers: dict[str, str] | None = None) -> None:
    data = json.dumps(obj).encode()
    req.send_response(status)
    req.send_header("Content-Type", "application/json")
    req.send_header("Content-Length", str(len(data)))
    for k, v in (headers or {}).items():
        req.send_header(k, v)
    req.end_headers()
    if req.command != "HEAD":
        req.wfile.write(data)


class Gateway:
    """A gateway process on a free port with its own routes file."""

    def __init__(self, routes: dict, env: dict[str, str] | None = None):
        self.dir = Path(tempfile.mkdtemp(prefix="basalt-gw-"))
        self.routes_path = self.dir / "routes.json"
        self.write_routes(routes)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.dir / "gateway.log"
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "LOG_LEVEL": "warn",
            "ROUTES_FILE": str(self.routes_path),
            "JWT_SECRET": SECRET,
            "ASAN_OPTIONS": "detect_leaks=1:quarantine_size_mb=16",
        }
        full_env.update(env or {})
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([str(BIN_DIR / "gateway")], env=full_env,
                                     stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code \
                        == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gateway did not start:\n" +
                                   self.log_path.read_text())
            time.sleep(0.05)

    def write_routes(self, routes: dict) -> None:
        tmp = self.routes_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(routes))
        tmp.replace(self.routes_path)

    def reload(self, routes: dict) -> None:
        self.write_routes(routes)
        self.proc.send_signal(signal.SIGHUP)

    def rss_kb(self) -> int:
        return rss_kb(self.proc.pid)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        text = self.log_path.read_text(errors="replace")
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                       "runtime error:"):
            assert marker not in text, text[-4000:]
        shutil.rmtree(self.dir, ignore_errors=True)
        return text


@contextmanager
def gateway(routes: dict, env: dict[str, str] | None = None
            ) -> Iterator[Gateway]:
    g = Gateway(routes, env)
    try:
        yield g
    finally:
        g.stop()


def token(sub: str = "user-1", roles: list[str] | None = None) -> str:
    """An HS256 access token the test gateways accept."""
    import base64
    import hmac

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    now = int(time.time())
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"iss": "basalt", "aud": "basalt", "sub": sub,
              "email": f"{sub}@example.com", "roles": roles or ["user"],
              "iat": now, "nbf": now, "exp": now + 600,
              "jti": hashlib.sha256(os.urandom(8)).hexdigest()[:16]}
    signing = b64(json.dumps(header).encode()) + "." + \
        b64(json.dumps(claims).encode())
    sig = hmac.new(SECRET.encode(), signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64(sig)


class UpstreamProc:
    """gateway_upstream.py in its own process (so it can be killed)."""

    def __init__(self, name: str):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [os.environ.get("PYTHON", "python3"),
             str(Path(__file__).with_name("gateway_upstream.py")),
             str(self.port), name], stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == b"ready"

    def count(self) -> int:
        return httpx.get(self.url + "/count", timeout=10).json()["count"]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def upstreams(*names: str) -> Iterator[list[UpstreamProc]]:
    ups = [UpstreamProc(n) for n in names]
    try:
        yield ups
    finally:
        for u in ups:
            u.kill()
