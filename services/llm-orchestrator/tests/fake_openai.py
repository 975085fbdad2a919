"""A real HTTP server speaking OpenAI's chat completions wire format.

Used by the unit tests, the e2e tests and the bench. Behaviour is chosen
by the model name, `+`-separated words, so one server serves every case:

  echo            answers "hello from fake" (default)
  words=N         answers N words ("w0 w1 ...")
  fail429=N       the first N calls of this exact model name answer 429
  fail500=N       the same with 500
  always429 / always500 / always400 / always401
  midstream       200 stream that sends two chunks, then an error event
  slow=S          streams the first word at once, sleeps S seconds, then
                  the rest (also delays a non-stream answer by S)
  hang            streams one chunk then waits until the client goes away
  nullusage       usage chunk with "choices": null instead of []
  comments        SSE comment lines between chunks
  nousage         never sends usage
  tool=NAME       first turn: a tool call to NAME with the JSON arguments
                  from the model word args=<urlsafe-b64 JSON> (default {});
                  once the conversation has a tool result, answers
                  "tool said: <the result>"

Every request body is kept in `requests` (parsed JSON), with the path.
`disconnects` counts streams whose client went away mid-stream;
`finished` holds the models whose stream was written to the end.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def opts_of(model: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for w in model.split("+"):
        k, _, v = w.partition("=")
        out[k] = v
    return out


def args_word(args: dict[str, Any]) -> str:
    return "args=" + base64.urlsafe_b64encode(
        json.dumps(args).encode()).decode().rstrip("=")


def _args(o: dict[str, str]) -> str:
    raw = o.get("args")
    if not raw:
        return "{}"
    return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()


class FakeOpenAI:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.calls: dict[str, int] = {}
        self.disconnects = 0
        # Models whose stream was written to the end ([DONE] sent).
        self.finished: set[str] = set()
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without
            # TCP_NODELAY, Nagle + delayed ACK add ~40 ms per answer.
            disable_nagle_algorithm = True

            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.endswith("/models"):
                    self._json(200, {"object": "list", "data": []})
                else:
                    self._json(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}")
                with fake.lock:
                    fake.requests.append({"path": self.path, "body": body,
                                          "headers": dict(self.headers)})
                    model = body.get("model", "")
                    fake.calls[model] = fake.calls.get(model, 0) + 1
                    count = fake.calls[model]
                fake.handle(self, body, count)

            def _json(self, status: int, obj: Any,
                      headers: dict[str, str] | None = None) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.Handler = Handler
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)

    def start(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --------------------------------------------------------------- logic

    def answer(self, body: dict[str, Any], o: dict[str, str]
               ) -> tuple[str, list[dict[str, Any]] | None]:
        """(content, tool_calls) the model gives to this conversation."""
        msgs = body.get("messages") or []
        if "tool" in o:
            tool_results = [m for m in msgs if m.get("role") == "tool"]
            if tool_results and body.get("tool_choice") != "required":
                return "tool said: " + str(tool_results[-1]["content"]), None
            if body.get("tool_choice") == "none":
                return "no more tools", None
            return "", [{"id": "call_" + uuid.uuid4().hex[:8],
                         "type": "function",
                         "function": {"name": o["tool"],
                                      "arguments": _args(o)}}]
        if "words" in o:
            return " ".join(f"w{i}" for i in range(int(o["words"]))), None
        return "hello from fake", None

    def handle(self, h: Any, body: dict[str, Any], count: int) -> None:
        o = opts_of(body.get("model", ""))
        for code in ("429", "500"):
            if f"fail{code}" in o and count <= int(o[f"fail{code}"]):
                h._json(int(code), {"error": {"message": f"fake {code}",
                                              "type": "x"}},
                        {"Retry-After": "0"} if code == "429" else None)
                return
            if f"always{code}" in o:
                h._json(int(code), {"error": {"message": f"fake {code}"}},
                        {"Retry-After": "0"} if code == "429" else None)
                return
        for code in (400, 401):
            if f"always{code}" in o:
                h._json(code, {"error": {"message": f"fake {code}"}})
                return
        content, calls = self.answer(body, o)
        usage = {"prompt_tokens": 7, "completion_tokens":
                 max(1, len(content.split())), "total_tokens": 0}
        usage["total_tokens"] = usage["prompt_tokens"] + usage[
            "completion_tokens"]
        cid = "chatcmpl-" + uuid.uuid4().hex[:12]
        model = body.get("model", "")
        if not body.get("stream"):
            if "slow" in o:
                time.sleep(float(o["slow"] or 1))
            msg: dict[str, Any] = {"role": "assistant",
                                   "content": content or None}
            if calls:
                msg["tool_calls"] = calls
            h._json(200, {
                "id": cid, "object": "chat.completion",
                "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": msg,
                             "finish_reason": "tool_calls" if calls
                             else "stop"}],
                "usage": usage})
            return
        self.stream(h, o, cid, model, content, calls, usage, body)

    def stream(self, h: Any, o: dict[str, str], cid: str, model: str,
               content: str, calls: list[dict[str, Any]] | None,
               usage: dict[str, int], body: dict[str, Any]) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True

        def chunk(delta: dict[str, Any], finish: str | None = None,
                  **extra: Any) -> dict[str, Any]:
            return {"id": cid, "object": "chat.completion.chunk",
                    "created": 1, "model": model,
                    "choices": [{"index": 0, "delta": delta,
                                 "finish_reason": finish}], **extra}

        def send(obj: Any, event: str | None = None) -> None:
            data = obj if isinstance(obj, str) else json.dumps(obj)
            out = (f"event: {event}\n" if event else "") + \
                f"data: {data}\n\n"
            if "comments" in o:
                out = ": ping\n\n" + out
            h.wfile.write(out.encode())
            h.wfile.flush()

        try:
            send(chunk({"role": "assistant", "content": ""}))
            if calls:
                for i, c in enumerate(calls):
                    send(chunk({"tool_calls": [{
                        "index": i, "id": c["id"], "type": "function",
                        "function": {"name": c["function"]["name"],
                                     "arguments": ""}}]}))
                    args = c["function"]["arguments"]
                    half = len(args) // 2
                    for part in (args[:half], args[half:]):
                        send(chunk({"tool_calls": [{
                            "index": i, "function": {"arguments": part}}]}))
                send(chunk({}, "tool_calls"))
            else:
                words = content.split(" ")
                for i, w in enumerate(words):
                    piece = w if i == 0 else " " + w
                    send(chunk({"content": piece}))
                    if i == 0 and "slow" in o:
                        time.sleep(float(o["slow"] or 1))
                    if i == 0 and "hang" in o:
                        # Wait for the client to go away: writes fail.
                        for _ in range(600):
                            time.sleep(0.05)
                            h.wfile.write(b": still here\n\n")
                            h.wfile.flush()
                        return
                    if i == 1 and "midstream" in o:
                        send({"error": {"message": "fake failure mid-stream",
                                        "type": "server_error",
                                        "code": None}})
                        return
                send(chunk({}, "stop"))
            if "nousage" not in o and (body.get("stream_options") or {}).get(
                    "include_usage"):
                u = {"id": cid, "object": "chat.completion.chunk",
                     "created": 1, "model": model,
                     "choices": None if "nullusage" in o else [],
                     "usage": usage}
                send(u)
            send("[DONE]")
            with self.lock:
                self.finished.add(model)
        except (BrokenPipeError, ConnectionResetError):
            with self.lock:
                self.disconnects += 1


if __name__ == "__main__":
    import sys

    f = FakeOpenAI(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(f.url, flush=True)
    f.server.serve_forever()
