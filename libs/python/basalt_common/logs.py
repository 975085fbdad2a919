"""JSON log lines on stdout with the request id (design: Logs)."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar(
    "request_id", default="")
trace_id_var: contextvars.ContextVar[str] = contextvars.ContextVar(
    "trace_id", default="")

_RID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        level = record.levelname.lower()
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": "warn" if level == "warning" else level,
            "service": self.service,
            "msg": record.getMessage(),
        }
        rid = request_id_var.get()
        if rid:
            out["request_id"] = rid
        tid = trace_id_var.get()
        if tid:
            out["trace_id"] = tid
        for k, v in vars(record).items():
            if k not in _RESERVED and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup(service: str, level: str) -> None:
    lvl = {"debug": logging.DEBUG, "info": logging.INFO,
           "warn": logging.WARNING, "warning": logging.WARNING,
           "error": logging.ERROR}[level]
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(lvl)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "mcp",
                 "httpx", "httpcore", "httpx2", "httpcore2"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # Chatty per-request lines from the SDK and the HTTP client stay at
    # debug; our middleware logs one line per request.
    for name in ("httpx", "httpcore", "httpx2", "httpcore2", "mcp"):
        logging.getLogger(name).setLevel(max(lvl, logging.WARNING))


def trace_id_from(traceparent: str | None) -> str:
    """The trace id of a W3C traceparent, or ""."""
    if not traceparent:
        return ""
    parts = traceparent.split("-")
    if len(parts) == 4 and len(parts[1]) == 32:
        return parts[1]
    return ""


def request_id_from(header: str | None) -> str:
    """The caller's X-Request-Id when it is sane (1-128 of [A-Za-z0-9._:-],
    so it is safe in logs and headers), else a fresh one."""
    if header and _RID.match(header):
        return header
    return uuid.uuid4().hex
