"""Workflows end to end: CRUD and validation, runs of http steps, the
emit_event step, and SSE events. Multi-replica behaviour is in
test_automation_workflows_replicas.py."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from automation_replicas import as_user, wait_for
from conftest import Cluster, assert_error


def automation_url(cluster: Cluster) -> str:
    return f"http://127.0.0.1:{cluster.env['BASALT_AUTOMATION_PORT']}"


@pytest.fixture()
def auto(cluster: Cluster):
    headers = as_user(cluster)
    with httpx.Client(base_url=automation_url(cluster), headers=headers,
                      timeout=30) as c:
        yield c


class Upstream:
    """A tiny local HTTP server that records what it was sent."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict, bytes]] = []
        owner = self

        class H(BaseHTTPRequestHandler):
            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                owner.requests.append((self.command, self.path,
                                       dict(self.headers), body))
                status = 500 if self.path.startswith("/fail") else 200
                data = json.dumps({"ok": status == 200}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _any

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def upstream():
    u = Upstream()
    yield u
    u.close()


def wf_body(**kw):
    body = {"name": "wf", "schedule": None,
            "steps": [{"type": "noop"}]}
    body.update(kw)
    return body


def wait_run(auto: httpx.Client, wid: int, rid: int, timeout: float = 60):
    def done():
        r = auto.get(f"/automation/workflows/{wid}/runs/{rid}")
        assert r.status_code == 200, r.text
        run = r.json()["run"]
        return run if run["state"] != "running" else None
    return wait_for(done, timeout, what=f"run {rid}")


@pytest.mark.parametrize("body,field", [
    (wf_body(name=""), "name"),
    (wf_body(schedule="61 * * * *"), "schedule"),
    (wf_body(schedule="0 0 30 2 *"), "schedule"),        # never fires
    (wf_body(schedule="* * * * *", timezone="Mars/Base"), "timezone"),
    (wf_body(missed_run="always"), "missed_run"),
    (wf_body(overlap="queue"), "overlap"),
    (wf_body(steps=[]), "steps"),
    (wf_body(steps=[{"type": "nope"}]), "steps[0].type"),
    (wf_body(steps=[{"type": "http", "args": {}}]), "steps[0].args.url"),
    (wf_body(steps=[{"type": "emit_event", "args": {}}]),
     "steps[0].args.event"),
    (wf_body(colour="red"), "colour"),
])
def test_workflow_validation(auto: httpx.Client, body, field) -> None:
    err = assert_error(auto.post("/automation/workflows", json=body), 422,
                       "validation_failed")
    assert err["field"] == field, err


def test_workflow_crud(cluster: Cluster, auto: httpx.Client) -> None:
    r = auto.post("/automation/workflows", json=wf_body(
        name="nightly", schedule="0 30 2 * * 1-5",
        timezone="Europe/Berlin", overlap="forbid", missed_run="run_once"))
    assert r.status_code == 201, r.text
    wf = r.json()["workflow"]
    assert wf["schedule"] == "0 30 2 * * 1-5"
    assert wf["enabled"] is True
    assert wf["steps"] == [{"type": "noop", "args": {},
                            "max_attempts": wf["steps"][0]["max_attempts"]}]
    wid = wf["id"]
    assert auto.get(f"/automation/workflows/{wid}").json()["workflow"] == wf
    ids = [w["id"] for w in auto.get("/automation/workflows").json()[
        "workflows"]]
    assert wid in ids

    r = auto.patch(f"/automation/workflows/{wid}",
                   json={"schedule": "@hourly", "enabled": False})
    assert r.status_code == 200, r.text
    assert r.json()["workflow"]["schedule"] == "@hourly"
    assert r.json()["workflow"]["enabled"] is False
    # the merged whole is checked: a zone change keeps validating
    assert_error(auto.patch(f"/automation/workflows/{wid}",
                            json={"timezone": "Nowhere/City"}), 422)

    # another user sees nothing
    with httpx.Client(base_url=automation_url(cluster),
                      headers=as_user(cluster), timeout=30) as other:
        assert_error(other.get(f"/automation/workflows/{wid}"), 404)
        assert_error(other.post(f"/automation/workflows/{wid}/run"), 404)
    # admins see everything
    with httpx.Client(base_url=automation_url(cluster),
                      headers=as_user(cluster, roles="admin"),
                      timeout=30) as admin:
        assert admin.get(f"/automation/workflows/{wid}").status_code == 200

    assert auto.delete(f"/automation/workflows/{wid}").status_code == 204
    assert_error(auto.get(f"/automation/workflows/{wid}"), 404)


def test_run_http_steps_in_order(auto: httpx.Client, upstream: Upstream
                                 ) -> None:
    steps = [
        {"type": "http", "name": "first",
         "args": {"url": upstream.url + "/one", "method": "POST",
                  "body": {"n": 1}}},
        {"type": "http", "name": "second",
         "args": {"url": upstream.url + "/two"}},
    ]
    wid = auto.post("/automation/workflows",
                    json=wf_body(steps=steps)).json()["workflow"]["id"]
    r = auto.post(f"/automation/workflows/{wid}/run")
    assert r.status_code == 202, r.text
    run = r.json()["run"]
    assert run["trigger"] == "manual" and run["state"] == "running"
    run = wait_run(auto, wid, run["id"])
    assert run["state"] == "succeeded", run
    assert [s["state"] for s in run["steps"]] == ["succeeded", "succeeded"]
    assert [s["name"] for s in run["steps"]] == ["first", "second"]
    assert run["steps"][0]["result"]["status"] == 200
    assert [p for _, p, _, _ in upstream.requests] == ["/one", "/two"]
    assert json.loads(upstream.requests[0][3]) == {"n": 1}
    runs = auto.get(f"/automation/workflows/{wid}/runs").json()["runs"]
    assert [x["id"] for x in runs] == [run["id"]]


def test_failed_step_fails_run(auto: httpx.Client, upstream: Upstream
                               ) -> None:
    steps = [
        {"type": "http", "max_attempts": 2,
         "args": {"url": upstream.url + "/fail"}},
        {"type": "http", "args": {"url": upstream.url + "/never"}},
    ]
    wid = auto.post("/automation/workflows",
                    json=wf_body(steps=steps)).json()["workflow"]["id"]
    run = auto.post(f"/automation/workflows/{wid}/run").json()["run"]
    # back-off between the two attempts is RETRY_BASE_MS (1 s) +-20 %
    run = wait_run(auto, wid, run["id"], timeout=90)
    assert run["state"] == "failed", run
    assert "unexpected status 500" in run["error"]
    assert run["steps"][0]["state"] == "dead"
    assert run["steps"][0]["attempts"] == 2
    assert run["steps"][1]["state"] == "not_run"
    assert all(p != "/never" for _, p, _, _ in upstream.requests)


def test_emit_event_step(cluster: Cluster, auto: httpx.Client) -> None:
    """emit_event posts to the real platform as the workflow owner."""
    owner = auto.headers["X-User-Id"]
    wid = auto.post("/automation/workflows", json=wf_body(steps=[
        {"type": "emit_event", "max_attempts": 1,
         "args": {"event": "workflow_ping", "properties": {"n": 7}}}]
    )).json()["workflow"]["id"]
    run = auto.post(f"/automation/workflows/{wid}/run").json()["run"]
    run = wait_run(auto, wid, run["id"])
    step = run["steps"][0]
    probe = httpx.post(cluster.platform_url + "/analytics/events",
                       headers=as_user(cluster, owner), json={}, timeout=10)
    if probe.status_code == 404:
        # analytics not built yet: the call was made and answered 404
        assert run["state"] == "failed"
        assert "analytics answered 404" in step["error"], step
        return
    assert run["state"] == "succeeded", run
    assert 200 <= step["result"]["status"] < 300


def read_sse(url: str, headers: dict, until, events: list,
             timeout: float = 60) -> None:
    """Appends SSE events to `events` until until(events) is true."""
    try:
        with httpx.stream("GET", url, headers=headers,
                          timeout=httpx.Timeout(timeout, read=timeout)) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            kind = None
            for line in r.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    events.append((kind, json.loads(line[6:])))
                    if until(events):
                        break
    except httpx.ReadTimeout:
        pass


def test_sse_events(cluster: Cluster, auto: httpx.Client,
                    upstream: Upstream) -> None:
    owner = auto.headers["X-User-Id"]
    wid = auto.post("/automation/workflows", json=wf_body(steps=[
        {"type": "http", "args": {"url": upstream.url + "/x"}}]
    )).json()["workflow"]["id"]
    url = automation_url(cluster) + "/automation/events"
    mine: list = []
    theirs: list = []

    def done(events):
        return any(k == "run" and e["state"] == "succeeded"
                   for k, e in events)

    t = threading.Thread(target=read_sse, daemon=True,
                         args=(url, dict(auto.headers), done, mine, 60))
    t2 = threading.Thread(target=read_sse, daemon=True,
                          args=(url, as_user(cluster), lambda ev: False,
                                theirs, 20))
    t.start()
    t2.start()
    time.sleep(1.5)   # both streams connected
    rid = auto.post(f"/automation/workflows/{wid}/run").json()["run"]["id"]
    t.join(90)
    kinds = {(k, e.get("state")) for k, e in mine
             if e.get("id") == rid or k == "job"}
    assert ("run", "running") in kinds, mine
    assert ("run", "succeeded") in kinds, mine
    assert ("job", "running") in kinds and ("job", "succeeded") in kinds
    assert all(e["owner_id"] == owner for _, e in mine)
    # another user's stream never carries this owner's events
    assert all(e["owner_id"] != owner for _, e in theirs)



def test_import_file_step(auto: httpx.Client, upstream: Upstream) -> None:
    """A workflow imports an uploaded CSV, then calls a webhook."""
    r = auto.post("/automation/files", params={"name": "wf.csv"},
                  content=b"id,name\n1,ada\n2,grace\n",
                  headers={"Content-Type": "text/csv"})
    assert r.status_code == 201, r.text
    fid = r.json()["id"]
    wid = auto.post("/automation/workflows", json=wf_body(steps=[
        {"type": "import_file", "args": {"file_id": fid}},
        {"type": "http", "args": {"url": upstream.url + "/imported"}}]
    )).json()["workflow"]["id"]
    run = auto.post(f"/automation/workflows/{wid}/run").json()["run"]
    run = wait_run(auto, wid, run["id"], timeout=90)
    assert run["state"] == "succeeded", run
    ds = run["steps"][0]["result"]["dataset_id"]
    assert auto.get(f"/automation/datasets/{ds}").json()["row_count"] == 2
    assert [p for _, p, _, _ in upstream.requests] == ["/imported"]
