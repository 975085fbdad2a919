"""The LLM orchestrator through the gateway (/llm, prefix stripped),
against a fake OpenAI-compatible provider running in this process, with
tool calls through the real MCP server and platform APIs."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import REPO, Cluster, User, register_and_login, unique_email

sys.path.insert(0, str(REPO / "services" / "llm-orchestrator" / "tests"))
from fake_openai import FakeOpenAI, args_word


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    f = FakeOpenAI().start()
    yield f
    f.stop()


def restart_llm(cluster: Cluster, env_lines: list[str]) -> None:
    env_file = cluster.run_dir / "env" / "llm-orchestrator.env"
    env_file.parent.mkdir(exist_ok=True)
    if env_lines:
        env_file.write_text("\n".join(env_lines) + "\n")
    elif env_file.exists():
        env_file.unlink()
    r = cluster.dev_cluster("stop-service", "llm-orchestrator")
    assert r.returncode == 0, r.stdout + r.stderr
    r = cluster.dev_cluster("start-service", "llm-orchestrator")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture(scope="module")
def llm(cluster: Cluster, fake: FakeOpenAI) -> Iterator[None]:
    """The cluster's orchestrator, configured with the fake provider."""
    providers = {"providers": [{"name": "fake", "type": "openai",
                                "base_url": fake.url, "api_key": "sk-e2e",
                                "models": ["echo"]}],
                 "aliases": {"smart": ["fake/echo"]}}
    restart_llm(cluster, [f"LLM_PROVIDERS={json.dumps(providers)}",
                          "LLM_KEEPALIVE_S=1"])
    yield
    restart_llm(cluster, [])


@pytest.fixture(scope="module")
def llm_user(gw: httpx.Client) -> User:
    return register_and_login(gw, unique_email("llm"))


def chat(gw: httpx.Client, user: User, model: str, **kw: Any
         ) -> httpx.Response:
    return gw.post("/llm/v1/chat/completions", headers=user.auth,
                   timeout=60, json={"model": model, "messages": [
                       {"role": "user", "content": "hi"}], **kw})


def test_models_through_gateway(gw: httpx.Client, llm: None,
                                llm_user: User) -> None:
    r = gw.get("/llm/v1/models", headers=llm_user.auth)
    assert r.status_code == 200, r.text
    ids = {m["id"] for m in r.json()["data"]}
    assert {"smart", "fake/echo"} <= ids
    assert gw.get("/llm/v1/models").status_code == 401


def test_completion_through_gateway(gw: httpx.Client, llm: None,
                                    llm_user: User, fake: FakeOpenAI
                                    ) -> None:
    r = chat(gw, llm_user, "smart")
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "hello from fake"
    assert fake.requests[-1]["headers"]["Authorization"] == "Bearer sk-e2e"


def test_tool_call_through_mcp(gw: httpx.Client, llm: None, llm_user: User,
                               fake: FakeOpenAI) -> None:
    """The fake model calls a platform tool; the orchestrator runs it via
    the MCP server as the user and the model answers with its result."""
    from test_mcp_gateway import import_csv, wait_job

    dataset_id = import_csv(gw, llm_user)
    if dataset_id is not None:
        name, args = "query_dataset", {
            "dataset_id": dataset_id,
            "filters": [{"column": "region", "op": "eq", "value": "south"}]}
    else:  # files/datasets API missing: a job instead
        r = gw.post("/automation/jobs", json={"type": "noop"},
                    headers=llm_user.auth)
        job_id = r.json()["job"]["id"]
        wait_job(gw, llm_user, job_id)
        name, args = "get_job", {"job_id": job_id}
    tag = uuid.uuid4().hex[:8]
    r = chat(gw, llm_user, f"fake/tool={name}+{args_word(args)}+{tag}",
             tools="platform")
    assert r.status_code == 200, r.text
    text = r.json()["choices"][0]["message"]["content"]
    assert text.startswith("tool said: "), text
    result = json.loads(text[len("tool said: "):])
    if name == "query_dataset":
        assert [row["amount"] for row in result["rows"]] == [25]
    else:
        assert result["job"]["state"] == "succeeded"
    first = next(q for q in fake.requests if tag in q["body"]["model"])
    assert name in {t["function"]["name"] for t in first["body"]["tools"]}


def test_first_token_streams_before_the_model_finishes(
        cluster: Cluster, llm: None, llm_user: User, fake: FakeOpenAI
        ) -> None:
    """The fake model sends its first word, then pauses 3 s before the
    rest: the first token must reach the client (through the gateway and
    the orchestrator) while the model is still generating."""
    tag = uuid.uuid4().hex[:8]
    model = f"fake/words=4+slow=3+{tag}"
    first_at: float | None = None
    finished_when_first: bool | None = None
    lines: list[str] = []
    with httpx.stream("POST", cluster.gateway_url + "/llm/v1/chat/"
                      "completions", headers=llm_user.auth, timeout=60,
                      json={"model": model, "stream": True, "messages": [
                          {"role": "user", "content": "x"}]}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line:
                lines.append(line)
            if first_at is None and '"w0"' in line:
                first_at = time.monotonic()
                finished_when_first = fake_finished(fake, tag)
    assert first_at is not None, lines
    assert finished_when_first is False, (
        "the first token arrived only after the model finished: the "
        "gateway or the orchestrator buffered the stream")
    assert lines[-1] == "data: [DONE]"


def fake_finished(fake: FakeOpenAI, tag: str) -> bool:
    """True once the fake wrote the whole stream for the model `tag`."""
    return any(tag in m for m in fake.finished)


def test_analytics_event_for_completion(gw: httpx.Client, llm: None
                                        ) -> None:
    llm_user = register_and_login(gw, unique_email("llm-events"))
    assert chat(gw, llm_user, "smart").status_code == 200
    end = time.monotonic() + 20
    while True:
        r = gw.get("/analytics/events", params={"event": "llm_completion"},
                   headers=llm_user.auth)
        assert r.status_code == 200, r.text
        events = r.json().get("events", [])
        if events or time.monotonic() > end:
            break
        time.sleep(0.2)
    assert len(events) == 1, events
    assert events[0]["distinct_id"] == llm_user.id
    props = events[0]["properties"]
    assert props["provider"] == "fake" and props["model"] == "echo"
    assert props["requested_model"] == "smart"
    assert props["prompt_tokens"] == 7 and props["latency_ms"] > 0

