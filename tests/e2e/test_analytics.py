"""Analytics through the gateway: ingestion (validation, dedupe, limits,
group commit under concurrency), queries checked against direct SQL,
visibility rules, self-tracking."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from analytics_helpers import (
    batch,
    event_name,
    hourly_sum,
    make_admin,
    psql,
    psql_int,
)
from conftest import (
    Cluster,
    User,
    assert_error,
    register_and_login,
    unique_email,
)


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def post(gw: httpx.Client, user: User, body: dict) -> httpx.Response:
    return gw.post("/analytics/events", json=body, headers=user.auth)


def stored_count(cluster: Cluster, name: str) -> int:
    return psql_int(cluster, "SELECT count(*) FROM platform.analytics_events"
                             " WHERE event = :'v1'", name)


@pytest.fixture(scope="module")
def alice(gw: httpx.Client) -> User:
    return register_and_login(gw, unique_email("an-alice"))


@pytest.fixture(scope="module")
def bob(gw: httpx.Client) -> User:
    return register_and_login(gw, unique_email("an-bob"))


@pytest.fixture(scope="module")
def admin(gw: httpx.Client, cluster: Cluster) -> User:
    return make_admin(gw, cluster)


def test_requires_identity(gw: httpx.Client) -> None:
    r = gw.post("/analytics/events", json={"event": "x"})
    assert_error(r, 401)


def test_single_event_defaults(gw: httpx.Client, cluster: Cluster,
                               alice: User) -> None:
    name = event_name("single")
    r = post(gw, alice, {"event": name, "properties": {"plan": "pro"}})
    assert r.status_code == 202, r.text
    assert r.json() == {"stored": 1, "duplicates": 0, "rejected": 0,
                        "errors": []}
    # 202 means committed: visible at once.
    row = psql(cluster, "SELECT distinct_id || '|' || owner || '|' || "
                        "(properties->>'plan') || '|' || "
                        "(abs(extract(epoch FROM ts - received_at)) < 1) "
                        "FROM platform.analytics_events WHERE event = :'v1'",
               name)
    assert row == f"{alice.id}|{alice.id}|pro|true"


def test_mixed_batch_partial_success(gw: httpx.Client, cluster: Cluster,
                                     alice: User) -> None:
    name = event_name("mixed")
    future = rfc3339(datetime.now(UTC) + timedelta(days=8))
    events = [
        {"event": name},
        {"event": ""},                                  # 1: empty name
        {"event": name, "timestamp": "2025-01-02T03:04:05+01:00"},
        {"event": name, "timestamp": future},           # 3: too far ahead
        {"event": name, "properties": [1, 2]},          # 4: not an object
        {"distinct_id": "x"},                           # 5: no name
        {"event": name, "timestamp": "yesterday"},      # 6: bad time
        {"event": name, "distinct_id": "other"},
    ]
    r = post(gw, alice, {"batch": events})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["stored"] == 3 and body["rejected"] == 5, body
    assert [e["index"] for e in body["errors"]] == [1, 3, 4, 5, 6]
    assert all(e["code"] == "validation_failed" and e["message"]
               for e in body["errors"])
    assert stored_count(cluster, name) == 3
    assert psql(cluster, "SELECT ts FROM platform.analytics_events WHERE "
                         "event = :'v1' AND ts < now() - interval '1 day'",
                name) == "2025-01-02 02:04:05+00"


def test_all_invalid(gw: httpx.Client, alice: User) -> None:
    r = post(gw, alice, {"batch": [{"event": 1}, {}]})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"]["code"] == "validation_failed"
    assert [e["index"] for e in body["errors"]] == [0, 1]
    assert_error(post(gw, alice, {"event": "x" * 201}), 422,
                 "validation_failed")
    assert_error(post(gw, alice, {"batch": []}), 422, "validation_failed")


def test_malformed_bodies(gw: httpx.Client, cluster: Cluster,
                          alice: User) -> None:
    """Bodies the parser rejects part-way (the tree half built in the
    request's arena) get 400 invalid_json, and the endpoint goes on."""
    name = event_name("malformed")
    whole = json.dumps({"batch": batch(name, 50)})
    for body in (whole[: len(whole) // 2], whole + "}", "[1, 2]", "nul",
                 '{"batch": [{"event": "a", "event": "b"}]}'):
        r = gw.post("/analytics/events", content=body,
                    headers={**alice.auth,
                             "Content-Type": "application/json"})
        assert_error(r, 400, "invalid_json")
    assert stored_count(cluster, name) == 0
    r = post(gw, alice, {"batch": batch(name, 50)})
    assert r.status_code == 202, r.text
    assert stored_count(cluster, name) == 50


def test_retry_not_double_counted(gw: httpx.Client, cluster: Cluster,
                                  alice: User) -> None:
    name = event_name("retry")
    ids = [str(uuid.uuid4()) for _ in range(50)]
    first = post(gw, alice, {"batch": batch(name, 50, ids=ids)})
    assert first.status_code == 202, first.text
    assert first.json()["stored"] == 50
    again = post(gw, alice, {"batch": batch(name, 50, ids=ids)})
    assert again.status_code == 202, again.text
    assert again.json()["stored"] == 0
    assert again.json()["duplicates"] == 50
    # A batch overlapping the first by half, with its own repeats inside.
    mixed = ids[25:] + [ids[0]] + [str(uuid.uuid4()) for _ in range(24)]
    mixed.append(mixed[-1])
    r = post(gw, alice, {"batch": batch(name, 51, ids=mixed)})
    assert r.json()["stored"] == 24, r.text
    assert r.json()["duplicates"] == 27
    assert stored_count(cluster, name) == 74
    # Rollups count each stored event once.
    assert hourly_sum(cluster, name) == 74



def test_message_ids_are_per_sender(gw: httpx.Client, cluster: Cluster,
                                    alice: User, bob: User) -> None:
    """Bob reusing alice's message_ids (knowingly or by numbering them
    alike) neither loses his events nor suppresses hers."""
    name = event_name("peruser")
    ids = [f"{name}-{i}" for i in range(10)]
    first = post(gw, alice, {"batch": batch(name, 10, ids=ids)})
    assert first.json()["stored"] == 10, first.text
    theirs = post(gw, bob, {"batch": batch(name, 10, ids=ids)})
    assert theirs.status_code == 202, theirs.text
    assert theirs.json()["stored"] == 10
    assert theirs.json()["duplicates"] == 0
    # each one's retry is still a duplicate
    for user in (alice, bob):
        again = post(gw, user, {"batch": batch(name, 10, ids=ids)})
        assert again.json()["duplicates"] == 10, again.text
    assert stored_count(cluster, name) == 20
    assert psql_int(cluster, "SELECT count(DISTINCT owner) FROM "
                             "platform.analytics_events WHERE event = :'v1'",
                    name) == 2

def test_over_limits_413_stores_nothing(gw: httpx.Client, cluster: Cluster,
                                        alice: User) -> None:
    name = event_name("limit")
    r = post(gw, alice, {"batch": batch(name, 1001)})
    assert_error(r, 413)
    # Under the count limit but over 1 MiB of body.
    big = "x" * 30000
    events = [{"event": name, "properties": {"pad": big}}
              for _ in range(40)]
    r = post(gw, alice, {"batch": events})
    assert_error(r, 413)
    assert stored_count(cluster, name) == 0
    # The per-event properties limit is a validation error instead.
    r = post(gw, alice, {"batch": [{"event": name,
                                    "properties": {"pad": "y" * 40000}},
                                   {"event": name}]})
    assert r.status_code == 202, r.text
    assert [e["index"] for e in r.json()["errors"]] == [0]
    assert stored_count(cluster, name) == 1


def test_concurrent_clients_exact_counts(gw: httpx.Client,
                                         cluster: Cluster) -> None:
    name = event_name("conc")
    clients, batches, per = 16, 5, 50
    users = [register_and_login(gw, unique_email(f"an-c{i}"))
             for i in range(4)]

    def run(k: int) -> int:
        u = users[k % len(users)]
        stored = 0
        with httpx.Client(base_url=str(gw.base_url), timeout=60) as c:
            for b in range(batches):
                ids = [f"{name}-{k}-{b}-{i}" for i in range(per)]
                r = c.post("/analytics/events", headers=u.auth,
                           json={"batch": batch(name, per, ids=ids,
                                                users=7)})
                assert r.status_code == 202, r.text
                stored += r.json()["stored"]
        return stored

    with ThreadPoolExecutor(clients) as pool:
        acked = sum(pool.map(run, range(clients)))
    total = clients * batches * per
    assert acked == total
    assert stored_count(cluster, name) == total
    assert hourly_sum(cluster, name) == total


def summary(gw: httpx.Client, user: User, **params: str) -> dict:
    r = gw.get("/analytics/summary", params=params, headers=user.auth)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def history(gw: httpx.Client, alice: User, bob: User) -> dict:
    """Events spread over 3 days, 3 days ago, from alice and bob."""
    name = event_name("hist")
    start = (datetime.now(UTC) - timedelta(days=4)).replace(
        hour=0, minute=0, second=0, microsecond=0)
    for who, seed in ((alice, 0), (bob, 1)):
        events = []
        for i in range(600):
            t = start + timedelta(minutes=(i * 37 + seed * 11) % (3 * 1440),
                                  seconds=i % 60)
            events.append({"event": name, "distinct_id": f"p{(i * 7) % 23}",
                           "timestamp": rfc3339(t),
                           "message_id": f"{name}-{seed}-{i}"})
        r = post(gw, who, {"batch": events})
        assert r.status_code == 202 and r.json()["stored"] == 600, r.text
    return {"name": name, "from": start, "to": start + timedelta(days=3)}


SQL_BUCKETS = """
SELECT to_char(date_trunc(:'v4', ts, 'UTC'), 'YYYY-MM-DD"T"HH24:MI:SS'),
       count(*), count(DISTINCT distinct_id)
FROM platform.analytics_events
WHERE event = :'v1' AND ts >= :'v2'::timestamptz AND ts < :'v3'::timestamptz
  AND (:'v5' = '*' OR owner = :'v5')
GROUP BY 1 ORDER BY 1
"""


def sql_buckets(cluster: Cluster, name: str, frm: datetime, to: datetime,
                unit: str, scope: str) -> dict[str, tuple[int, int]]:
    out = psql(cluster, SQL_BUCKETS, name, rfc3339(frm), rfc3339(to), unit,
               scope)
    rows = {}
    for line in out.splitlines():
        start, n, u = line.split("|")
        rows[start] = (int(n), int(u))
    return rows


def api_buckets(body: dict) -> dict[str, tuple[int, int]]:
    return {b["start"][:19]: (b["count"], b["unique"])
            for b in body["buckets"] if b["count"]}


@pytest.mark.parametrize("unit", ["hour", "day", "minute"])
def test_summary_matches_sql(gw: httpx.Client, cluster: Cluster,
                             alice: User, admin: User, history: dict,
                             unit: str) -> None:
    name, frm, to = history["name"], history["from"], history["to"]
    if unit == "minute":
        to = frm + timedelta(hours=6)
    for who, scope in ((alice, alice.id), (admin, "*")):
        body = summary(gw, who, event=name, interval=unit,
                       **{"from": rfc3339(frm), "to": rfc3339(to)})
        want = sql_buckets(cluster, name, frm, to, unit, scope)
        assert want, "no test data in range"
        assert api_buckets(body) == want
        step = {"minute": 60, "hour": 3600, "day": 86400}[unit]
        assert len(body["buckets"]) == (to - frm).total_seconds() // step
    # Day uniques are not sums of hour uniques (same people every hour).
    day = summary(gw, admin, event=name, interval="day",
                  **{"from": rfc3339(frm), "to": rfc3339(to)})
    hours = summary(gw, admin, event=name, interval="hour",
                    **{"from": rfc3339(frm), "to": rfc3339(frm +
                                                          timedelta(days=1))})
    assert day["buckets"][0]["unique"] < sum(b["unique"]
                                             for b in hours["buckets"])


def test_summary_all_events_and_errors(gw: httpx.Client, cluster: Cluster,
                                       alice: User, history: dict) -> None:
    frm, to = history["from"], history["to"]
    body = summary(gw, alice, interval="day",
                   **{"from": rfc3339(frm), "to": rfc3339(to)})
    want = psql(cluster, "SELECT count(*) || '|' || count(DISTINCT "
                         "distinct_id) FROM platform.analytics_events WHERE "
                         "owner = :'v1' AND ts >= :'v2'::timestamptz AND "
                         "ts < :'v3'::timestamptz AND date_trunc('day', ts)"
                         " = :'v2'::timestamptz",
                alice.id, rfc3339(frm), rfc3339(to))
    first = body["buckets"][0]
    assert f"{first['count']}|{first['unique']}" == want
    # All events by hour, from the all-events rollup, against raw rows.
    day_end = frm + timedelta(days=1)
    body = summary(gw, alice, interval="hour",
                   **{"from": rfc3339(frm), "to": rfc3339(day_end)})
    want_rows = psql(cluster, "SELECT to_char(h, 'YYYY-MM-DD\"T\"HH24:MI:SS')"
                              " || '|' || n || '|' || u FROM (SELECT "
                              "date_trunc('hour', ts) AS h, count(*) AS n, "
                              "count(DISTINCT distinct_id) AS u FROM "
                              "platform.analytics_events WHERE owner = :'v1'"
                              " AND ts >= :'v2'::timestamptz AND ts < "
                              ":'v3'::timestamptz GROUP BY 1) t ORDER BY h",
                     alice.id, rfc3339(frm), rfc3339(day_end))
    got = "\n".join(f"{b['start'][:19]}|{b['count']}|{b['unique']}"
                    for b in body["buckets"] if b["count"])
    assert got == want_rows
    r = gw.get("/analytics/summary", params={"interval": "week"},
               headers=alice.auth)
    assert_error(r, 400, "invalid_parameter")
    r = gw.get("/analytics/summary", params={"from": "nope"},
               headers=alice.auth)
    assert_error(r, 400, "invalid_parameter")
    r = gw.get("/analytics/summary",
               params={"interval": "minute", "from": "2020-01-01T00:00:00Z",
                       "to": "2021-01-01T00:00:00Z"}, headers=alice.auth)
    assert_error(r, 400, "range_too_large")


def test_visibility(gw: httpx.Client, alice: User, bob: User, admin: User,
                    history: dict) -> None:
    name, frm, to = history["name"], history["from"], history["to"]
    rng = {"from": rfc3339(frm), "to": rfc3339(to)}

    def total(u: User) -> int:
        return sum(b["count"] for b in summary(
            gw, u, event=name, interval="day", **rng)["buckets"])

    assert total(alice) == 600
    assert total(bob) == 600
    assert total(admin) == 1200
    fresh = register_and_login(gw, unique_email("an-nobody"))
    assert total(fresh) == 0
    r = gw.get("/analytics/events", params={"event": name},
               headers=fresh.auth)
    assert r.status_code == 200 and r.json()["events"] == []
    # Headers a client forges are removed by the gateway.
    r = gw.get("/analytics/events", params={"event": name},
               headers={**fresh.auth, "X-User-Roles": "admin",
                        "X-User-Id": alice.id})
    assert r.json()["events"] == []


def test_top(gw: httpx.Client, admin: User, alice: User,
             history: dict) -> None:
    r = gw.get("/analytics/top", headers=alice.auth,
               params={"from": rfc3339(history["from"]),
                       "to": rfc3339(history["to"]), "limit": "5"})
    assert r.status_code == 200, r.text
    top = r.json()["events"]
    assert top[0] == {"event": history["name"], "count": 600}
    counts = [e["count"] for e in top]
    assert counts == sorted(counts, reverse=True)
    r = gw.get("/analytics/top", headers=admin.auth,
               params={"from": rfc3339(history["from"]),
                       "to": rfc3339(history["to"])})
    assert {"event": history["name"], "count": 1200} in r.json()["events"]
    assert_error(gw.get("/analytics/top", params={"limit": "0"},
                        headers=alice.auth), 400)


def test_events_cursor_pagination(gw: httpx.Client, alice: User,
                                  history: dict) -> None:
    name = history["name"]
    seen: list[dict] = []
    cursor = None
    pages = 0
    while True:
        params = {"event": name, "limit": "250"}
        if cursor:
            params["cursor"] = cursor
        r = gw.get("/analytics/events", params=params, headers=alice.auth)
        assert r.status_code == 200, r.text
        body = r.json()
        seen += body["events"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    assert pages == 3
    assert len(seen) == 600
    assert len({e["message_id"] for e in seen}) == 600
    keys = [(e["timestamp"], e["id"]) for e in seen]
    assert keys == sorted(keys, reverse=True)
    assert all(e["owner"] == alice.id for e in seen)
    assert_error(gw.get("/analytics/events", params={"cursor": "zz!"},
                        headers=alice.auth), 400, "invalid_parameter")


def test_self_tracking(gw: httpx.Client, cluster: Cluster) -> None:
    email = unique_email("an-track")
    u = register_and_login(gw, email)
    r = gw.post("/auth/login", json={"email": email, "password": "wrong-pw"})
    assert r.status_code == 401
    want = {"user_registered", "user_login", "login_failed"}
    deadline = time.monotonic() + 30
    while True:
        got = set(psql(cluster, "SELECT DISTINCT event FROM "
                                "platform.analytics_events WHERE owner = "
                                ":'v1'", u.id).split())
        if want <= got or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert want <= got, got
    # The user sees their own self-tracked events.
    r = gw.get("/analytics/events", params={"event": "user_login"},
               headers=u.auth)
    assert r.status_code == 200
    assert r.json()["events"][0]["distinct_id"] == u.id
