"""Pure parts: Gemini translation, SSE parsing, settings validation."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator

import anyio
import pytest
from llm_support import SERVICE

from llm_orchestrator.providers import (
    gemini_request,
    gemini_schema,
    gemini_to_openai,
    sse_events,
    stream_error,
)
from llm_orchestrator.settings import Settings


def test_gemini_request_translation() -> None:
    body = {"model": "gemini-2.0-flash", "temperature": 0.2,
            "max_tokens": 50, "stop": "END",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "rows?"},
                {"role": "assistant", "content": None, "tool_calls": [{
                    "id": "c1", "type": "function", "function": {
                        "name": "get_job", "arguments": '{"job_id": 4}'}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "{}"}],
            "tools": [{"type": "function", "function": {
                "name": "get_job", "description": "a job",
                "parameters": {"type": "object", "title": "x",
                               "properties": {"job_id": {
                                   "type": "integer", "minimum": 1}},
                               "required": ["job_id"]}}}]}
    g = gemini_request(body)
    assert g["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert [c["role"] for c in g["contents"]] == ["user", "model", "user"]
    assert g["contents"][1]["parts"][0]["functionCall"] == {
        "name": "get_job", "args": {"job_id": 4}}
    assert g["contents"][2]["parts"][0]["functionResponse"]["name"] == \
        "get_job"
    assert g["generationConfig"] == {"temperature": 0.2,
                                     "maxOutputTokens": 50,
                                     "stopSequences": ["END"]}
    decl = g["tools"][0]["functionDeclarations"][0]
    assert "title" not in decl["parameters"]


def test_gemini_schema_inlines_refs_and_nullables() -> None:
    s = {"type": "object", "$defs": {"F": {"type": "object", "properties": {
        "v": {"anyOf": [{"type": "string"}, {"type": "null"}],
              "default": None}}, "additionalProperties": False}},
        "properties": {"f": {"type": "array",
                             "items": {"$ref": "#/$defs/F"}}}}
    out = gemini_schema(s)
    assert "$defs" not in out
    item = out["properties"]["f"]["items"]
    assert item["properties"]["v"] == {"type": "string", "nullable": True}
    assert "additionalProperties" not in item


def test_gemini_response_translation() -> None:
    resp = {"candidates": [{"content": {"parts": [
        {"text": "hi"}, {"functionCall": {"name": "t", "args": {"a": 1}}}]},
        "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2,
                          "totalTokenCount": 5}}
    o = gemini_to_openai(resp, "m", "id1", chunk=False)
    msg = o["choices"][0]["message"]
    assert msg["content"] == "hi"
    assert json.loads(msg["tool_calls"][0]["function"]["arguments"]) == {
        "a": 1}
    assert o["choices"][0]["finish_reason"] == "tool_calls"
    assert o["usage"] == {"prompt_tokens": 3, "completion_tokens": 2,
                          "total_tokens": 5}
    c = gemini_to_openai(resp, "m", "id1", chunk=True)
    assert c["choices"][0]["delta"]["tool_calls"][0]["index"] == 0


def test_sse_parser() -> None:
    async def lines() -> AsyncIterator[str]:
        for x in [": comment", "event: error", "data: a", "data: b", "",
                  "data:c", "", "id: 4", "data: [DONE]"]:
            yield x

    async def go() -> list[tuple[str, str]]:
        return [e async for e in sse_events(lines())]
    assert anyio.run(go) == [("error", "a\nb"), ("message", "c"),
                             ("message", "[DONE]")]


def test_stream_error_detection() -> None:
    assert stream_error({"error": {"message": "x", "code": 503}}) is not None
    assert stream_error({"error": {"message": "x"}}).retryable is False
    assert stream_error({"choices": [], "usage": {}}) is None


@pytest.mark.parametrize("env,name", [
    ({"PORT": "0x"}, "PORT"),
    ({"LLM_PROVIDERS": "{not json"}, "LLM_PROVIDERS"),
    ({"LLM_PROVIDERS": '[{"name": "a", "type": "openai"}]'},
     "LLM_PROVIDERS"),
    ({"LLM_ALIASES": '{"x": ["nobody/m"]}'}, "LLM_ALIASES"),
    ({"MCP_URL": "ftp://x"}, "MCP_URL"),
])
def test_bad_settings_fail_fast(env: dict[str, str], name: str) -> None:
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("LLM_", "OPENAI_", "GEMINI_"))}
    full.update(env)
    p = subprocess.run([str(SERVICE / "run")], env=full,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0], lines


def test_shortcut_providers() -> None:
    s = Settings(openai_api_key="k", openai_models="a,b",
                 gemini_api_key="g")
    cfg = s.providers()
    assert [(p.name, p.type) for p in cfg.providers] == [
        ("openai", "openai"), ("gemini", "gemini")]
    assert cfg.providers[0].base_url == "https://api.openai.com/v1"
    assert cfg.providers[0].models == ["a", "b"]
