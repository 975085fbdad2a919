"""Helpers shared by the analytics end-to-end tests: direct SQL through
psql, PostgreSQL stop/start on the test cluster, event builders."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import httpx
from conftest import Cluster, User, register_and_login, unique_email

PG_BIN = Path(os.environ.get("BASALT_PG_BIN", "/usr/lib/postgresql/15/bin"))


def database_url(cluster: Cluster) -> str:
    out = cluster.dev_cluster("env")
    assert out.returncode == 0, out.stderr
    for line in out.stdout.splitlines():
        if line.startswith("export DATABASE_URL="):
            return line.split("=", 1)[1].strip("'")
    raise AssertionError("dev-cluster env printed no DATABASE_URL")


def psql(cluster: Cluster, sql: str, *args: str) -> str:
    """Runs one statement; returns unaligned output without headers.
    `args` become psql variables :v1, :v2 ... (quoted with :'v1')."""
    cmd = [str(PG_BIN / "psql"), database_url(cluster), "-qAtX",
           "-v", "ON_ERROR_STOP=1"]
    for i, a in enumerate(args, 1):
        cmd += ["-v", f"v{i}={a}"]
    r = subprocess.run(cmd, input=sql, capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def psql_int(cluster: Cluster, sql: str, *args: str) -> int:
    return int(psql(cluster, sql, *args) or 0)


def hourly_sum(cluster: Cluster, event: str) -> int:
    """sum(n) of the all-scope hourly rollup rows of `event`, after folding
    in the pending rollup rows as every reader must (migration 0004)."""
    psql(cluster, "SELECT platform.analytics_rollup_apply()")
    return psql_int(cluster, "SELECT sum(n) FROM platform.analytics_hourly"
                    " WHERE scope = '*' AND event = :'v1'", event)


def _as_pg_owner() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def pg_stop(cluster: Cluster) -> None:
    """Stops the test cluster's PostgreSQL (fast: active sessions are cut
    off, as in a crash of the connection)."""
    r = subprocess.run([*_as_pg_owner(), str(PG_BIN / "pg_ctl"), "stop",
                        "-D", str(cluster.run_dir / "pg"), "-m", "fast",
                        "-w", "-t", "60"],
                       capture_output=True, text=True, cwd="/",
                       timeout=90, check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def pg_start(cluster: Cluster) -> None:
    r = cluster.dev_cluster("infra-start")
    assert r.returncode == 0, r.stdout + r.stderr


def make_admin(gw: httpx.Client, cluster: Cluster) -> User:
    """A user with role admin (set in SQL), logged in after the change."""
    u = register_and_login(gw, unique_email("an-admin"))
    psql(cluster, "UPDATE platform.users SET roles = '{user,admin}' "
                  "WHERE id = :'v1'", u.id)
    r = gw.post("/auth/login", json={"email": u.email,
                                     "password": u.password})
    assert r.status_code == 200, r.text
    u.access_token = r.json()["access_token"]
    return u


def event_name(tag: str) -> str:
    """An event name no other test uses."""
    return f"e2e_{tag}_{uuid.uuid4().hex[:10]}"


def batch(name: str, n: int, *, ids: list[str] | None = None,
          users: int = 5, timestamps: list[str] | None = None
          ) -> list[dict]:
    out = []
    for i in range(n):
        ev: dict = {"event": name, "distinct_id": f"d{i % users}",
                    "properties": {"i": i}}
        if ids is not None:
            ev["message_id"] = ids[i]
        if timestamps is not None:
            ev["timestamp"] = timestamps[i]
        out.append(ev)
    return out
