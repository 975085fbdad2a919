"""The http job type's egress policy (SSRF): private, loopback and
link-local targets are refused unless allow-listed.

The suite allow-lists only the literal 127.0.0.1 (conftest
E2E_AUTOMATION_ENV), so "localhost", [::1] and the cloud metadata address
must be refused with a clear error, while 127.0.0.1 itself is served.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from conftest import register_and_login, unique_email


class Hits(BaseHTTPRequestHandler):
    count = 0

    def do_GET(self) -> None:
        Hits.count += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hits)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def api(cluster, gw) -> Iterator[httpx.Client]:
    owner = register_and_login(gw, unique_email("egress"))
    url = f"http://127.0.0.1:{cluster.env['BASALT_AUTOMATION_PORT']}"
    with httpx.Client(base_url=url, headers=owner.auth, timeout=30) as c:
        yield c


def run_http(api: httpx.Client, url: str) -> dict:
    r = api.post("/automation/jobs", json={
        "type": "http", "args": {"url": url, "timeout_ms": 5000},
        "max_attempts": 1})
    assert r.status_code == 202, r.text
    jid = r.json()["job"]["id"]
    until = time.monotonic() + 60
    while time.monotonic() < until:
        job = api.get(f"/automation/jobs/{jid}").json()["job"]
        if job["state"] in ("succeeded", "dead", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {jid} did not finish")


def test_allow_listed_loopback_is_served(api, upstream) -> None:
    job = run_http(api, f"http://127.0.0.1:{upstream}/x")
    assert job["state"] == "succeeded", job
    assert job["result"]["status"] == 200


@pytest.mark.parametrize("host,why", [
    ("localhost", "localhost resolves to a loopback address"),
    ("[::1]", "::1 is a loopback address"),
    ("169.254.169.254", "169.254.169.254 is a link-local address"),
    ("10.0.0.1", "10.0.0.1 is a private address"),
])
def test_private_targets_are_refused(api, upstream, host, why) -> None:
    before = Hits.count
    job = run_http(api, f"http://{host}:{upstream}/secret")
    assert job["state"] == "dead", job
    assert job["last_error"].startswith("egress refused: " + why), job
    assert "HTTP_JOB_ALLOW_HOSTS" in job["last_error"]
    assert Hits.count == before
