"""Shared machinery of the chaos and soak runs (tests/chaos, tests/soak).

- `ChaosCluster`: a whole basalt cluster started through scripts/dev-cluster
  on free ports in a temporary run directory (ASan binaries by default),
  with a fake OpenAI provider behind the llm-orchestrator, plus helpers to
  kill -9 / restart PostgreSQL, Redis and services.
- `Workload`: threads driving a steady mixed workload through the gateway
  (sign-ups + logins, analytics batches with client message_ids, job
  enqueues with idempotency keys, uploads, proxied LLM streams). Every
  acknowledged record is remembered; so is every failed attempt, which
  `Workload.retry_unacked` later retries with the same keys.
- `audit`: counts acknowledged against stored records straight in
  PostgreSQL (psql + DATABASE_URL from `dev-cluster env`) and lists every
  lost or duplicated one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
DEV_CLUSTER = REPO / "scripts" / "dev-cluster"
PSQL = "/usr/lib/postgresql/15/bin/psql"
C_SERVICES = ("gateway", "platform", "automation")
SERVICES = ("gateway", "platform", "automation", "llm-orchestrator",
            "mcp-server")
PORT_VARS = ("BASALT_PG_PORT", "BASALT_REDIS_PORT", "BASALT_GATEWAY_PORT",
             "BASALT_PLATFORM_PORT", "BASALT_AUTOMATION_PORT",
             "BASALT_LLM_PORT", "BASALT_MCP_PORT")
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")
PASSWORD = "chaos-Horse-battery-9-staple"
TAG = "chaos"

sys.path.insert(0, str(REPO / "services" / "llm-orchestrator" / "tests"))
from fake_openai import FakeOpenAI


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def proc_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def routes_with_limits(llm_targets: list[str]) -> dict[str, Any]:
    """The stock routes plus rate limits (one failing open, one closed)
    and a health-checked LLM pool with two targets."""
    routes = json.loads((REPO / "services/gateway/routes.json").read_text())
    routes["upstreams"]["llm-orchestrator"] = {
        "targets": llm_targets,
        "health_check": {"path": "/readyz", "interval_ms": 250},
        "breaker": {"failures": 2, "error_rate": 0.5, "window": 20,
                    "open_ms": 2000},
    }
    for r in routes["routes"]:
        if r["name"] == "analytics":
            r["rate_limit"] = {"limit": 100000, "period_s": 1,
                               "fail": "open"}
    routes["routes"].append(
        {"name": "datasets-limited", "prefix": "/automation/datasets",
         "upstream": "automation", "auth": "token",
         "rate_limit": {"limit": 100000, "period_s": 1, "fail": "closed"}})
    return routes


class ChaosCluster:
    def __init__(self, bin_dir: Path | None = None,
                 extra_env: dict[str, str] | None = None) -> None:
        self.bin_dir = bin_dir or Path(os.environ.get(
            "BASALT_CHAOS_BIN_DIR", REPO / "build" / "asan" / "bin"))
        for b in C_SERVICES:
            if not (self.bin_dir / b).exists():
                raise RuntimeError(f"missing {self.bin_dir / b}: run "
                                   "`make asan` (or `make`) first")
        self.run_dir = Path(tempfile.mkdtemp(prefix="basalt-chaos-"))
        os.chmod(self.run_dir, 0o711)
        ports = dict(zip(PORT_VARS, free_ports(len(PORT_VARS) + 1),
                         strict=False))
        self.llm2_port = free_ports(1)[0]
        self.env = dict(os.environ)
        self.env.update({k: str(v) for k, v in ports.items()})
        self.env.update(
            BASALT_RUN_DIR=str(self.run_dir), BASALT_BIN_DIR=str(self.bin_dir),
            LOG_LEVEL=os.environ.get("LOG_LEVEL", "warn"),
            BASALT_STOP_TIMEOUT="40",
            LOGIN_RATE_LIMIT_PER_MIN="100000",
            REGISTER_RATE_LIMIT_PER_MIN="100000",
            LOGIN_IP_FREE_FAILURES="100000",
            ARGON2_MEMORY_KIB=os.environ.get("ARGON2_MEMORY_KIB", "19456"),
            ASAN_OPTIONS="abort_on_error=0:detect_leaks=1:"
                         "quarantine_size_mb=32")
        self.env.update(extra_env or {})
        self.gateway_url = f"http://127.0.0.1:{ports['BASALT_GATEWAY_PORT']}"
        self.gateway_port = ports["BASALT_GATEWAY_PORT"]
        self.llm_port = ports["BASALT_LLM_PORT"]
        self.fake = FakeOpenAI().start()
        self.llm2: subprocess.Popen[bytes] | None = None
        self._write_env_files()
        self.database_url = self._env_value("DATABASE_URL")

    # ------------------------------------------------------------ set-up

    def _write_env_files(self) -> None:
        envd = self.run_dir / "env"
        envd.mkdir(exist_ok=True)
        providers = {"providers": [{"name": "fake", "type": "openai",
                                    "base_url": self.fake.url,
                                    "api_key": "sk-chaos",
                                    "models": ["echo"]}]}
        (envd / "llm-orchestrator.env").write_text(
            f"LLM_PROVIDERS={json.dumps(providers)}\nLLM_KEEPALIVE_S=1\n"
            # budgets off: the workload is one of a few users
            "LLM_USER_RPM=0\nLLM_USER_RPD=0\nLLM_USER_TPM=0\n"
            "LLM_USER_TPD=0\n")
        (envd / "automation.env").write_text(
            "LEASE_S=5\nHEARTBEAT_S=1\nPOLL_MS=250\n")
        targets = [f"http://127.0.0.1:{self.llm_port}",
                   f"http://127.0.0.1:{self.llm2_port}"]
        routes = self.run_dir / "routes.json"
        routes.write_text(json.dumps(routes_with_limits(targets)))
        (envd / "gateway.env").write_text(
            f"ROUTES_FILE={routes}\n"
            f"UPSTREAM_LLM_ORCHESTRATOR_URL={','.join(targets)}\n"
            "CLIENT_IDLE_TIMEOUT_S=20\n")

    def _env_value(self, key: str) -> str:
        out = self.dev_cluster("env").stdout
        for line in out.splitlines():
            if line.startswith(f"export {key}="):
                return line.split("=", 1)[1].strip("'")
        raise RuntimeError(f"no {key} in dev-cluster env")

    def dev_cluster(self, *args: str, timeout: float = 240
                    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(DEV_CLUSTER), *args], env=self.env,
                              capture_output=True, text=True,
                              timeout=timeout, check=False)

    def must(self, *args: str) -> None:
        r = self.dev_cluster(*args)
        if r.returncode != 0:
            raise RuntimeError(f"dev-cluster {' '.join(args)} failed:\n"
                               + r.stdout + r.stderr)

    def start(self) -> None:
        self.must("start")
        self.start_llm2()

    def start_llm2(self) -> None:
        """A second llm-orchestrator target (same environment, other port)."""
        env = self.proc_environ(self.pid("llm-orchestrator"))
        env["PORT"] = str(self.llm2_port)
        cmd = Path(f"/proc/{self.pid('llm-orchestrator')}/cmdline"
                   ).read_bytes().split(b"\0")[:-1]
        args = [a.decode() for a in cmd]
        args = [str(self.llm2_port) if a == str(self.llm_port) else a
                for a in args]
        log = (self.run_dir / "logs" / "llm-orchestrator-2.log").open("ab")
        self.llm2 = subprocess.Popen(args, env=env, stdout=log,
                                     stderr=subprocess.STDOUT,
                                     cwd=str(REPO), start_new_session=True)
        wait_for(lambda: http_ok(f"http://127.0.0.1:{self.llm2_port}/readyz"),
                 60, what="second llm-orchestrator")

    def stop(self) -> subprocess.CompletedProcess[str]:
        if self.llm2 is not None and self.llm2.poll() is None:
            self.llm2.terminate()
            try:
                self.llm2.wait(30)
            except subprocess.TimeoutExpired:
                self.llm2.kill()
                self.llm2.wait()
        r = self.dev_cluster("stop")
        self.fake.stop()
        return r

    def cleanup(self, keep: bool) -> None:
        if not keep:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    # -------------------------------------------------------- processes

    def pid(self, name: str) -> int:
        return int((self.run_dir / "pids" / f"{name}.pid").read_text()
                   .split()[0])

    def pg_pid(self) -> int:
        return int((self.run_dir / "pg" / "postmaster.pid").read_text()
                   .split()[0])

    @staticmethod
    def proc_environ(pid: int) -> dict[str, str]:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
        env = {}
        for item in raw.decode(errors="replace").split("\0"):
            if "=" in item:
                k, v = item.split("=", 1)
                env[k] = v
        return env

    def kill9_postgres(self) -> None:
        """SIGKILL the postmaster and every backend at once (a crash)."""
        master = self.pg_pid()
        kids = subprocess.run(["pgrep", "-P", str(master)],
                              capture_output=True, text=True,
                              check=False).stdout.split()
        for p in [master, *map(int, kids)]:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_for(lambda: not pid_alive(master), 30, what="postmaster death")
        for k in kids:
            wait_for(lambda k=k: not pid_alive(int(k)), 30,
                     what="backend death")

    def kill9(self, name: str) -> None:
        pid = self.pid(name)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(pid), 30, what=f"{name} death")

    def infra_start(self) -> None:
        self.must("infra-start")

    def sanitizer_reports(self) -> list[str]:
        found = []
        for path in sorted((self.run_dir / "logs").glob("*.log")):
            text = path.read_text(errors="replace")
            if any(m in text for m in SANITIZER_MARKERS):
                found.append(f"{path}:\n" + "\n".join(
                    text.splitlines()[-80:]))
        return found

    # -------------------------------------------------------------- SQL

    def sql(self, query: str) -> list[list[str]]:
        r = subprocess.run([PSQL, self.database_url, "-tAq", "-F", "\t",
                            "-v", "ON_ERROR_STOP=1", "-c", query],
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
                           check=False)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr}")
        return [line.split("\t") for line in r.stdout.splitlines() if line]


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(pred, timeout: float = 60, step: float = 0.1, what: str = ""):
    until = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > until:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


# ------------------------------------------------------------ workload


@dataclass
class Sample:
    kind: str
    start: float      # time.monotonic()
    latency: float    # seconds
    status: int       # 0 = transport error / timeout
    error: str = ""


@dataclass
class Ledger:
    """What the gateway acknowledged, and what it did not (yet)."""
    users: dict[str, str] = field(default_factory=dict)      # email -> id
    events: set[str] = field(default_factory=set)            # message_id
    jobs: dict[str, int] = field(default_factory=dict)       # key -> id
    files: dict[int, str] = field(default_factory=dict)      # id -> sha256
    unacked_users: set[str] = field(default_factory=set)
    unacked_events: dict[str, dict[str, Any]] = field(default_factory=dict)
    unacked_jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed_uploads: int = 0
    streams_ok: int = 0
    streams_failed: int = 0


class Workload:
    """Steady mixed traffic through the gateway from a few threads.

    `rate` is the target number of operations per second over all threads
    (each thread paces itself). `client_timeout` bounds every request: a
    request that hits it is recorded with status 0 and error "timeout".
    """

    KINDS = ("events", "events", "events", "job", "job", "upload", "me",
             "llm", "login")

    def __init__(self, cluster: ChaosCluster, threads: int = 4,
                 rate: float = 20.0, client_timeout: float = 15.0,
                 kinds: tuple[str, ...] | None = None,
                 job_type: str = "noop") -> None:
        self.c = cluster
        self.threads_n = threads
        self.rate = rate
        self.client_timeout = client_timeout
        self.kinds = kinds or self.KINDS
        self.job_type = job_type
        self.ledger = Ledger()
        self.samples: list[Sample] = []
        self.lock = threading.Lock()
        self.stop_evt = threading.Event()
        self.threads: list[threading.Thread] = []
        self.users: list[tuple[str, str]] = []   # (email, access token)
        self.run_id = uuid.uuid4().hex[:8]
        self.seq = 0

    # --- helpers

    def next_id(self, what: str) -> str:
        with self.lock:
            self.seq += 1
            return f"{TAG}-{self.run_id}-{what}-{self.seq}"

    def record(self, kind: str, t0: float, status: int, error: str = ""
               ) -> None:
        s = Sample(kind, t0, time.monotonic() - t0, status, error)
        with self.lock:
            self.samples.append(s)

    def request(self, client: httpx.Client, kind: str, method: str,
                path: str, **kw: Any) -> httpx.Response | None:
        t0 = time.monotonic()
        try:
            r = client.request(method, path, **kw)
        except httpx.TimeoutException as e:
            self.record(kind, t0, 0, f"timeout: {e!r}")
            return None
        except httpx.HTTPError as e:
            self.record(kind, t0, 0, f"transport: {e!r}")
            return None
        self.record(kind, t0, r.status_code,
                    "" if r.status_code < 400 else r.text[:200])
        return r

    def new_user(self, client: httpx.Client) -> tuple[str, str] | None:
        email = f"{self.next_id('user')}@example.com"
        r = self.request(client, "register", "POST", "/auth/register",
                         json={"email": email, "password": PASSWORD})
        if r is None or r.status_code != 201:
            with self.lock:
                self.ledger.unacked_users.add(email)
            return None
        uid = r.json()["user"]["id"] if "user" in r.json() else \
            r.json().get("id", "")
        with self.lock:
            self.ledger.users[email] = uid
        return self.login(client, email)

    def login(self, client: httpx.Client, email: str
              ) -> tuple[str, str] | None:
        r = self.request(client, "login", "POST", "/auth/login",
                         json={"email": email, "password": PASSWORD})
        if r is None or r.status_code != 200:
            return None
        return email, r.json()["access_token"]

    def setup_users(self, n: int = 3) -> None:
        with httpx.Client(base_url=self.c.gateway_url,
                          timeout=self.client_timeout) as client:
            while len(self.users) < n:
                u = self.new_user(client)
                if u:
                    self.users.append(u)

    # --- operations

    def op_events(self, client: httpx.Client, auth: dict[str, str]) -> None:
        batch = [{"event": "chaos_tick", "message_id": self.next_id("ev"),
                  "properties": {"n": i}} for i in range(5)]
        self.post_events(client, auth, batch)

    def post_events(self, client: httpx.Client, auth: dict[str, str],
                    batch: list[dict[str, Any]]) -> bool:
        r = self.request(client, "events", "POST", "/analytics/events",
                         headers=auth, json={"batch": batch})
        ok = r is not None and r.status_code in (200, 201, 202)
        with self.lock:
            for ev in batch:
                if ok:
                    self.ledger.events.add(ev["message_id"])
                    self.ledger.unacked_events.pop(ev["message_id"], None)
                else:
                    self.ledger.unacked_events[ev["message_id"]] = ev
        return ok

    def op_job(self, client: httpx.Client, auth: dict[str, str],
               key: str | None = None, body: dict[str, Any] | None = None
               ) -> bool:
        key = key or self.next_id("job")
        if body is None:
            body = {"type": self.job_type, "idempotency_key": key}
            if self.job_type == "sleep":
                body["args"] = {"ms": 1500}
        r = self.request(client, "job", "POST", "/automation/jobs",
                         headers=auth, json=body)
        ok = r is not None and r.status_code in (200, 202)
        with self.lock:
            if ok:
                jid = int(r.json()["job"]["id"])
                prev = self.ledger.jobs.get(key)
                if prev is not None and prev != jid:
                    raise AssertionError(f"key {key}: job {prev} then {jid}")
                self.ledger.jobs[key] = jid
                self.ledger.unacked_jobs.pop(key, None)
            else:
                self.ledger.unacked_jobs[key] = (auth, body)
        return ok

    def op_upload(self, client: httpx.Client, auth: dict[str, str]) -> None:
        data = os.urandom(2048) + self.next_id("blob").encode()
        name = self.next_id("file")
        r = self.request(client, "upload", "POST",
                         f"/automation/files?name={name}",
                         headers={**auth,
                                  "Content-Type": "application/octet-stream"},
                         content=data)
        if r is not None and r.status_code == 201:
            body = r.json()
            if body["sha256"] != hashlib.sha256(data).hexdigest():
                raise AssertionError(f"upload {name}: wrong sha256")
            with self.lock:
                self.ledger.files[int(body["id"])] = body["sha256"]
        else:
            with self.lock:
                self.ledger.failed_uploads += 1

    def op_me(self, client: httpx.Client, auth: dict[str, str]) -> None:
        self.request(client, "me", "GET", "/auth/me", headers=auth)

    def op_llm(self, client: httpx.Client, auth: dict[str, str],
               model: str = "fake/words=20") -> None:
        t0 = time.monotonic()
        body = {"model": model, "stream": True,
                "messages": [{"role": "user", "content": "hi"}]}
        try:
            with client.stream("POST", "/llm/v1/chat/completions",
                               headers=auth, json=body) as r:
                text = b"".join(r.iter_bytes())
                done = b"[DONE]" in text
                status = r.status_code if (r.status_code != 200 or done) \
                    else 0
                err = "" if status == 200 else text[:200].decode(
                    errors="replace") or "stream cut"
        except httpx.HTTPError as e:
            status, err = 0, f"transport: {e!r}"
        self.record("llm", t0, status, err)
        with self.lock:
            if status == 200:
                self.ledger.streams_ok += 1
            else:
                self.ledger.streams_failed += 1

    def op_login(self, client: httpx.Client, auth: dict[str, str]) -> None:
        email = self.users[0][0]
        self.login(client, email)

    # --- driver

    def _loop(self, idx: int) -> None:
        per_thread = self.rate / self.threads_n
        interval = 1.0 / per_thread if per_thread > 0 else 1.0
        n = idx
        with httpx.Client(base_url=self.c.gateway_url,
                          timeout=self.client_timeout) as client:
            nxt = time.monotonic()
            while not self.stop_evt.is_set():
                _email, tok = self.users[n % len(self.users)]
                auth = {"Authorization": f"Bearer {tok}"}
                kind = self.kinds[n % len(self.kinds)]
                n += 1
                getattr(self, f"op_{kind}")(client, auth)
                nxt += interval
                delay = nxt - time.monotonic()
                if delay > 0:
                    self.stop_evt.wait(delay)
                else:
                    nxt = time.monotonic()

    def start(self) -> None:
        if not self.users:
            self.setup_users()
        self.stop_evt.clear()
        self.threads = [threading.Thread(target=self._loop, args=(i,),
                                         daemon=True)
                        for i in range(self.threads_n)]
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        self.stop_evt.set()
        for t in self.threads:
            t.join(self.client_timeout + 30)

    def samples_between(self, t0: float, t1: float) -> list[Sample]:
        with self.lock:
            return [s for s in self.samples if t0 <= s.start < t1]

    def retry_unacked(self, rounds: int = 5) -> None:
        """Retries every unacknowledged event batch / job enqueue with the
        same message_ids / idempotency keys until acknowledged."""
        with httpx.Client(base_url=self.c.gateway_url,
                          timeout=self.client_timeout) as client:
            auth = {"Authorization": f"Bearer {self.users[0][1]}"}
            for _ in range(rounds):
                with self.lock:
                    evs = list(self.ledger.unacked_events.values())
                    jobs = dict(self.ledger.unacked_jobs)
                for i in range(0, len(evs), 100):
                    self.post_events(client, auth, evs[i:i + 100])
                for key, (jauth, body) in jobs.items():
                    self.op_job(client, jauth, key, body)
                with self.lock:
                    if not (self.ledger.unacked_events
                            or self.ledger.unacked_jobs):
                        return
                time.sleep(1)

    def refresh_tokens(self) -> None:
        """Logs every workload user in again (tokens may be revoked-checked
        against a Redis that lost its data)."""
        with httpx.Client(base_url=self.c.gateway_url,
                          timeout=self.client_timeout) as client:
            fresh = []
            for email, tok in self.users:
                u = self.login(client, email)
                fresh.append(u or (email, tok))
            self.users = fresh


# --------------------------------------------------------------- audit


@dataclass
class AuditResult:
    acked: dict[str, int]
    stored: dict[str, int]
    problems: list[str]

    def __str__(self) -> str:
        lines = [f"{k}: acknowledged {self.acked[k]}, stored "
                 f"{self.stored.get(k, 0)}" for k in self.acked]
        lines += self.problems[:40]
        if len(self.problems) > 40:
            lines.append(f"... {len(self.problems) - 40} more")
        return "\n".join(lines)


def audit(c: ChaosCluster, w: Workload, jobs_final: bool = True,
          final_timeout: float = 120) -> AuditResult:
    """Acknowledged vs stored, exactly once each. With jobs_final, waits
    until every acknowledged job finished and requires state succeeded."""
    led = w.ledger
    prefix = f"{TAG}-{w.run_id}-"
    problems: list[str] = []

    rows = c.sql("SELECT email, id FROM platform.users WHERE email LIKE "
                 f"'{prefix}%'")
    stored_users = Counter(r[0] for r in rows)
    ids = {r[0]: r[1] for r in rows}
    for email, uid in led.users.items():
        if stored_users[email] != 1:
            problems.append(f"user {email}: stored {stored_users[email]}x")
        elif uid and ids[email] != uid:
            problems.append(f"user {email}: id {ids[email]} != acked {uid}")

    rows = c.sql("SELECT message_id, count(*) FROM platform.analytics_events"
                 f" WHERE message_id LIKE '{prefix}%' GROUP BY 1")
    stored_ev = {r[0]: int(r[1]) for r in rows}
    for mid in led.events:
        if stored_ev.get(mid, 0) != 1:
            problems.append(f"event {mid}: stored {stored_ev.get(mid, 0)}x")
    for mid, n in stored_ev.items():
        if n > 1:
            problems.append(f"event {mid}: duplicated ({n}x)")

    def job_rows() -> list[list[str]]:
        return c.sql("SELECT idempotency_key, id, state, attempts FROM "
                     "automation.jobs WHERE idempotency_key LIKE "
                     f"'{prefix}%'")

    if jobs_final and led.jobs:
        def all_final() -> bool:
            st = {r[0]: r[2] for r in job_rows()}
            return all(st.get(k) in ("succeeded", "dead", "cancelled")
                       for k in led.jobs)
        try:
            wait_for(all_final, final_timeout, 0.5, what="jobs to finish")
        except AssertionError as e:
            problems.append(str(e))
    jrows = rows = job_rows()
    by_key: dict[str, list[list[str]]] = defaultdict(list)
    for r in rows:
        by_key[r[0]].append(r)
    for key, jid in led.jobs.items():
        got = by_key.get(key, [])
        if len(got) != 1:
            problems.append(f"job {key}: stored {len(got)}x")
        elif int(got[0][1]) != jid:
            problems.append(f"job {key}: id {got[0][1]} != acked {jid}")
        elif jobs_final and got[0][2] != "succeeded":
            problems.append(f"job {key} ({jid}): state {got[0][2]}")

    stored_files: dict[int, str] = {}
    if led.files:
        idlist = ",".join(str(i) for i in led.files)
        rows = c.sql("SELECT id, sha256 FROM automation.files WHERE id IN "
                     f"({idlist})")
        stored_files = {int(r[0]): r[1] for r in rows}
        for fid, sha in led.files.items():
            if stored_files.get(fid) != sha:
                problems.append(f"file {fid}: stored "
                                f"{stored_files.get(fid)!r}")
    return AuditResult(
        acked={"users": len(led.users), "events": len(led.events),
               "jobs": len(led.jobs), "files": len(led.files)},
        stored={"users": sum(stored_users.values()),
                "events": sum(stored_ev.values()),
                "jobs": len(jrows), "files": len(stored_files)},
        problems=problems)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    k = min(len(v) - 1, max(0, round(p / 100 * (len(v) - 1))))
    return v[k]
