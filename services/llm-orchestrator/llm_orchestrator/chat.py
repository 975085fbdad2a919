"""One chat completion: plain or with the platform's tools, streamed or not.

Streaming output is Server-Sent Events in OpenAI's format: `data: <chunk>`
per upstream chunk (the upstream's own bytes when it speaks OpenAI's
format), `: keep-alive` comments while nothing arrived for
LLM_KEEPALIVE_S, `data: [DONE]` at the end. A failure after the stream
started ends it with `data: {"error": {...}}` and no [DONE].
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio

from .providers import RAW_KEY, UpstreamError
from .router import Router, Target, _aclose
from .tools import PlatformTools

log = logging.getLogger("llm.chat")

DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"


@dataclass
class Outcome:
    """What a completion cost and how it went (for budgets, analytics)."""

    target: Target | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_steps: int = 0
    tool_calls: int = 0
    status: str = "ok"
    ttft_s: float | None = None
    usage_reported: bool = False

    def add_usage(self, usage: dict[str, Any] | None) -> None:
        if not usage:
            return
        self.usage_reported = True
        self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        self.completion_tokens += int(usage.get("completion_tokens") or 0)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Step:
    """One model call of a stream, as seen while relaying it."""

    content: str = ""
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    usage: dict[str, Any] | None = None
    finish: str | None = None
    last_id: str = ""
    model: str = ""


def sse(chunk: dict[str, Any]) -> bytes:
    raw = chunk.get(RAW_KEY)
    if raw is None:
        raw = json.dumps(chunk, separators=(",", ":"))
    return b"data: " + raw.encode() + b"\n\n"


def error_event(e: Exception, rid: str) -> bytes:
    code = getattr(e, "code", "upstream_error")
    return b"data: " + json.dumps({"error": {
        "code": code, "message": str(e), "request_id": rid,
        "type": "upstream_error"}}).encode() + b"\n\n"


def _first_choice(chunk: dict[str, Any]) -> dict[str, Any] | None:
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return None


async def relay(first: dict[str, Any], rest: AsyncIterator[dict[str, Any]],
                st: Step, forward_usage: bool, intercept_tools: bool,
                out: Outcome, t0: float) -> AsyncIterator[bytes]:
    """Yields what the client gets of one upstream stream; fills `st`."""
    chunk: dict[str, Any] | None = first
    try:
        while chunk is not None:
            st.last_id = str(chunk.get("id") or st.last_id)
            st.model = str(chunk.get("model") or st.model)
            if chunk.get("usage"):
                st.usage = chunk["usage"]
            ch = _first_choice(chunk)
            send = True
            if ch is None:
                # A usage-only chunk (choices null or []).
                send = forward_usage and not intercept_tools
            else:
                delta = ch.get("delta") or {}
                if delta.get("content"):
                    st.content += delta["content"]
                    if out.ttft_s is None:
                        out.ttft_s = time.perf_counter() - t0
                if ch.get("finish_reason"):
                    st.finish = ch["finish_reason"]
                tcs = delta.get("tool_calls")
                if intercept_tools and tcs:
                    for tc in tcs:
                        i = int(tc.get("index", 0))
                        cur = st.tool_calls.setdefault(i, {
                            "id": "", "type": "function",
                            "function": {"name": "", "arguments": ""}})
                        if tc.get("id"):
                            cur["id"] = tc["id"]
                        fn = tc.get("function") or {}
                        if fn.get("name"):
                            cur["function"]["name"] += fn["name"]
                        if fn.get("arguments"):
                            cur["function"]["arguments"] += fn["arguments"]
                    send = False
                elif intercept_tools and st.tool_calls:
                    send = False
                elif intercept_tools and not delta.get("content") and \
                        not ch.get("finish_reason") and not delta.get("role"):
                    send = False
            if send:
                yield sse(chunk)
            try:
                chunk = await rest.__anext__()
            except StopAsyncIteration:
                chunk = None
    finally:
        await _aclose(rest)


async def with_keepalive(src: AsyncIterator[bytes],
                         every_s: float) -> AsyncIterator[bytes]:
    """`src`, plus a comment line whenever it was silent for every_s."""
    it = src.__aiter__()
    nxt: asyncio.Task[bytes] | None = None
    try:
        while True:
            if nxt is None:
                nxt = asyncio.ensure_future(it.__anext__())
            done, _ = await asyncio.wait({nxt}, timeout=every_s)
            if not done:
                yield KEEPALIVE
                continue
            try:
                data = nxt.result()
            except StopAsyncIteration:
                return
            finally:
                nxt = None
            yield data
    finally:
        # Runs when the client went away too: the server's cancel scope
        # would cancel every await here again, so the clean-up is shielded
        # (it must finish to close the upstream connection).
        with anyio.CancelScope(shield=True):
            if nxt is not None:
                nxt.cancel()
                await asyncio.wait({nxt}, timeout=10)
            await _aclose(it)


class Chat:
    """Runs one request; `router`, `tools` are per-service / per-request."""

    def __init__(self, router: Router, targets: list[Target],
                 body: dict[str, Any], tools: PlatformTools | None,
                 max_steps: int, request_id: str) -> None:
        self.router = router
        self.targets = targets
        self.body = body
        self.tools = tools
        self.max_steps = max_steps
        self.rid = request_id
        self.out = Outcome()
        self.t0 = time.perf_counter()
        self.messages: list[dict[str, Any]] = list(body["messages"])

    def _step_body(self, step: int, offered: list[dict[str, Any]] | None
                   ) -> dict[str, Any]:
        b = {**self.body, "messages": self.messages}
        if offered is not None:
            b["tools"] = offered
            if step >= self.max_steps:
                # Out of tool steps: the model must answer now.
                b["tool_choice"] = "none"
        return b

    async def _run_tools(self, calls: list[dict[str, Any]],
                         content: str | None) -> None:
        assert self.tools is not None
        self.messages.append({"role": "assistant", "content": content or None,
                              "tool_calls": calls})
        self.out.tool_steps += 1
        for c in calls:
            self.out.tool_calls += 1
            text, ok = await self.tools.call(c["function"]["name"],
                                             c["function"]["arguments"])
            log.info("tool call", extra={"tool": c["function"]["name"],
                                         "ok": ok})
            self.messages.append({"role": "tool", "tool_call_id": c["id"],
                                  "content": text})

    # ------------------------------------------------------------ non-stream

    async def complete(self, offered: list[dict[str, Any]] | None
                       ) -> dict[str, Any]:
        step = 0
        while True:
            target, resp = await self.router.complete(
                self.targets, self._step_body(step, offered))
            self.out.target = target
            self.out.add_usage(resp.get("usage"))
            ch = _first_choice(resp)
            msg = (ch or {}).get("message") or {}
            calls = msg.get("tool_calls")
            if offered is None or not calls or step >= self.max_steps:
                if self.out.ttft_s is None:
                    self.out.ttft_s = time.perf_counter() - self.t0
                if offered is not None and self.out.usage_reported:
                    resp["usage"] = {
                        "prompt_tokens": self.out.prompt_tokens,
                        "completion_tokens": self.out.completion_tokens,
                        "total_tokens": self.out.total_tokens}
                return resp
            await self._run_tools(calls, msg.get("content"))
            step += 1

    # ---------------------------------------------------------------- stream

    async def open(self, offered: list[dict[str, Any]] | None) -> tuple[
            dict[str, Any], AsyncIterator[dict[str, Any]]]:
        """Opens the first model call (errors here become HTTP errors)."""
        target, (first, rest) = await self.router.open_stream(
            self.targets, self._step_body(0, offered))
        self.out.target = target
        return first, rest

    async def stream(self, first: dict[str, Any],
                     rest: AsyncIterator[dict[str, Any]],
                     offered: list[dict[str, Any]] | None,
                     want_usage: bool) -> AsyncIterator[bytes]:
        step = 0
        last = Step()
        try:
            while True:
                st = Step()
                async for data in relay(first, rest, st, want_usage,
                                        offered is not None, self.out,
                                        self.t0):
                    yield data
                self.out.add_usage(st.usage)
                last = st
                if offered is None or not st.tool_calls:
                    break
                calls = [st.tool_calls[i] for i in sorted(st.tool_calls)]
                await self._run_tools(calls, st.content)
                step += 1
                target, (first, rest) = await self.router.open_stream(
                    self.targets, self._step_body(step, offered))
                self.out.target = target
            if offered is not None and want_usage and self.out.usage_reported:
                yield sse({"id": last.last_id, "object":
                           "chat.completion.chunk", "created":
                           int(time.time()), "model": last.model,
                           "choices": [], "usage": {
                               "prompt_tokens": self.out.prompt_tokens,
                               "completion_tokens":
                                   self.out.completion_tokens,
                               "total_tokens": self.out.total_tokens}})
            yield DONE
        except UpstreamError as e:
            self.out.status = "upstream_error"
            log.warning("stream failed after it started",
                        extra={"error": str(e)})
            yield error_event(e, self.rid)
        except asyncio.CancelledError:
            self.out.status = "client_closed"
            raise
        except GeneratorExit:
            self.out.status = "client_closed"
            raise
