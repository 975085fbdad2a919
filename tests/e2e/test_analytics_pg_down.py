"""PostgreSQL stopped in the middle of analytics ingestion: clients get
503 (never a false 202), nothing acknowledged is lost, nothing is stored
twice when clients retry, and ingestion resumes once it is back.

Stops and restarts the test cluster's PostgreSQL; waits until every
service is ready again before returning, so later tests are unaffected.
"""

from __future__ import annotations

import threading
import time

import httpx
from analytics_helpers import (
    batch,
    event_name,
    hourly_sum,
    pg_start,
    pg_stop,
    psql,
)
from conftest import (
    Cluster,
    User,
    assert_error,
    register_and_login,
    unique_email,
)

RECOVERY_S = 90


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + RECOVERY_S
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} not ready again"
        time.sleep(0.5)


def test_pg_stopped_mid_ingest(gw: httpx.Client, cluster: Cluster) -> None:
    u: User = register_and_login(gw, unique_email("an-pgdown"))
    name = event_name("pgdown")
    clients, batches, per = 6, 12, 40
    acked: dict[str, int] = {}
    statuses: list[int] = []
    lock = threading.Lock()
    stop_at = threading.Event()     # some batches in: stop PostgreSQL

    def client(k: int) -> None:
        with httpx.Client(base_url=str(gw.base_url), timeout=60) as c:
            for b in range(batches):
                ids = [f"{name}-{k}-{b}-{i}" for i in range(per)]
                body = {"batch": batch(name, per, ids=ids)}
                deadline = time.monotonic() + RECOVERY_S * 2
                while True:
                    try:
                        r = c.post("/analytics/events", json=body,
                                   headers=u.auth)
                        status = r.status_code
                    except httpx.HTTPError:
                        status = 0
                    with lock:
                        statuses.append(status)
                    if status == 202:
                        with lock:
                            for i in ids:
                                acked[i] = acked.get(i, 0) + 1
                        break
                    # Only "try again" answers while the database is gone.
                    assert status in (502, 503, 0), r.text
                    assert time.monotonic() < deadline, "no recovery"
                    time.sleep(0.2)
                if b == 2:
                    stop_at.set()

    threads = [threading.Thread(target=client, args=(k,))
               for k in range(clients)]
    for t in threads:
        t.start()
    try:
        assert stop_at.wait(60)
        pg_stop(cluster)
        # The service itself answers 503 db_unavailable, storing nothing.
        probe = [{"event": name, "message_id": f"{name}-probe"}]
        r = httpx.post(cluster.platform_url + "/analytics/events",
                       json={"batch": probe}, headers=u.auth, timeout=30)
        assert_error(r, 503, "db_unavailable")
        # Let the clients hit the outage for a while.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with lock:
                if sum(1 for s in statuses if s != 202) >= clients:
                    break
            time.sleep(0.1)
    finally:
        pg_start(cluster)
    for t in threads:
        t.join(timeout=RECOVERY_S * 3)
        assert not t.is_alive()

    for url in (cluster.platform_url, cluster.gateway_url):
        wait_ready(url)
    auto = cluster.env.get("BASALT_AUTOMATION_PORT")
    if auto and (cluster.log_path("automation")).exists():
        wait_ready(f"http://127.0.0.1:{auto}")

    # Through the gateway: 503 passed on (or 502 if it gave up first).
    assert any(s in (502, 503) for s in statuses), "outage never seen"
    total = clients * batches * per
    assert len(acked) == total
    # Every acknowledged event is there exactly once (retries included).
    rows = psql(cluster, "SELECT count(*) || '|' || count(DISTINCT "
                         "message_id) FROM platform.analytics_events "
                         "WHERE event = :'v1' AND message_id NOT LIKE "
                         "'%-probe'", name)
    assert rows == f"{total}|{total}"
    assert psql(cluster, "SELECT count(*) FROM platform.analytics_events "
                         "WHERE message_id = :'v1'", f"{name}-probe") == "0"
    assert hourly_sum(cluster, name) == total
