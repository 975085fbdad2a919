"""Several automation replicas against one database: every cron slot runs
exactly once, a job whose replica is killed -9 completes once elsewhere
after its lease, and a SIGTERM drain loses nothing."""
from __future__ import annotations

import calendar
import itertools
import time

import httpx
import pytest
from automation_replicas import (
    Replica,
    as_user,
    automation_env,
    start_cluster_automation,
    stop_cluster_automation,
    wait_for,
)
from conftest import Cluster


def client(url: str, headers: dict) -> httpx.Client:
    return httpx.Client(base_url=url, headers=headers, timeout=30)


def check_clean(*replicas: Replica) -> None:
    for r in replicas:
        report = r.sanitizer_report()
        assert report is None, report


def job(c: httpx.Client, jid: int) -> dict:
    r = c.get(f"/automation/jobs/{jid}")
    assert r.status_code == 200, r.text
    return r.json()["job"]


def enqueue(c: httpx.Client, ms: int) -> int:
    r = c.post("/automation/jobs", json={"type": "sleep", "args": {"ms": ms}})
    assert r.status_code == 202, r.text
    return r.json()["job"]["id"]


def test_three_replicas_fire_each_slot_once(cluster: Cluster) -> None:
    env = automation_env(cluster)
    headers = as_user(cluster)
    replicas = [Replica(cluster, env, f"sched{i}", LOG_LEVEL="info",
                        SCHEDULER_MAX_WAIT_MS="300") for i in range(2)]
    main = f"http://127.0.0.1:{cluster.env['BASALT_AUTOMATION_PORT']}"
    try:
        with client(main, headers) as c:
            wid = c.post("/automation/workflows", json={
                "name": "every second", "schedule": "* * * * * *",
                "steps": [{"type": "noop"}]}).json()["workflow"]["id"]
            time.sleep(6)
            r = c.patch(f"/automation/workflows/{wid}",
                        json={"enabled": False})
            assert r.status_code == 200, r.text

            def finished():
                runs = c.get(f"/automation/workflows/{wid}/runs",
                             params={"limit": 100}).json()["runs"]
                return runs if runs and all(
                    x["state"] != "running" for x in runs) else None
            runs = wait_for(finished, 60, what="runs to finish")
        slots = sorted(x["scheduled_at"] for x in runs)
        assert len(slots) >= 4, runs
        assert len(set(slots)) == len(slots), slots
        assert all(x["trigger"] == "schedule" for x in runs)
        assert all(x["state"] == "succeeded" for x in runs), runs
        assert all(x["steps"][0]["attempts"] == 1 for x in runs)
        # consecutive seconds: no slot was skipped
        secs = [calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S"))
                for s in slots]
        assert all(b - a == 1 for a, b in itertools.pairwise(secs)), slots
        # every run was started by exactly one replica (one log line each;
        # the cluster's replica logs it at info)
        if env.get("LOG_LEVEL", "info") not in ("debug", "info"):
            return
        logs = [cluster.log_path("automation")] + [r.log for r in replicas]
        started = 0
        for path in logs:
            for line in path.read_text(errors="replace").splitlines():
                if ('"workflow run started"' in line
                        and f'"workflow_id":"{wid}"' in line):
                    started += 1
        assert started == len(runs), (started, len(runs))
    finally:
        for r in replicas:
            r.stop()
    check_clean(*replicas)


@pytest.fixture()
def cluster_automation_stopped(cluster: Cluster):
    """Only the test's own replicas run jobs; the cluster's comes back."""
    env = automation_env(cluster)
    stop_cluster_automation(cluster)
    try:
        yield env
    finally:
        start_cluster_automation(cluster)


def test_kill9_mid_job_completes_once_elsewhere(
        cluster: Cluster, cluster_automation_stopped) -> None:
    env = cluster_automation_stopped
    headers = as_user(cluster)
    a = Replica(cluster, env, "kill-a", LEASE_S="3", HEARTBEAT_S="1",
                WORKERS="1")
    b = None
    try:
        with client(a.url, headers) as ca:
            jid = enqueue(ca, 4000)
            wait_for(lambda: job(ca, jid)["state"] == "running", 60,
                     what="job running on replica a")
        a.kill9()
        b = Replica(cluster, env, "kill-b", POLL_MS="200", LEASE_S="3",
                    HEARTBEAT_S="1")
        with client(b.url, headers) as cb:
            done = wait_for(
                lambda: (j := job(cb, jid))["state"] == "succeeded" and j,
                90, what="job done on replica b")
        assert done["attempts"] == 2, done
        assert [e["error"] for e in done["errors"]] == ["lease expired"]
        assert done["result"] == {"slept_ms": 4000}
    finally:
        if a.proc.poll() is None:
            a.kill9()
        if b:
            b.stop()
    check_clean(b) if b else None


def test_sigterm_drain_loses_nothing(cluster: Cluster,
                                     cluster_automation_stopped) -> None:
    env = cluster_automation_stopped
    headers = as_user(cluster)
    a = Replica(cluster, env, "drain-a", WORKERS="2", DRAIN_S="3")
    b = None
    try:
        with client(a.url, headers) as ca:
            short = enqueue(ca, 500)     # finishes within the drain
            long_ = enqueue(ca, 30000)   # released at the drain bound
            wait_for(lambda: job(ca, short)["state"] in ("running",
                                                         "succeeded")
                     and job(ca, long_)["state"] == "running", 60,
                     what="both jobs running")
            waiting = [enqueue(ca, 100) for _ in range(2)]
        assert a.term(timeout=60) == 0
        b = Replica(cluster, env, "drain-b", WORKERS="2")
        with client(b.url, headers) as cb:
            s = job(cb, short)
            assert s["state"] == "succeeded" and s["attempts"] == 1, s
            for jid in waiting:
                j = job(cb, jid)
                assert j["state"] in ("available", "running", "succeeded")
            for jid in [long_, *waiting]:
                wait_for(lambda jid=jid: job(cb, jid)["state"] == "succeeded",
                         90, what=f"job {jid} done")
            # the interrupted attempt was not counted
            assert job(cb, long_)["attempts"] == 1
            assert all(job(cb, j)["attempts"] == 1 for j in waiting)
    finally:
        a.stop()
        if b:
            b.stop()
    check_clean(a, *( [b] if b else []))
