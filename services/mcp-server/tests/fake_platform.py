"""A small real HTTP server standing in for the gateway + platform APIs
the MCP tools call (jobs, datasets, workflows, analytics), for unit tests.
Every request needs `Authorization: Bearer ...`; requests are recorded."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DATASET = {"id": "7", "name": "sales.csv", "row_count": 3,
           "columns": [{"name": "region", "type": "string"},
                       {"name": "amount", "type": "integer"}]}
ROWS = [{"region": "north", "amount": 10}, {"region": "south", "amount": 25},
        {"region": "north", "amount": 7}]


class FakePlatform:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        fake = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without
            # TCP_NODELAY, Nagle + delayed ACK add ~40 ms per answer.
            disable_nagle_algorithm = True

            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                u = urlsplit(self.path)
                q = parse_qs(u.query)
                fake.requests.append({"method": method, "path": u.path,
                                      "query": q,
                                      "headers": dict(self.headers),
                                      "body": raw})
                if u.path == "/analytics/events" and method == "POST":
                    if not (self.headers.get("X-Internal-Token")
                            or self.headers.get("Authorization")):
                        self._send(401, {"error": {"code": "missing_token",
                                                   "message": "x",
                                                   "request_id": "r"}})
                        return
                    fake.events.append({"headers": dict(self.headers),
                                        "body": json.loads(raw)})
                    self._send(202, {"accepted": 1})
                    return
                if not (self.headers.get("Authorization") or "").startswith(
                        "Bearer "):
                    self._send(401, {"error": {"code": "missing_token",
                                               "message": "no token",
                                               "request_id": "r"}})
                    return
                p = u.path.rstrip("/").split("/")
                if u.path == "/automation/datasets":
                    self._send(200, {"datasets": [DATASET],
                                     "next_cursor": None})
                elif u.path == "/automation/datasets/7":
                    self._send(200, {"dataset": DATASET})
                elif u.path == "/automation/datasets/7/rows":
                    rows = ROWS
                    for f in q.get("filter", []):
                        col, op, val = f.split(":", 2)
                        if op == "eq":
                            rows = [r for r in rows if str(r[col]) == val]
                    lim = int(q.get("limit", ["50"])[0])
                    self._send(200, {"rows": rows[:lim],
                                     "next_cursor": None})
                elif len(p) == 4 and p[1:3] == ["automation", "jobs"]:
                    if p[3] == "42":
                        self._send(200, {"job": {"id": 42, "type": "noop",
                                                 "state": "succeeded"}})
                    else:
                        self._send(404, {"error": {
                            "code": "not_found", "message": "no such job",
                            "request_id": "r"}})
                elif u.path == "/automation/workflows":
                    self._send(200, {"workflows": [], "next_cursor": None})
                elif u.path == "/analytics/top":
                    self._send(200, {"events": [{"event": "x",
                                                 "count": 3}]})
                elif u.path == "/analytics/summary":
                    self._send(200, {"event": q.get("event", [""])[0],
                                     "buckets": []})
                else:
                    self._send(404, {"error": {"code": "not_found",
                                               "message": "no route",
                                               "request_id": "r"}})

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)

    def start(self) -> FakePlatform:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
