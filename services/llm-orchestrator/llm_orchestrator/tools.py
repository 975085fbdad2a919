"""The platform's tools, over MCP, on behalf of the calling user.

One MCP client session per chat request (the server is stateless, so this
is cheap): tools/list once, then tools/call for each tool call the model
makes. The session carries the user's Authorization header and the
request id, so the MCP server calls the platform as that user.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

MAX_RESULT_CHARS = 60000


class ToolsUnavailable(Exception):
    pass


class PlatformTools:
    """An MCP client session for one chat request.

    The SDK's client lives in task groups (anyio), which must be left by
    the task that entered them, while a streamed answer finishes in
    another task than the one that began the request. So the session is
    held open by a task of its own; list/call work from any task.
    """

    def __init__(self, url: str, headers: dict[str, str],
                 timeout_s: float) -> None:
        self.url = url
        self.headers = headers
        self.timeout_s = timeout_s
        self.client: Client | None = None
        self.names: set[str] = set()
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    async def _hold(self) -> None:
        try:
            async with httpx2.AsyncClient(
                    headers=self.headers,
                    timeout=httpx2.Timeout(self.timeout_s,
                                           connect=5.0)) as http:
                async with Client(
                        streamable_http_client(self.url, http_client=http,
                                               terminate_on_close=False),
                        read_timeout_seconds=self.timeout_s) as client:
                    self.client = client
                    self._ready.set()
                    await self._stop.wait()
        except BaseException as e:  # noqa: BLE001 - reported to the opener
            self._error = e
        finally:
            self.client = None
            self._ready.set()

    async def __aenter__(self) -> PlatformTools:
        self._task = asyncio.create_task(self._hold())
        await self._ready.wait()
        if self.client is None:
            e = self._error
            await self.__aexit__(None, None, None)
            raise ToolsUnavailable(f"MCP server unreachable at {self.url} "
                                   f"({type(e).__name__}: {e})")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        if self._task is not None:
            # Shielded: this also runs while the request is being
            # cancelled (client gone), and must still close the session.
            with anyio.CancelScope(shield=True):
                await asyncio.wait({self._task}, timeout=10)

    async def openai_tools(self) -> list[dict[str, Any]]:
        """tools/list as OpenAI `tools` entries."""
        if self.client is None:
            raise ToolsUnavailable("the MCP session is closed")
        try:
            res = await self.client.list_tools()
        except Exception as e:  # noqa: BLE001 - any client failure
            raise ToolsUnavailable(f"tools/list failed ({e})") from None
        out = []
        for t in res.tools:
            self.names.add(t.name)
            out.append({"type": "function", "function": {
                "name": t.name, "description": t.description or "",
                "parameters": t.input_schema}})
        return out

    async def call(self, name: str, arguments: str) -> tuple[str, bool]:
        """(text for the model, ok) of one tool call; never raises for a
        tool-level failure so the model can read the error and adapt."""
        if self.client is None:
            return "error: the MCP session is closed", False
        if name not in self.names:
            return f"error: unknown tool {name!r}", False
        try:
            args = json.loads(arguments or "{}")
            if not isinstance(args, dict):
                raise ValueError("arguments must be a JSON object")
        except ValueError as e:
            return f"error: tool arguments are not valid JSON ({e})", False
        try:
            res = await self.client.call_tool(name, args)
        except Exception as e:  # noqa: BLE001 - any client failure
            return f"error: tool call failed ({type(e).__name__}: {e})", False
        if res.structured_content is not None and not res.is_error:
            text = json.dumps(res.structured_content, default=str)
        else:
            text = "\n".join(getattr(c, "text", "") for c in res.content)
        if res.is_error:
            text = "error: " + text
        return text[:MAX_RESULT_CHARS], not res.is_error
