"""The orchestrator against a real fake OpenAI server (fake_openai.py),
a real MCP server over a fake platform, and a real Redis."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fake_openai import FakeOpenAI, args_word
from fake_platform import FakePlatform
from llm_support import INTERNAL, Keys, Proc, base_env, providers_json
from prometheus_client.parser import text_string_to_metric_families


def internal(user: str | None = None) -> dict[str, str]:
    return {"X-Internal-Token": INTERNAL,
            "X-User-Id": user or str(uuid.uuid4()),
            "Authorization": "Bearer user-token-for-mcp"}


def chat(orch: Proc, model: str, headers: dict[str, str] | None = None,
         **kw: Any) -> httpx.Response:
    body = {"model": model,
            "messages": [{"role": "user", "content": "hi"}], **kw}
    return httpx.post(orch.url + "/v1/chat/completions", json=body,
                      headers=headers if headers is not None
                      else internal(), timeout=60)


def sse_lines(orch: Proc, model: str, headers: dict[str, str] | None = None,
              **kw: Any) -> list[str]:
    """Every non-empty line of a streamed answer, as received."""
    body = {"model": model, "stream": True,
            "messages": [{"role": "user", "content": "hi"}], **kw}
    out = []
    with httpx.stream("POST", orch.url + "/v1/chat/completions", json=body,
                      headers=headers or internal(), timeout=60) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line:
                out.append(line)
    return out


def data_objs(lines: list[str]) -> list[Any]:
    return [json.loads(x[6:]) for x in lines
            if x.startswith("data: ") and x != "data: [DONE]"]


def content_of(lines: list[str]) -> str:
    text = ""
    for o in data_objs(lines):
        for ch in o.get("choices") or []:
            text += (ch.get("delta") or {}).get("content") or ""
    return text


def reqs_for(fake: FakeOpenAI, tag: str) -> list[dict[str, Any]]:
    return [r for r in fake.requests if tag in r["body"].get("model", "")]


# ------------------------------------------------------------------ basics

def test_no_provider_starts_and_says_which_setting(
        service_factory: Callable[[str, dict[str, str]], Proc], keys: Keys,
        redis_url: str) -> None:
    p = service_factory("llm-orchestrator", base_env(keys, redis_url))
    assert httpx.get(p.url + "/healthz").status_code == 200
    r = httpx.get(p.url + "/v1/models", headers=internal())
    assert r.status_code == 200 and r.json() == {"object": "list",
                                                 "data": []}
    r = chat(p, "anything")
    assert r.status_code == 503
    err = r.json()["error"]
    assert err["code"] == "no_provider"
    assert "LLM_PROVIDERS" in err["message"] and err["request_id"]


def test_models_lists_aliases_and_provider_models(orch: Proc) -> None:
    r = httpx.get(orch.url + "/v1/models", headers=internal())
    ids = [m["id"] for m in r.json()["data"]]
    assert "chain" in ids and "fake/echo" in ids


def test_identity(orch: Proc, keys: Keys) -> None:
    r = chat(orch, "fake/echo", headers={})
    assert r.status_code == 401 and r.json()["error"]["code"] == \
        "missing_token"
    # X-User-* without the internal token are not trusted.
    r = chat(orch, "fake/echo", headers={"X-User-Id": "u1"})
    assert r.status_code == 401
    r = chat(orch, "fake/echo", headers={"X-User-Id": "u1",
                                         "X-Internal-Token": "wrong"})
    assert r.status_code == 401
    r = chat(orch, "fake/echo",
             headers={"Authorization": "Bearer " + keys.token()})
    assert r.status_code == 200, r.text
    bad = keys.token(aud="someone-else")
    r = chat(orch, "fake/echo", headers={"Authorization": "Bearer " + bad})
    assert r.status_code == 401 and r.json()["error"]["code"] == \
        "invalid_token"
    old = keys.token(exp=int(time.time()) - 3600)
    r = chat(orch, "fake/echo", headers={"Authorization": "Bearer " + old})
    assert r.status_code == 401
    hs = "Bearer " + __import__("jwt").encode(
        {"sub": "x", "iss": "basalt", "aud": "basalt",
         "exp": int(time.time()) + 60}, "k" * 40, algorithm="HS256")
    r = chat(orch, "fake/echo", headers={"Authorization": hs})
    assert r.status_code == 401


def test_validation_and_unknown_model(orch: Proc) -> None:
    r = httpx.post(orch.url + "/v1/chat/completions", json={"model": "x"},
                   headers=internal())
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_failed"
    r = chat(orch, "no-such-model")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_not_found"


def test_non_stream_pass_through(orch: Proc, fake: FakeOpenAI) -> None:
    r = chat(orch, "fake/echo", temperature=0.5, user="abc")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "hello from fake"
    assert body["usage"]["total_tokens"] > 0
    sent = fake.requests[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["Authorization"] == "Bearer sk-fake"
    # Unknown fields reach the provider untouched.
    assert sent["body"]["user"] == "abc"
    assert sent["body"]["temperature"] == 0.5


# ---------------------------------------------------- retries and fallback

def test_retries_then_succeeds(orch: Proc, fake: FakeOpenAI) -> None:
    tag = uuid.uuid4().hex[:8]
    r = chat(orch, f"fake/echo+fail429=2+{tag}")
    assert r.status_code == 200, r.text
    assert len(reqs_for(fake, tag)) == 3


def test_fallback_order(orch: Proc, fake: FakeOpenAI) -> None:
    before = len(fake.requests)
    r = chat(orch, "chain")
    assert r.status_code == 200, r.text
    models = [q["body"]["model"] for q in fake.requests[before:]]
    # 1 + LLM_RETRIES attempts on the first target, then the second.
    assert models == ["always500+chain"] * 3 + ["echo+chain"]


def test_bad_request_is_not_retried_or_failed_over(
        orch: Proc, fake: FakeOpenAI) -> None:
    before = len(fake.requests)
    r = chat(orch, "bad-first")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "upstream_rejected"
    assert [q["body"]["model"] for q in fake.requests[before:]] == [
        "always400"]


def test_credentials_refused_fails_over_at_once(
        orch: Proc, fake: FakeOpenAI) -> None:
    before = len(fake.requests)
    r = chat(orch, "unauth-first")
    assert r.status_code == 200
    assert [q["body"]["model"] for q in fake.requests[before:]] == [
        "always401", "echo+u"]


def test_all_targets_rate_limited(orch: Proc) -> None:
    r = chat(orch, "all-429")
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "upstream_rate_limited"
    assert "retry-after" in r.headers


# --------------------------------------------------------------- streaming

def test_stream_pass_through_with_usage(orch: Proc, fake: FakeOpenAI
                                        ) -> None:
    tag = uuid.uuid4().hex[:8]
    lines = sse_lines(orch, f"fake/words=5+{tag}",
                      stream_options={"include_usage": True})
    assert lines[-1] == "data: [DONE]"
    assert content_of(lines) == "w0 w1 w2 w3 w4"
    objs = data_objs(lines)
    usage = [o for o in objs if o.get("usage")]
    assert len(usage) == 1 and usage[0]["usage"]["completion_tokens"] == 5
    # One chunk out per chunk in: role + 5 words + finish + usage.
    assert len(objs) == 8
    sent = reqs_for(fake, tag)[0]["body"]
    assert sent["stream"] is True
    assert sent["stream_options"]["include_usage"] is True


def test_stream_usage_not_forwarded_unless_asked(
        orch: Proc, fake: FakeOpenAI) -> None:
    tag = uuid.uuid4().hex[:8]
    lines = sse_lines(orch, f"fake/echo+nullusage+comments+{tag}")
    assert content_of(lines) == "hello from fake"
    assert not [o for o in data_objs(lines) if o.get("usage")]
    # The upstream was still asked for usage (accounting needs it).
    assert reqs_for(fake, tag)[0]["body"]["stream_options"] == {
        "include_usage": True}
    # The null-choices usage chunk is forwarded when asked for.
    lines = sse_lines(orch, f"fake/echo+nullusage+{tag}",
                      stream_options={"include_usage": True})
    u = [o for o in data_objs(lines) if o.get("usage")]
    assert u and u[0]["choices"] is None


def test_stream_retry_before_first_chunk(orch: Proc, fake: FakeOpenAI
                                         ) -> None:
    tag = uuid.uuid4().hex[:8]
    lines = sse_lines(orch, f"fake/echo+fail500=1+{tag}")
    assert content_of(lines) == "hello from fake"
    assert len(reqs_for(fake, tag)) == 2


def test_stream_failure_before_first_chunk_is_http_error(orch: Proc
                                                         ) -> None:
    body = {"model": "chain-missing", "stream": True,
            "messages": [{"role": "user", "content": "x"}]}
    r = httpx.post(orch.url + "/v1/chat/completions", json=body,
                   headers=internal())
    assert r.status_code == 404
    body["model"] = "all-429"
    r = httpx.post(orch.url + "/v1/chat/completions", json=body,
                   headers=internal(), timeout=60)
    assert r.status_code == 429


def test_error_inside_200_stream(orch: Proc) -> None:
    lines = sse_lines(orch, f"fake/words=6+midstream+{uuid.uuid4().hex}")
    assert "data: [DONE]" not in lines
    last = json.loads(lines[-1][6:])
    assert "fake failure mid-stream" in last["error"]["message"]
    assert last["error"]["request_id"]
    assert content_of(lines) == "w0 w1"


def test_keepalive_comments_during_silence(orch: Proc) -> None:
    # LLM_KEEPALIVE_S=0.2, the model pauses 1 s after its first word.
    lines = sse_lines(orch, f"fake/words=3+slow=1+{uuid.uuid4().hex}")
    assert ": keep-alive" in lines
    assert content_of(lines) == "w0 w1 w2"
    assert lines[-1] == "data: [DONE]"


def test_client_disconnect_cancels_upstream(orch: Proc, fake: FakeOpenAI
                                            ) -> None:
    before = fake.disconnects
    body = {"model": f"fake/words=3+hang+{uuid.uuid4().hex}", "stream": True,
            "messages": [{"role": "user", "content": "x"}]}
    with httpx.stream("POST", orch.url + "/v1/chat/completions", json=body,
                      headers=internal(), timeout=30) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and "w0" in line:
                break
    # The fake notices the orchestrator closed the upstream connection.
    end = time.monotonic() + 20
    while fake.disconnects == before and time.monotonic() < end:
        time.sleep(0.05)
    assert fake.disconnects > before


# --------------------------------------------------------------- tool loop

def tool_model(name: str, args: dict[str, Any]) -> str:
    return f"fake/tool={name}+{args_word(args)}+{uuid.uuid4().hex[:8]}"


def test_tool_loop_non_stream(orch: Proc, fake: FakeOpenAI,
                              platform: FakePlatform) -> None:
    model = tool_model("query_dataset", {
        "dataset_id": "7",
        "filters": [{"column": "region", "op": "eq", "value": "south"}]})
    r = chat(orch, model, tools="platform")
    assert r.status_code == 200, r.text
    text = r.json()["choices"][0]["message"]["content"]
    assert text.startswith("tool said: ")
    assert json.loads(text[len("tool said: "):])["rows"] == [
        {"region": "south", "amount": 25}]
    tag = model.rsplit("+", 1)[1]
    calls = reqs_for(fake, tag)
    assert len(calls) == 2
    offered = {t["function"]["name"] for t in calls[0]["body"]["tools"]}
    assert {"query_dataset", "get_job", "list_datasets"} <= offered
    # The platform was called as the user (their bearer token).
    q = [x for x in platform.requests
         if x["path"] == "/automation/datasets/7/rows"][-1]
    assert q["headers"]["Authorization"] == "Bearer user-token-for-mcp"
    assert q["query"]["filter"] == ["region:eq:south"]
    usage = r.json()["usage"]
    assert usage["prompt_tokens"] == 14  # two model calls, 7 each


def test_tool_loop_stream_via_header(orch: Proc, fake: FakeOpenAI) -> None:
    model = tool_model("get_job", {"job_id": 42})
    lines = sse_lines(orch, model, headers={**internal(),
                                            "X-Basalt-Tools": "platform"},
                      stream_options={"include_usage": True})
    text = content_of(lines)
    assert text.startswith("tool said: ") and '"succeeded"' in text
    # No tool-call deltas reach the client; one aggregated usage chunk.
    objs = data_objs(lines)
    assert not any((c.get("delta") or {}).get("tool_calls")
                   for o in objs for c in o.get("choices") or [])
    usage = [o["usage"] for o in objs if o.get("usage")]
    assert len(usage) == 1 and usage[0]["prompt_tokens"] == 14
    assert lines[-1] == "data: [DONE]"


def test_tool_error_reaches_the_model(orch: Proc) -> None:
    r = chat(orch, tool_model("get_job", {"job_id": 999}), tools="platform")
    text = r.json()["choices"][0]["message"]["content"]
    assert "error:" in text and "404" in text


def test_tool_steps_are_bounded(
        service_factory: Callable[[str, dict[str, str]], Proc],
        fake: FakeOpenAI, keys: Keys, redis_url: str, mcp: Proc) -> None:
    env = base_env(keys, redis_url)
    env.update(LLM_PROVIDERS=providers_json(fake), MCP_URL=mcp.url + "/mcp",
               LLM_MAX_TOOL_STEPS="2")
    p = service_factory("llm-orchestrator", env)
    # tool_choice=required makes the fake call the tool forever.
    model = tool_model("get_job", {"job_id": 42})
    r = chat(p, model, tools="platform", tool_choice="required")
    assert r.status_code == 200, r.text
    tag = model.rsplit("+", 1)[1]
    calls = reqs_for(fake, tag)
    assert len(calls) == 3
    assert calls[-1]["body"]["tool_choice"] == "none"


# ----------------------------------------------------- budgets, analytics

@pytest.fixture(scope="module")
def tight(service_factory: Callable[[str, dict[str, str]], Proc],
          fake: FakeOpenAI, keys: Keys, redis_url: str) -> Iterator[Proc]:
    env = base_env(keys, redis_url)
    env.update(LLM_PROVIDERS=providers_json(fake), LLM_USER_RPM="2",
               LLM_USER_TPM="30")
    yield service_factory("llm-orchestrator", env)


def same_minute(fn: Callable[[], bool]) -> None:
    """Runs `fn` (a check within one fixed budget window) until a run
    starts and ends in the same UTC minute, at most three times."""
    for _ in range(3):
        start = int(time.time() // 60)
        ok = fn()
        if int(time.time() // 60) == start:
            assert ok
            return
    raise AssertionError("every run crossed a minute boundary")


def test_request_budget(tight: Proc) -> None:
    def run() -> bool:
        user = str(uuid.uuid4())
        assert chat(tight, "fake/echo", internal(user)).status_code == 200
        assert chat(tight, "fake/echo", internal(user)).status_code == 200
        r = chat(tight, "fake/echo", internal(user))
        if r.status_code != 429:
            return False
        assert r.json()["error"]["code"] == "budget_exceeded"
        assert 1 <= int(r.headers["retry-after"]) <= 61
        # Another user has their own budget.
        return chat(tight, "fake/echo", internal()).status_code == 200
    same_minute(run)


def test_token_budget(tight: Proc) -> None:
    def run() -> bool:
        user = str(uuid.uuid4())
        # 7 prompt + 25 completion tokens: over the 30 tokens/minute.
        assert chat(tight, "fake/words=25", internal(user)).status_code \
            == 200
        end = time.monotonic() + 10
        while True:
            r = chat(tight, "fake/echo", internal(user))
            if r.status_code == 429 or time.monotonic() > end:
                break
            time.sleep(0.2)
        return r.status_code == 429 and "tokens_per_minute" in r.json()[
            "error"]["message"]
    same_minute(run)


def test_analytics_event_recorded(orch: Proc, platform: FakePlatform
                                  ) -> None:
    user = str(uuid.uuid4())
    assert chat(orch, "fake/echo", internal(user)).status_code == 200
    end = time.monotonic() + 10
    mine: list[dict[str, Any]] = []
    while not mine and time.monotonic() < end:
        mine = [e for e in platform.events
                if e["headers"].get("X-User-Id") == user]
        time.sleep(0.05)
    assert mine, platform.events
    ev = mine[0]
    assert ev["headers"]["X-Internal-Token"] == INTERNAL
    assert ev["body"]["event"] == "llm_completion"
    props = ev["body"]["properties"]
    assert props["provider"] == "fake" and props["model"] == "echo"
    assert props["prompt_tokens"] == 7 and props["latency_ms"] > 0


def metric_sum(orch: Proc, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    text = httpx.get(orch.url + "/metrics").text
    return sum(s.value for fam in text_string_to_metric_families(text)
               for s in fam.samples
               if s.name == name and
               all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics(orch: Proc) -> None:
    ok = dict(provider="fake", status="ok", stream="false")
    before = (metric_sum(orch, "llm_completions_total", **ok),
              metric_sum(orch, "llm_upstream_attempts_total",
                         provider="fake", outcome="retryable"),
              metric_sum(orch, "llm_upstream_attempts_total",
                         provider="fake", outcome="ok"),
              metric_sum(orch, "http_request_duration_seconds_count"))
    tag = uuid.uuid4().hex[:8]
    r = chat(orch, f"fake/echo+fail429=1+{tag}")
    assert r.status_code == 200, r.text
    after = (metric_sum(orch, "llm_completions_total", **ok),
             metric_sum(orch, "llm_upstream_attempts_total",
                        provider="fake", outcome="retryable"),
             metric_sum(orch, "llm_upstream_attempts_total",
                        provider="fake", outcome="ok"),
             metric_sum(orch, "http_request_duration_seconds_count"))
    # One completion, after one retryable failure and one good attempt;
    # the chat and the first /metrics read are timed requests.
    assert after[0] - before[0] == 1
    assert after[1] - before[1] == 1
    assert after[2] - before[2] == 1
    assert after[3] - before[3] >= 2
