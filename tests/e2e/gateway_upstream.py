"""A tiny HTTP/1.1 upstream process for the gateway e2e tests.

    python3 gateway_upstream.py PORT NAME

GET /readyz -> 200; /whoami -> {"name": NAME}; /fail -> 503;
/count -> {"count": requests served so far (excluding /count, /readyz)};
anything else -> 200 {"name": NAME, "path": ...}. The body of a request
is read and dropped.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
NAME = sys.argv[2]
count = 0


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, status: int, obj: object) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _any(self) -> None:
        global count
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        path = self.path.split("?")[0]
        if path == "/readyz":
            self._reply(200, {"status": "ok"})
            return
        if path == "/count":
            self._reply(200, {"count": count})
            return
        count += 1
        if path == "/fail":
            self._reply(503, {"error": {"code": "down"}})
        elif path == "/whoami":
            self._reply(200, {"name": NAME})
        else:
            self._reply(200, {"name": NAME, "path": path})

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any


srv = ThreadingHTTPServer(("127.0.0.1", PORT), H)
srv.daemon_threads = True
print("ready", flush=True)
srv.serve_forever()
