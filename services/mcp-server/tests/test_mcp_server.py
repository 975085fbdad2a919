"""The MCP server through the official SDK client, over Streamable HTTP,
against a fake platform."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from fake_platform import FakePlatform
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_support import SERVICE, Server

TOKEN = "Bearer test-user-token"

TOOLS = {"list_datasets", "describe_dataset", "query_dataset",
         "analytics_summary", "top_events", "list_workflows",
         "run_workflow", "get_job"}


@asynccontextmanager
async def client(server: Server, mode: str = "auto",
                 headers: dict[str, str] | None = None
                 ) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers=headers or {"Authorization": TOKEN},
                              timeout=30)
    async with http:
        async with Client(streamable_http_client(server.url + "/mcp",
                                                 http_client=http),
                          mode=mode) as c:  # type: ignore[arg-type]
            yield c


def run(coro_fn: Any, *args: Any) -> Any:
    return anyio.run(coro_fn, *args)


def test_initialize_and_list_tools(server: Server) -> None:
    async def go() -> tuple[str | None, list[Any]]:
        async with client(server) as c:
            tools = await c.list_tools()
            return c.session.protocol_version, tools.tools
    version, tools = run(go)
    assert version == "2026-07-28"
    assert {t.name for t in tools} == TOOLS
    for t in tools:
        assert t.input_schema["type"] == "object"
        assert t.description
        assert t.output_schema is not None
    q = next(t for t in tools if t.name == "query_dataset")
    assert q.input_schema["required"] == ["dataset_id"]
    assert "filters" in q.input_schema["properties"]


def test_legacy_handshake_revision(server: Server) -> None:
    async def go() -> tuple[str | None, int]:
        async with client(server, mode="legacy") as c:
            tools = await c.list_tools()
            return c.session.protocol_version, len(tools.tools)
    version, n = run(go)
    assert version == "2025-11-25" and n == len(TOOLS)


def test_query_dataset_as_the_user(server: Server,
                                   platform: FakePlatform) -> None:
    async def go() -> Any:
        async with client(server) as c:
            return await c.call_tool("query_dataset", {
                "dataset_id": "7", "limit": 5,
                "filters": [{"column": "region", "op": "eq",
                             "value": "north"}]})
    res = run(go)
    assert not res.is_error, res.content
    assert res.structured_content["rows"] == [
        {"region": "north", "amount": 10}, {"region": "north", "amount": 7}]
    req = [r for r in platform.requests
           if r["path"] == "/automation/datasets/7/rows"][-1]
    assert req["headers"]["Authorization"] == TOKEN
    assert req["query"] == {"limit": ["5"], "filter": ["region:eq:north"]}
    assert req["headers"].get("X-Request-Id")


def test_every_tool_reaches_its_api(server: Server,
                                    platform: FakePlatform) -> None:
    calls = {"list_datasets": ({}, "/automation/datasets"),
             "describe_dataset": ({"dataset_id": "7"},
                                  "/automation/datasets/7"),
             "analytics_summary": ({"event": "signup",
                                    "interval": "day"},
                                   "/analytics/summary"),
             "top_events": ({"limit": 3}, "/analytics/top"),
             "list_workflows": ({}, "/automation/workflows"),
             "get_job": ({"job_id": 42}, "/automation/jobs/42")}

    async def go() -> dict[str, Any]:
        out = {}
        async with client(server) as c:
            for name, (args, _) in calls.items():
                out[name] = await c.call_tool(name, args)
        return out
    results = run(go)
    for name, (_, path) in calls.items():
        assert not results[name].is_error, (name, results[name].content)
        assert any(r["path"] == path for r in platform.requests), name
    assert results["get_job"].structured_content["job"]["state"] == \
        "succeeded"


def test_failing_platform_call_is_a_tool_error(server: Server) -> None:
    async def go() -> Any:
        async with client(server) as c:
            return (await c.call_tool("get_job", {"job_id": 999}),
                    await c.call_tool("run_workflow", {"workflow_id": "9"}))
    missing, no_route = run(go)
    assert missing.is_error
    text = missing.content[0].text
    assert "404" in text and "not_found" in text and "no such job" in text
    assert no_route.is_error


def test_bad_arguments_are_a_tool_error(server: Server) -> None:
    async def go() -> Any:
        async with client(server) as c:
            return await c.call_tool("get_job", {"job_id": "nope"})
    res = run(go)
    assert res.is_error


def test_dataset_resource_and_prompt(server: Server) -> None:
    async def go() -> tuple[Any, Any, Any]:
        async with client(server) as c:
            templates = await c.list_resource_templates()
            res = await c.read_resource("basalt://datasets/7")
            prompt = await c.get_prompt("analyse_dataset",
                                        {"dataset_id": "7"})
            return templates, res, prompt
    templates, res, prompt = run(go)
    assert templates.resource_templates[0].uri_template == \
        "basalt://datasets/{dataset_id}"
    body = json.loads(res.contents[0].text)
    assert body["dataset"]["columns"][0]["name"] == "region"
    assert len(body["sample"]) == 3
    assert "describe_dataset" in prompt.messages[0].content.text


def init_body() -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}}


MCP_HEADERS = {"Authorization": TOKEN,
               "Accept": "application/json, text/event-stream",
               "Content-Type": "application/json"}


def test_raw_http_stateless_json(server: Server) -> None:
    r = httpx.post(server.url + "/mcp", json=init_body(),
                   headers=MCP_HEADERS)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert "mcp-session-id" not in r.headers  # stateless
    assert r.json()["result"]["serverInfo"]["name"] == "basalt"


def test_bearer_required(server: Server) -> None:
    h = dict(MCP_HEADERS)
    del h["Authorization"]
    r = httpx.post(server.url + "/mcp", json=init_body(), headers=h)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "missing_token"
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_host_and_origin_validation(server: Server) -> None:
    def post(**extra: str) -> int:
        return httpx.post(server.url + "/mcp", json=init_body(),
                          headers={**MCP_HEADERS, **extra}).status_code
    assert post(Host="evil.example.com") == 421
    assert post(Host="mcp.example.com") == 200
    assert post(Origin="https://evil.example.com") == 403
    assert post(Origin="https://console.example.com") == 200
    assert post(Origin=f"http://127.0.0.1:{server.port}") == 200


def test_ops_endpoints(server: Server) -> None:
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(server.url + "/readyz").status_code == 200
    m = httpx.get(server.url + "/metrics").text
    assert 'http_requests_total{method="POST",route="/mcp"' in m


def test_bad_setting_fails_fast() -> None:
    env = dict(os.environ, PORT="not-a-port")
    p = subprocess.run([str(SERVICE / "run")], env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        p.stderr.strip().splitlines()[0]]
    assert "PORT" in p.stderr


@pytest.mark.parametrize("log_line", ["request"])
def test_json_logs_with_request_id(server: Server, log_line: str) -> None:
    httpx.post(server.url + "/mcp", json=init_body(),
               headers={**MCP_HEADERS, "X-Request-Id": "rid-123"})
    # The access line is written after the response has gone out: poll.
    until = time.monotonic() + 10
    while True:
        lines = [json.loads(x) for x in server.log.read_text().splitlines()
                 if x.startswith("{")]
        mine = [x for x in lines if x.get("request_id") == "rid-123"]
        if (mine and mine[-1]["msg"] == log_line) or \
                time.monotonic() > until:
            break
        time.sleep(0.05)
    assert mine and mine[-1]["msg"] == log_line
    assert mine[-1]["service"] == "mcp-server"
