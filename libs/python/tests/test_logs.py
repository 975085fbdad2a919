"""basalt_common.logs: one JSON line per record, request ids."""

from __future__ import annotations

import io
import json
import logging

import pytest

from basalt_common import logs


def test_request_id_from_keeps_a_sane_id() -> None:
    assert logs.request_id_from("abc-123._:x") == "abc-123._:x"


@pytest.mark.parametrize("bad", [None, "", "a b", "x" * 129, "é", "a\nb"])
def test_request_id_from_replaces_a_bad_one(bad: str | None) -> None:
    rid = logs.request_id_from(bad)
    assert rid != bad
    assert len(rid) == 32 and int(rid, 16) >= 0


def test_trace_id_from() -> None:
    tid = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert logs.trace_id_from(f"00-{tid}-00f067aa0ba902b7-01") == tid
    assert logs.trace_id_from(None) == ""
    assert logs.trace_id_from("garbage") == ""


def test_json_line_carries_context_and_extras() -> None:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logs.JsonFormatter("svc"))
    lg = logging.getLogger("basalt-common-test")
    lg.handlers[:] = [handler]
    lg.propagate = False
    lg.setLevel(logging.INFO)
    rid = logs.request_id_var.set("req-1")
    try:
        lg.warning("hello %s", "world", extra={"status": 201})
    finally:
        logs.request_id_var.reset(rid)
    line = json.loads(buf.getvalue())
    assert line["level"] == "warn"
    assert line["service"] == "svc"
    assert line["msg"] == "hello world"
    assert line["request_id"] == "req-1"
    assert line["status"] == 201
    assert line["ts"].endswith("Z")
