"""MCP through the gateway with the official SDK client: initialize,
tools/list, tools/call on real platform data (a CSV imported into a
dataset, a job), resources; the user's token is what the tools act with."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from conftest import Cluster, User, register_and_login, unique_email
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

CSV = (b"region,amount,day\n"
       b"north,10,2025-01-01\n"
       b"south,25,2025-01-02\n"
       b"north,7,2025-01-03\n")


@asynccontextmanager
async def mcp_client(cluster: Cluster, token: str | None
                     ) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        async with Client(streamable_http_client(
                cluster.gateway_url + "/mcp", http_client=http)) as c:
            yield c


def wait_job(gw: httpx.Client, user: User, job_id: int,
             timeout: float = 60) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while True:
        job = gw.get(f"/automation/jobs/{job_id}", headers=user.auth
                     ).json()["job"]
        if job["state"] in ("succeeded", "dead", "cancelled"):
            return job
        assert time.monotonic() < end, job
        time.sleep(0.1)


def import_csv(gw: httpx.Client, user: User) -> str:
    """The id of a ready dataset made from CSV."""
    r = gw.post("/automation/files", params={"name": "sales.csv"},
                content=CSV, headers={**user.auth,
                                      "Content-Type": "text/csv"})
    assert r.status_code == 201, r.text
    r = gw.post("/automation/jobs", json={
        "type": "import_file", "args": {"file_id": r.json()["id"]}},
        headers=user.auth)
    assert r.status_code == 202, r.text
    job = wait_job(gw, user, r.json()["job"]["id"])
    assert job["state"] == "succeeded", job
    return str(job["result"]["dataset_id"])


@pytest.fixture(scope="module")
def mcp_user(gw: httpx.Client) -> User:
    return register_and_login(gw, unique_email("mcp"))


@pytest.fixture(scope="module")
def dataset_id(gw: httpx.Client, mcp_user: User) -> str:
    return import_csv(gw, mcp_user)


def test_initialize_and_list_tools(cluster: Cluster, mcp_user: User) -> None:
    async def go() -> tuple[Any, Any]:
        async with mcp_client(cluster, mcp_user.access_token) as c:
            return c.session.protocol_version, await c.list_tools()
    version, tools = anyio.run(go)
    assert version
    names = {t.name for t in tools.tools}
    assert {"list_datasets", "describe_dataset", "query_dataset",
            "analytics_summary", "top_events", "list_workflows",
            "run_workflow", "get_job"} <= names


def test_gateway_requires_a_token(cluster: Cluster) -> None:
    r = httpx.post(cluster.gateway_url + "/mcp", json={
        "jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Accept": "application/json, text/event-stream"})
    assert r.status_code == 401


def test_query_dataset_from_csv(cluster: Cluster, mcp_user: User,
                                dataset_id: str) -> None:

    async def go() -> tuple[Any, Any, Any]:
        async with mcp_client(cluster, mcp_user.access_token) as c:
            q = await c.call_tool("query_dataset", {
                "dataset_id": dataset_id, "filters": [
                    {"column": "region", "op": "eq", "value": "north"}]})
            d = await c.call_tool("describe_dataset",
                                  {"dataset_id": dataset_id})
            res = await c.read_resource(f"basalt://datasets/{dataset_id}")
            return q, d, res
    q, d, res = anyio.run(go)
    assert not q.is_error, q.content
    rows = q.structured_content["rows"]
    assert sorted(r["amount"] for r in rows) == [7, 10]
    assert not d.is_error
    cols = [c["name"] for c in d.structured_content["columns"]]
    assert cols == ["region", "amount", "day"]
    assert "north" in res.contents[0].text


def test_other_users_cannot_read_the_dataset(
        cluster: Cluster, gw: httpx.Client, dataset_id: str) -> None:
    other = register_and_login(gw, unique_email("mcp-other"))

    async def go() -> Any:
        async with mcp_client(cluster, other.access_token) as c:
            return await c.call_tool("query_dataset",
                                     {"dataset_id": dataset_id})
    res = anyio.run(go)
    assert res.is_error and "404" in res.content[0].text


def test_get_job_and_list_workflows(cluster: Cluster, gw: httpx.Client,
                                    mcp_user: User) -> None:
    r = gw.post("/automation/jobs", json={"type": "noop"},
                headers=mcp_user.auth)
    assert r.status_code == 202, r.text
    job_id = r.json()["job"]["id"]
    wait_job(gw, mcp_user, job_id)

    async def go() -> tuple[Any, Any, Any]:
        async with mcp_client(cluster, mcp_user.access_token) as c:
            return (await c.call_tool("get_job", {"job_id": job_id}),
                    await c.call_tool("list_workflows", {}),
                    await c.call_tool("get_job", {"job_id": 999999999}))
    job, wfs, missing = anyio.run(go)
    assert not job.is_error, job.content
    assert job.structured_content["job"]["state"] == "succeeded"
    assert not wfs.is_error, wfs.content
    assert "workflows" in wfs.structured_content
    assert missing.is_error and "404" in missing.content[0].text
