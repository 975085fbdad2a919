"""Upstream providers: OpenAI-compatible endpoints and Gemini's native API.

Both expose the same two calls in OpenAI's wire format: `complete(body)`
returns a chat.completion object; `stream(body)` yields chat.completion.chunk
objects as the upstream produces them (each with the raw `data:` text of an
OpenAI-compatible upstream kept in RAW_KEY so it can be passed on
byte-for-byte). Failures raise UpstreamError, marked retryable for 429,
5xx, timeouts and broken connections.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from .settings import ProviderConfig

RAW_KEY = "__raw__"


class UpstreamError(Exception):
    def __init__(self, status: int, message: str, retryable: bool,
                 retry_after: float | None = None,
                 code: str = "upstream_error") -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.code = code


def _retry_after(resp: httpx.Response) -> float | None:
    v = resp.headers.get("retry-after")
    if not v:
        return None
    try:
        return max(0.0, float(v))
    except ValueError:
        return None


def _error_message(body: bytes) -> str:
    try:
        obj = json.loads(body)
    except ValueError:
        return body[:300].decode(errors="replace")
    if isinstance(obj, list) and obj:
        obj = obj[0]
    if isinstance(obj, dict) and isinstance(obj.get("error"), dict):
        return str(obj["error"].get("message", obj["error"]))[:500]
    return str(obj)[:300]


def status_error(resp: httpx.Response, body: bytes) -> UpstreamError:
    s = resp.status_code
    retryable = s == 429 or s >= 500 or s == 408
    return UpstreamError(s, f"upstream answered {s}: {_error_message(body)}",
                         retryable, _retry_after(resp))


def transport_error(e: httpx.HTTPError) -> UpstreamError:
    if isinstance(e, httpx.TimeoutException):
        return UpstreamError(504, f"upstream timed out ({type(e).__name__})",
                             True, code="upstream_timeout")
    return UpstreamError(502, f"upstream connection failed "
                         f"({type(e).__name__})", True)


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[
        tuple[str, str]]:
    """(event, data) pairs of an SSE stream (comments and ids skipped)."""
    event, data = "", list[str]()
    async for line in lines:
        if line == "":
            if data:
                yield event or "message", "\n".join(data)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:
        yield event or "message", "\n".join(data)


def stream_error(obj: Any) -> UpstreamError | None:
    """An error object sent inside a 200 stream, if `obj` is one."""
    if isinstance(obj, dict) and "error" in obj and not obj.get("choices"):
        err = obj["error"]
        msg = err.get("message", err) if isinstance(err, dict) else err
        code = err.get("code") if isinstance(err, dict) else None
        retryable = code in (429, 500, 502, 503, 504, "rate_limit_exceeded",
                             "server_error", "overloaded")
        return UpstreamError(502, f"upstream stream error: {msg}", retryable)
    return None


class OpenAIProvider:
    """Any endpoint speaking OpenAI's /chat/completions."""

    def __init__(self, cfg: ProviderConfig, client: httpx.AsyncClient,
                 api_key: str) -> None:
        self.name = cfg.name
        self.cfg = cfg
        self.client = client
        self.url = cfg.base_url + "/chat/completions"
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"

    async def list_models(self) -> list[str]:
        return list(self.cfg.models)

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            r = await self.client.post(self.url, content=json.dumps(body),
                                       headers=self.headers)
        except httpx.HTTPError as e:
            raise transport_error(e) from None
        if r.status_code != 200:
            raise status_error(r, r.content)
        try:
            obj = r.json()
        except ValueError:
            raise UpstreamError(502, "upstream answered non-JSON",
                                True) from None
        err = stream_error(obj)
        if err is not None:
            raise err
        if not isinstance(obj, dict):
            raise UpstreamError(502, "upstream answered non-object", True)
        return obj

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[
            dict[str, Any]]:
        try:
            async with self.client.stream(
                    "POST", self.url, content=json.dumps(body),
                    headers={**self.headers,
                             "Accept": "text/event-stream"}) as r:
                if r.status_code != 200:
                    raise status_error(r, await r.aread())
                async for event, data in sse_events(r.aiter_lines()):
                    if data.strip() == "[DONE]":
                        return
                    try:
                        obj = json.loads(data)
                    except ValueError:
                        raise UpstreamError(
                            502, "upstream sent a non-JSON stream event",
                            False) from None
                    err = stream_error(obj)
                    if err is None and event == "error":
                        err = UpstreamError(502, f"upstream stream error: "
                                            f"{data[:300]}", False)
                    if err is not None:
                        raise err
                    if isinstance(obj, dict):
                        obj[RAW_KEY] = data
                        yield obj
        except httpx.HTTPError as e:
            raise transport_error(e) from None


# ---------------------------------------------------------------- Gemini

_FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter",
           "RECITATION": "content_filter"}
_DROP = {"$schema", "$defs", "title", "additionalProperties", "default",
         "examples", "$id"}


def gemini_schema(schema: Any, defs: dict[str, Any] | None = None) -> Any:
    """JSON Schema → the OpenAPI subset Gemini's functionDeclarations take:
    $refs inlined, unsupported keys dropped, anyOf-with-null → nullable."""
    if isinstance(schema, list):
        return [gemini_schema(s, defs) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if defs is None:
        defs = schema.get("$defs", {})
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return gemini_schema(defs.get(name, {}), defs)
    if "anyOf" in schema:
        alts = [a for a in schema["anyOf"]
                if not (isinstance(a, dict) and a.get("type") == "null")]
        if len(alts) == 1:
            one = gemini_schema(alts[0], defs)
            one["nullable"] = True
            if "description" in schema:
                one["description"] = schema["description"]
            return one
    out: dict[str, Any] = {}
    for k, v in schema.items():
        if k in _DROP:
            continue
        if k == "properties" and isinstance(v, dict):
            out[k] = {n: gemini_schema(s, defs) for n, s in v.items()}
        elif k in ("items", "anyOf"):
            out[k] = gemini_schema(v, defs)
        else:
            out[k] = v
    return out


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, dict))
    return str(content)


def gemini_request(body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat request as a Gemini generateContent request."""
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for m in body.get("messages", []):
        role = m.get("role")
        if role in ("system", "developer"):
            system.append(_text(m.get("content")))
        elif role == "user":
            contents.append({"role": "user",
                             "parts": [{"text": _text(m.get("content"))}]})
        elif role == "assistant":
            parts: list[dict[str, Any]] = []
            if m.get("content"):
                parts.append({"text": _text(m["content"])})
            for tc in m.get("tool_calls") or []:
                fn = tc.get("function", {})
                names[tc.get("id", "")] = fn.get("name", "")
                try:
                    args = json.loads(fn.get("arguments") or "{}")
                except ValueError:
                    args = {}
                parts.append({"functionCall": {"name": fn.get("name"),
                                               "args": args}})
            contents.append({"role": "model", "parts": parts or [
                {"text": ""}]})
        elif role == "tool":
            name = names.get(m.get("tool_call_id", ""), m.get("name", "tool"))
            contents.append({"role": "user", "parts": [{"functionResponse": {
                "name": name, "response": {"content": _text(
                    m.get("content"))}}}]})
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": [{"text": "\n".join(system)}]}
    gen: dict[str, Any] = {}
    for src, dst in (("temperature", "temperature"), ("top_p", "topP"),
                     ("max_tokens", "maxOutputTokens"),
                     ("max_completion_tokens", "maxOutputTokens"),
                     ("n", "candidateCount"), ("seed", "seed")):
        if body.get(src) is not None:
            gen[dst] = body[src]
    stop = body.get("stop")
    if stop:
        gen["stopSequences"] = [stop] if isinstance(stop, str) else stop
    if gen:
        out["generationConfig"] = gen
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        decls = [{
            "name": t["function"]["name"],
            "description": t["function"].get("description", ""),
            "parameters": gemini_schema(t["function"].get(
                "parameters", {"type": "object", "properties": {}}))}
            for t in tools if t.get("type") == "function"]
        out["tools"] = [{"functionDeclarations": decls}]
        if body.get("tool_choice") == "none":
            out["toolConfig"] = {"functionCallingConfig": {"mode": "NONE"}}
    return out


def gemini_to_openai(resp: dict[str, Any], model: str, cid: str,
                     chunk: bool) -> dict[str, Any]:
    """A Gemini response (or stream chunk) as an OpenAI object."""
    choices = []
    for i, cand in enumerate(resp.get("candidates") or []):
        text, calls = "", list[dict[str, Any]]()
        for part in (cand.get("content") or {}).get("parts") or []:
            if "text" in part and not part.get("thought"):
                text += part["text"]
            if "functionCall" in part:
                fc = part["functionCall"]
                calls.append({"id": "call_" + uuid.uuid4().hex[:24],
                              "type": "function",
                              "function": {"name": fc.get("name", ""),
                                           "arguments": json.dumps(
                                               fc.get("args") or {})}})
        finish = cand.get("finishReason")
        reason = "tool_calls" if calls else _FINISH.get(
            finish, "stop") if finish else None
        msg: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            if chunk:
                for j, call in enumerate(calls):
                    call["index"] = j
            msg["tool_calls"] = calls
        key = "delta" if chunk else "message"
        choices.append({"index": i, key: msg, "finish_reason": reason})
    out: dict[str, Any] = {
        "id": cid, "object": "chat.completion.chunk" if chunk
        else "chat.completion", "created": int(time.time()),
        "model": model, "choices": choices}
    um = resp.get("usageMetadata")
    if um:
        p = int(um.get("promptTokenCount", 0))
        c = int(um.get("candidatesTokenCount", 0)) + int(
            um.get("thoughtsTokenCount", 0))
        out["usage"] = {"prompt_tokens": p, "completion_tokens": c,
                        "total_tokens": int(um.get("totalTokenCount",
                                                   p + c))}
    return out


class GeminiProvider:
    """Gemini's native generateContent / streamGenerateContent API."""

    def __init__(self, cfg: ProviderConfig, client: httpx.AsyncClient,
                 api_key: str) -> None:
        self.name = cfg.name
        self.cfg = cfg
        self.client = client
        self.headers = {"Content-Type": "application/json",
                        "x-goog-api-key": api_key}

    async def list_models(self) -> list[str]:
        return list(self.cfg.models)

    def _url(self, model: str, method: str) -> str:
        return f"{self.cfg.base_url}/models/{model}:{method}"

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        model = body["model"]
        try:
            r = await self.client.post(
                self._url(model, "generateContent"),
                content=json.dumps(gemini_request(body)),
                headers=self.headers)
        except httpx.HTTPError as e:
            raise transport_error(e) from None
        if r.status_code != 200:
            raise status_error(r, r.content)
        return gemini_to_openai(r.json(), model,
                                "chatcmpl-" + uuid.uuid4().hex, False)

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[
            dict[str, Any]]:
        model = body["model"]
        cid = "chatcmpl-" + uuid.uuid4().hex
        first = True
        usage: dict[str, Any] | None = None
        try:
            async with self.client.stream(
                    "POST", self._url(model, "streamGenerateContent") +
                    "?alt=sse", content=json.dumps(gemini_request(body)),
                    headers=self.headers) as r:
                if r.status_code != 200:
                    raise status_error(r, await r.aread())
                async for _, data in sse_events(r.aiter_lines()):
                    try:
                        obj = json.loads(data)
                    except ValueError:
                        raise UpstreamError(502, "upstream sent a non-JSON "
                                            "stream event", False) from None
                    err = stream_error(obj)
                    if err is not None:
                        raise err
                    out = gemini_to_openai(obj, model, cid, True)
                    usage = out.pop("usage", usage)
                    if first:
                        for ch in out["choices"]:
                            ch["delta"]["role"] = "assistant"
                        first = False
                    if out["choices"]:
                        yield out
        except httpx.HTTPError as e:
            raise transport_error(e) from None
        if usage is not None:
            yield {"id": cid, "object": "chat.completion.chunk",
                   "created": int(time.time()), "model": model,
                   "choices": [], "usage": usage}


Provider = OpenAIProvider | GeminiProvider
