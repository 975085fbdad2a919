"""automation_jobs — job queue throughput and enqueue-to-start latency.

Issue goal (automation, "Measure"): no-op jobs/s through enqueue -> claim
-> complete with 2 replicas >= 5,000/s on a 2-core machine, and
enqueue-to-start p99 < 10 ms when idle workers exist.

Starts a throwaway PostgreSQL + Redis (scripts/dev-cluster infra-start in
a temp run dir on free ports) and two replicas of the release binary
build/bin/automation, then measures:

  1. sql:  N noop jobs inserted by one INSERT ... generate_series (one
           durable commit), then claimed and completed by the replicas.
           This is the figure the goal refers to (the queue itself:
           claim -> run -> complete; enqueue cost is one statement).
  2. http: noop jobs enqueued through POST /automation/jobs over C
           connections for S seconds (wrk; without wrk: JOBS_HTTP_N jobs
           from Python) while the replicas work them off (the whole
           path: HTTP + JSON + one durable INSERT per job).
  3. latency: jobs enqueued one at a time through the API with idle
           workers; started_at - created_at from the database (both are
           PostgreSQL's clock), p50/p99.

Rates come from the jobs' own timestamps (first created_at to last
finished_at), not from polling. Settings (environment):
  JOBS_N (20000), JOBS_HTTP_S (5), JOBS_HTTP_CONC (16), JOBS_HTTP_N (5000),
  JOBS_LAT_N (300), JOBS_WORKERS (per replica, 4), AUTOMATION_BIN.
Prints the 1-minute load average before and after: the machine is shared.
"""
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import httpx

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PSQL = "/usr/lib/postgresql/15/bin/psql"
N = int(os.environ.get("JOBS_N", "20000"))
HTTP_N = int(os.environ.get("JOBS_HTTP_N", "5000"))
HTTP_CONC = int(os.environ.get("JOBS_HTTP_CONC", "16"))
HTTP_S = int(os.environ.get("JOBS_HTTP_S", "5"))
LAT_N = int(os.environ.get("JOBS_LAT_N", "300"))
WORKERS = os.environ.get("JOBS_WORKERS", "4")
BIN = os.environ.get("AUTOMATION_BIN",
                     os.path.join(ROOT, "build/bin/automation"))
HDR = {"X-Internal-Token": "bench", "X-User-Id": "bench"}


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


class Bench:
    def __init__(self):
        self.run = tempfile.mkdtemp(prefix="basalt-bench-jobs.")
        os.chmod(self.run, 0o711)
        self.pg_port, self.redis_port, p1, p2 = free_ports(4)
        self.ports = [p1, p2]
        self.procs = []
        self.env = dict(os.environ, BASALT_RUN_DIR=self.run,
                        BASALT_PG_PORT=str(self.pg_port),
                        BASALT_REDIS_PORT=str(self.redis_port))
        self.db = None

    def start(self):
        out = subprocess.run([os.path.join(ROOT, "scripts/dev-cluster"),
                              "infra-start"], env=self.env, check=False,
                             capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(out.stdout + out.stderr)
        with open(os.path.join(self.run, "secrets/db_password")) as f:
            pw = f.read().strip()
        self.db = (f"postgresql://basalt:{pw}@127.0.0.1:{self.pg_port}"
                   "/basalt")
        for i, port in enumerate(self.ports):
            env = {"HOST": "127.0.0.1", "PORT": str(port),
                   "DATABASE_URL": self.db,
                   "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                   "LOG_LEVEL": "warn", "INTERNAL_TOKEN": "bench",
                   "JWT_SECRET": "bench-secret-0123456789abcdef0123456789",
                   "STORAGE_DIR": os.path.join(self.run, "storage"),
                   "WORKERS": WORKERS, "PATH": os.environ.get("PATH", "")}
            with open(os.path.join(self.run, f"automation{i}.log"),
                      "w") as log:
                self.procs.append(subprocess.Popen(
                    [BIN], env=env, stdout=log, stderr=subprocess.STDOUT))
            # the first replica runs the migrations alone
            self.wait_ready(port)

    def wait_ready(self, port):
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz",
                             timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        sys.exit(f"automation on port {port} not ready")

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run([os.path.join(ROOT, "scripts/dev-cluster"),
                        "infra-stop"], env=self.env, check=False,
                       capture_output=True)
        shutil.rmtree(self.run, ignore_errors=True)

    def sql(self, q):
        out = subprocess.run([PSQL, self.db, "-XAtqc", q], check=False,
                             capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(out.stderr)
        return out.stdout.strip()

    def max_id(self):
        return int(self.sql("SELECT coalesce(max(id), 0) "
                            "FROM automation.jobs"))

    def wait_done(self, after, n, timeout=600):
        t_end = time.time() + timeout
        while time.time() < t_end:
            done = int(self.sql(
                "SELECT count(*) FROM automation.jobs WHERE id > "
                f"{after} AND state IN ('succeeded', 'dead', 'cancelled')"))
            if done >= n:
                return
            time.sleep(0.2)
        sys.exit(f"timed out: {done}/{n} jobs finished")

    def span(self, after):
        """(jobs, seconds from first created_at to last finished_at,
        seconds from first started_at to last finished_at)"""
        row = self.sql(
            "SELECT count(*), extract(epoch FROM max(finished_at)"
            " - min(created_at)), extract(epoch FROM max(finished_at)"
            f" - min(started_at)) FROM automation.jobs WHERE id > {after}"
            " AND state = 'succeeded'")
        n, a, b = row.split("|")
        return int(n), float(a), float(b)

    def bench_sql(self):
        after = self.max_id()
        self.sql("INSERT INTO automation.jobs (type, owner_id)"
                 f" SELECT 'noop', 'bench' FROM generate_series(1, {N})")
        self.wait_done(after, N)
        n, total, work = self.span(after)
        return n, total, work

    async def _http_enqueue(self, n, conc):
        urls = [f"http://127.0.0.1:{p}/automation/jobs" for p in self.ports]
        body = {"type": "noop"}
        errors = 0

        async def client(k, count):
            nonlocal errors
            async with httpx.AsyncClient(headers=HDR, timeout=30) as c:
                for i in range(count):
                    r = await c.post(urls[(k + i) % len(urls)], json=body)
                    if r.status_code != 202:
                        errors += 1

        per = [n // conc + (1 if i < n % conc else 0) for i in range(conc)]
        await asyncio.gather(*(client(k, c) for k, c in enumerate(per)))
        return errors

    def _wrk_enqueue(self, wrk):
        """wrk for HTTP_S seconds against both replicas (half the
        connections each): a Python client can't drive more than a few
        hundred requests/s on a loaded 2-core machine."""
        lua = os.path.join(self.run, "post.lua")
        with open(lua, "w") as f:
            f.write('wrk.method = "POST"\n'
                    'wrk.body = \'{"type":"noop"}\'\n'
                    'wrk.headers["Content-Type"] = "application/json"\n'
                    + "".join(f'wrk.headers["{k}"] = "{v}"\n'
                              for k, v in HDR.items()))
        procs = [subprocess.Popen(
            [wrk, "-t1", f"-c{max(1, HTTP_CONC // 2)}", f"-d{HTTP_S}s",
             "-s", lua, f"http://127.0.0.1:{p}/automation/jobs"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for p in self.ports]
        for p in procs:
            out = p.communicate()[0]
            if "Non-2xx" in out:
                sys.exit("enqueue requests failed:\n" + out)

    def bench_http(self):
        after = self.max_id()
        wrk = shutil.which("wrk")
        t0 = time.time()
        if wrk:
            self._wrk_enqueue(wrk)
        elif asyncio.run(self._http_enqueue(HTTP_N, HTTP_CONC)):
            sys.exit("enqueue requests failed")
        secs = time.time() - t0
        n = self.max_id() - after
        self.wait_done(after, n)
        n, total, _ = self.span(after)
        return n, total, secs, "wrk" if wrk else "httpx"

    def bench_latency(self):
        after = self.max_id()
        url = f"http://127.0.0.1:{self.ports[0]}/automation/jobs"
        req = []
        with httpx.Client(headers=HDR, timeout=30) as c:
            for _ in range(LAT_N):
                t0 = time.perf_counter()
                r = c.post(url, json={"type": "noop"})
                req.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 202:
                    sys.exit(f"enqueue failed: {r.status_code} {r.text}")
                time.sleep(0.02)   # workers are idle again by then
        self.wait_done(after, LAT_N)
        row = self.sql(
            "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY"
            " extract(epoch FROM started_at - created_at)), max(extract("
            "epoch FROM started_at - created_at)) FROM automation.jobs"
            f" WHERE id > {after}")
        pct, mx = row.split("|")
        p50, p99 = (float(x) * 1000 for x in pct.strip("{}").split(","))
        req.sort()
        return (p50, p99, float(mx) * 1000, req[len(req) // 2],
                req[min(len(req) - 1, int(len(req) * 0.99))])


def main():
    b = Bench()
    try:
        b.start()
        print(f"2 replicas x WORKERS={WORKERS}, load average {loadavg()}")
        # warm-up: connections, plans, caches
        b.sql("INSERT INTO automation.jobs (type, owner_id)"
              " SELECT 'noop', 'bench' FROM generate_series(1, 500)")
        b.wait_done(0, 500)
        n, total, work = b.bench_sql()
        print(f"sql enqueue (1 INSERT of {n}) -> claim -> complete: "
              f"{n / total:,.0f} jobs/s end to end ({total:.2f} s), "
              f"{n / work:,.0f} jobs/s claim->complete   (goal >= 5,000)")
        n, total, secs, tool = b.bench_http()
        print(f"http enqueue ({tool}, {HTTP_CONC} connections) -> claim ->"
              f" complete: {n:,} jobs, {n / total:,.0f} jobs/s end to end;"
              f" enqueue alone {n / secs:,.0f} req/s")
        p50, p99, mx, r50, r99 = b.bench_latency()
        print(f"enqueue-to-start, one at a time, idle workers ({LAT_N}): "
              f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {mx:.2f} ms   "
              "(goal p99 < 10 ms)")
        # the durable enqueue itself (HTTP + INSERT + fsync), for scale:
        # created_at is taken at its start, so it is inside the above
        print(f"  the enqueue request alone: p50 {r50:.2f} ms, "
              f"p99 {r99:.2f} ms")
        print(f"load average after: {loadavg()}")
    finally:
        b.stop()


if __name__ == "__main__":
    main()
