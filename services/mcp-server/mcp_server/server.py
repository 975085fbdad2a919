"""The MCP server: tools, resources and a prompt over the platform's API.

Every tool calls the platform through the gateway as the requesting user
(see platform.py). A failed platform call raises ToolError, which the SDK
turns into a `CallToolResult` with `isError: true` and the message as
text, so the model can read what went wrong and try something else.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from pydantic import BaseModel, ConfigDict, Field

from .platform import Platform, PlatformError

DatasetId = Annotated[str, Field(min_length=1, max_length=64,
                                 pattern=r"^[A-Za-z0-9_-]+$",
                                 description="dataset id")]
Time = Annotated[str | None, Field(
    default=None, max_length=64,
    description="RFC 3339 time, e.g. 2025-01-02T03:04:05Z")]


class Filter(BaseModel):
    """One row filter: `column op value` (sent as filter=col:op:value)."""

    model_config = ConfigDict(extra="forbid")
    column: str = Field(min_length=1, max_length=128,
                        pattern=r"^[^:]+$")
    op: Literal["eq", "ne", "lt", "lte", "gt", "gte", "contains",
                "is_null", "not_null"] = Field(
        description="eq, ne, lt, lte, gt, gte, contains (strings, case "
        "insensitive), is_null or not_null (no value)")
    value: str | int | float | bool | None = Field(
        default=None, description="value to compare with")


def _filter_param(f: Filter) -> str:
    if f.value is None:
        v = ""
    elif isinstance(f.value, bool):
        v = "true" if f.value else "false"
    else:
        v = str(f.value)
    return f"{f.column}:{f.op}:{v}"


def build(platform: Platform, sample_rows: int = 10) -> MCPServer:
    """The MCPServer with every tool, resource and prompt registered."""
    mcp: MCPServer = MCPServer(
        "basalt",
        version="1.0.0",
        instructions=(
            "Tools over the basalt platform, run as the calling user: "
            "datasets (imported CSV/JSON files), analytics events, "
            "workflows and jobs."),
        warn_on_duplicate_tools=True,
    )

    async def call(ctx: Context, method: str, path: str,
                   params: dict[str, Any] | None = None,
                   body: Any = None) -> dict[str, Any]:
        try:
            return await platform.request(method, path, ctx.headers,
                                          params=params, json_body=body)
        except PlatformError as e:
            raise ToolError(str(e)) from None

    @mcp.tool(description="List the datasets the user can read "
              "(imported CSV, JSON or NDJSON files).")
    async def list_datasets(
        ctx: Context,
        limit: Annotated[int, Field(ge=1, le=100)] = 50,
        cursor: Annotated[str | None, Field(max_length=256)] = None,
    ) -> dict[str, Any]:
        return await call(ctx, "GET", "/automation/datasets",
                          {"limit": limit, "cursor": cursor})

    @mcp.tool(description="A dataset's schema (columns, inferred types) "
              "and per-column statistics.")
    async def describe_dataset(ctx: Context,
                               dataset_id: DatasetId) -> dict[str, Any]:
        return await call(ctx, "GET", f"/automation/datasets/{dataset_id}")

    @mcp.tool(description="Rows of a dataset, optionally filtered "
              "(all filters must match). Use next_cursor to page.")
    async def query_dataset(
        ctx: Context,
        dataset_id: DatasetId,
        filters: Annotated[list[Filter], Field(max_length=8)] = [],  # noqa: B006
        limit: Annotated[int, Field(ge=1, le=1000)] = 50,
        cursor: Annotated[str | None, Field(max_length=256)] = None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "cursor": cursor}
        if filters:
            params["filter"] = [_filter_param(f) for f in filters]
        return await call(ctx, "GET",
                          f"/automation/datasets/{dataset_id}/rows", params)

    @mcp.tool(description="Counts of one analytics event over time, in "
              "buckets of a minute, an hour or a day.")
    async def analytics_summary(
        ctx: Context,
        event: Annotated[str, Field(min_length=1, max_length=200)],
        from_time: Time = None,
        to_time: Time = None,
        interval: Literal["minute", "hour", "day"] = "hour",
    ) -> dict[str, Any]:
        return await call(ctx, "GET", "/analytics/summary",
                          {"event": event, "from": from_time, "to": to_time,
                           "interval": interval})

    @mcp.tool(description="The most frequent analytics events in a time "
              "range.")
    async def top_events(
        ctx: Context,
        from_time: Time = None,
        to_time: Time = None,
        limit: Annotated[int, Field(ge=1, le=100)] = 10,
    ) -> dict[str, Any]:
        return await call(ctx, "GET", "/analytics/top",
                          {"from": from_time, "to": to_time,
                           "limit": limit})

    @mcp.tool(description="List the user's workflows (cron schedules with "
              "steps).")
    async def list_workflows(
        ctx: Context,
        limit: Annotated[int, Field(ge=1, le=100)] = 50,
        cursor: Annotated[str | None, Field(max_length=256)] = None,
    ) -> dict[str, Any]:
        return await call(ctx, "GET", "/automation/workflows",
                          {"limit": limit, "cursor": cursor})

    @mcp.tool(description="Run a workflow now; answers with the new run "
              "(its jobs can be followed with get_job).")
    async def run_workflow(
        ctx: Context,
        workflow_id: Annotated[str, Field(min_length=1, max_length=64,
                                          pattern=r"^[A-Za-z0-9_-]+$")],
    ) -> dict[str, Any]:
        return await call(ctx, "POST",
                          f"/automation/workflows/{workflow_id}/run",
                          body={})

    @mcp.tool(description="A background job: state, attempts, progress, "
              "result and last error.")
    async def get_job(
        ctx: Context,
        job_id: Annotated[int, Field(ge=1)],
    ) -> dict[str, Any]:
        return await call(ctx, "GET", f"/automation/jobs/{job_id}")

    async def read_dataset(ctx: Context, dataset_id: str) -> str:
        try:
            meta = await platform.request(
                "GET", f"/automation/datasets/{dataset_id}", ctx.headers)
            rows = await platform.request(
                "GET", f"/automation/datasets/{dataset_id}/rows",
                ctx.headers, params={"limit": sample_rows})
        except PlatformError as e:
            raise ResourceError(str(e)) from None
        return json.dumps({"dataset": meta.get("dataset", meta),
                           "sample": rows.get("rows", rows)}, default=str)

    @mcp.resource("basalt://datasets/{dataset_id}",
                  name="dataset",
                  description="A dataset's schema and statistics plus a "
                  "sample of its first rows, as JSON.",
                  mime_type="application/json")
    async def dataset_resource(dataset_id: str, ctx: Context) -> str:
        if not dataset_id.replace("-", "").replace("_", "").isalnum():
            raise ResourceError("bad dataset id")
        return await read_dataset(ctx, dataset_id)

    @mcp.prompt(name="analyse_dataset", title="Analyse a dataset",
                description="Ask the model to analyse one dataset with the "
                "platform's tools.")
    def analyse_dataset(dataset_id: str, question: str = "") -> str:
        ask = question.strip() or ("What stands out in this data? Give "
                                   "the key figures and any anomalies.")
        return (
            f"Analyse the basalt dataset {dataset_id}. First call "
            f"describe_dataset with dataset_id={dataset_id!r} to learn its "
            "columns, types and statistics; then use query_dataset (with "
            "filters where useful) to look at the rows you need. Base every "
            f"number you give on tool results.\n\nQuestion: {ask}")

    return mcp
