"""deploy/cutover against a fake gateway (admin API + /metrics per the
gateway admin API contract), and its pure parts: metrics parsing, the
histogram quantile and the analysis rules. The native rehearsal against
the real gateway is tests/e2e/test_cutover_rehearsal.py."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy"))
spec = importlib.util.spec_from_file_location("cutover",
                                              REPO / "deploy" / "cutover.py")
cutover = importlib.util.module_from_spec(spec)
sys.modules["cutover"] = cutover
spec.loader.exec_module(cutover)
metrics = importlib.import_module("cutover_metrics")

TOKEN = "test-admin-token-0123456789"
BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)


# ---------------------------------------------------------------- pure parts

METRICS = """\
# HELP gateway_requests_total Requests.
# TYPE gateway_requests_total counter
gateway_requests_total{route="jwks",method="GET",status="200",upstream="platform",color="blue"} 90
gateway_requests_total{route="auth",method="GET",status="200",upstream="platform",color="green"} 8
gateway_requests_total{route="auth",method="GET",status="503",upstream="platform",color="green"} 2
gateway_requests_total{route="a",method="GET",status="500",upstream="automation",color="green"} 7
gateway_request_duration_seconds_bucket{route="jwks",upstream="platform",color="green",le="0.01"} 5
gateway_request_duration_seconds_bucket{route="jwks",upstream="platform",color="green",le="0.1"} 9
gateway_request_duration_seconds_bucket{route="jwks",upstream="platform",color="green",le="+Inf"} 10
gateway_request_duration_seconds_count{route="jwks",upstream="platform",color="green"} 10
http_requests_total{method="GET",route="x\\"y",status="200"} 3
"""


def test_parse_metrics_and_colour_stats() -> None:
    samples = metrics.parse_metrics(METRICS)
    assert any(s.label("route") == 'x"y' for s in samples)
    st = metrics.colour_stats(samples, "platform")
    assert st["blue"].requests == 90 and st["blue"].errors == 0
    assert st["green"].requests == 10 and st["green"].errors == 2
    assert st["green"].error_rate == pytest.approx(0.2)
    assert st["green"].buckets[math.inf] == 10


def test_first_cut_metric_names_are_read_too() -> None:
    text = ('gateway_upstream_requests_total{upstream="platform",'
            'color="green",status="502"} 4\n'
            'gateway_upstream_duration_seconds_bucket{upstream="platform",'
            'color="green",le="0.5"} 4\n')
    st = metrics.colour_stats(metrics.parse_metrics(text), "platform")
    assert st["green"].errors == 4 and st["green"].buckets[0.5] == 4


def test_histogram_quantile() -> None:
    b = {0.01: 50.0, 0.1: 99.0, 1.0: 100.0, math.inf: 100.0}
    assert metrics.histogram_quantile(0.5, b) == pytest.approx(0.01)
    assert metrics.histogram_quantile(0.99, b) == pytest.approx(0.1)
    q = metrics.histogram_quantile(0.995, b)
    assert 0.1 < q < 1.0
    # rank in +Inf: the highest finite bound
    assert metrics.histogram_quantile(
        0.99, {0.5: 1.0, math.inf: 10.0}) == 0.5
    assert metrics.histogram_quantile(0.99, {}) is None
    assert metrics.histogram_quantile(0.99, {math.inf: 0.0}) is None


def test_counter_reset_counts_from_zero() -> None:
    older = metrics.ColorStats(100, 5, {math.inf: 100})
    newer = metrics.ColorStats(7, 1, {math.inf: 7})
    d = newer.minus(older)
    assert (d.requests, d.errors) == (7, 1)


def stats(req: int, err: int, p99: float) -> metrics.ColorStats:
    """req requests, err of them 5xx, all observed at latency p99."""
    buckets = {le: (float(req) if le >= p99 else 0.0) for le in BUCKETS}
    buckets[math.inf] = float(req)
    return metrics.ColorStats(float(req), float(err), buckets)


def test_analyse_rules() -> None:
    th = metrics.Thresholds(max_error_rate=0.01, max_error_rate_increase=0.005,
                            max_p99=1.0, max_p99_ratio=1.5, p99_slack=0.05,
                            min_requests=20)
    old = stats(200, 0, 0.01)
    assert metrics.analyse(stats(10, 5, 0.01), old, th).enough is False
    v = metrics.analyse(stats(100, 0, 0.01), old, th)
    assert v.ok and v.enough
    v = metrics.analyse(stats(100, 5, 0.01), old, th)
    assert not v.ok and "error rate" in v.reasons[0]
    v = metrics.analyse(stats(100, 0, 2.5), old, th)
    assert not v.ok and "max" in v.reasons[0]
    v = metrics.analyse(stats(100, 0, 0.25), old, th)
    assert not v.ok and "old colour" in v.reasons[0]
    # relative error check: old colour already at 0.8 %, new 0.9 % is fine
    th2 = metrics.Thresholds(max_error_rate=0.05, min_requests=20)
    v = metrics.analyse(stats(1000, 60, 0.01), stats(1000, 8, 0.01), th2)
    assert not v.ok
    v = metrics.analyse(stats(1000, 9, 0.01), stats(1000, 8, 0.01), th2)
    assert v.ok
    # at 100 % the old colour is silent: the previous step stands in
    v = metrics.analyse(stats(100, 0, 0.25), stats(0, 0, 0.01), th,
                        old_baseline=old)
    assert not v.ok


def test_steps_parsing() -> None:
    assert cutover.parse_steps("10,50,100") == [10, 50, 100]
    for bad in ("10,50", "50,10,100", "0,100", "10,x,100", "10,10,100"):
        with pytest.raises(argparse.ArgumentTypeError):
            cutover.parse_steps(bad)


# ---------------------------------------------------------------- fake gateway


class FakeGateway:
    """The admin API and per-colour metrics of one upstream pool, with a
    simulated client sending `rate` requests per second split by weight.
    Every n-th request to green fails when green_fail_every is set."""

    def __init__(self, green_fail_every: int = 0, rate: float = 400.0,
                 green_targets: bool = True):
        self.lock = threading.Lock()
        self.weights = {"blue": 100, "green": 0}
        self.targets = {"blue": ["http://blue:8081"],
                        "green": ["http://green:8081"] if green_targets
                        else []}
        self.count = {"blue": {}, "green": {}}   # status -> n
        self.hist = {"blue": [0] * (len(BUCKETS) + 1),
                     "green": [0] * (len(BUCKETS) + 1)}
        self.acc = {"blue": 0.0, "green": 0.0}
        self.green_n = 0
        self.green_fail_every = green_fail_every
        self.rate = rate
        self.puts: list[dict] = []
        self.client_errors_after: list[float] = []
        self.stop = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.threads = [threading.Thread(target=self.server.serve_forever,
                                         daemon=True),
                        threading.Thread(target=self.traffic, daemon=True)]

    def __enter__(self) -> FakeGateway:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()

    def observe(self, color: str, status: int, latency: float) -> None:
        c = self.count[color]
        c[status] = c.get(status, 0) + 1
        for i, le in enumerate(BUCKETS):
            if latency <= le:
                self.hist[color][i] += 1
        self.hist[color][-1] += 1

    def traffic(self) -> None:
        tick = 0.01
        while not self.stop.wait(tick):
            with self.lock:
                for color in ("blue", "green"):
                    self.acc[color] += self.rate * tick * \
                        self.weights[color] / 100
                    while self.acc[color] >= 1:
                        self.acc[color] -= 1
                        status = 200
                        if color == "green":
                            self.green_n += 1
                            if (self.green_fail_every and self.green_n
                                    % self.green_fail_every == 0):
                                status = 500
                        self.observe(color, status, 0.004)

    def metrics(self) -> str:
        lines = []
        with self.lock:
            for color, by_status in self.count.items():
                for status, n in by_status.items():
                    lines.append(
                        'gateway_requests_total{route="r",method="GET",'
                        f'status="{status}",upstream="platform",'
                        f'color="{color}"}} {n}')
                for i, le in enumerate(BUCKETS):
                    lines.append(
                        'gateway_request_duration_seconds_bucket{route="r",'
                        f'upstream="platform",color="{color}",le="{le}"}} '
                        f'{self.hist[color][i]}')
                lines.append(
                    'gateway_request_duration_seconds_bucket{route="r",'
                    f'upstream="platform",color="{color}",le="+Inf"}} '
                    f'{self.hist[color][-1]}')
        return "\n".join(lines) + "\n"

    def state(self) -> dict:
        return {"name": "platform", "balance": "round_robin",
                "sticky": False,
                "colors": {c: {"weight": self.weights[c],
                               "targets": [{"url": u, "healthy": True,
                                            "breaker": "closed"}
                                           for u in self.targets[c]]}
                           for c in ("blue", "green")}}

    def handler(self):
        fake = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def send(self, status: int, body, ctype="application/json"):
                data = (json.dumps(body) if ctype == "application/json"
                        else body).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def authed(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {TOKEN}":
                    return True
                self.send(401, {"error": {"code": "missing_token",
                                          "message": "no", "request_id": "x"}})
                return False

            def do_GET(self):
                if self.path == "/metrics":
                    return self.send(200, fake.metrics(), "text/plain")
                if self.path == "/admin/upstreams/platform":
                    if self.authed():
                        with fake.lock:
                            self.send(200, fake.state())
                    return
                self.send(404, {"error": {"code": "not_found",
                                          "message": "no", "request_id": "x"}})

            def do_PUT(self):
                if self.path != "/admin/upstreams/platform":
                    return self.send(404, {})
                if not self.authed():
                    return
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n))
                with fake.lock:
                    fake.puts.append(body)
                    if "targets" in body:
                        fake.targets.update(body["targets"])
                    w = body["weights"]
                    if sum(w.values()) != 100 or any(
                            v and not fake.targets[c] for c, v in w.items()):
                        return self.send(422, {"error": {
                            "code": "validation_failed", "message": "w",
                            "request_id": "x"}})
                    fake.weights.update(w)
                    self.send(200, fake.state())

        return H


def run_tool(gw: FakeGateway, *args: str, token: str = TOKEN
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / "deploy" / "cutover"), "--gateway", gw.url,
         "--admin-token", token, "--window", "1.5", "--interval", "0.1",
         "--min-requests", "20", *args],
        capture_output=True, text=True, timeout=60, check=False)


def test_healthy_green_reaches_100() -> None:
    with FakeGateway() as gw:
        r = run_tool(gw, "platform", "green")
        assert r.returncode == 0, r.stdout + r.stderr
        assert gw.weights == {"blue": 0, "green": 100}
        assert [p["weights"]["green"] for p in gw.puts] == [10, 50, 100]
        assert "step 10% passed" in r.stdout
        assert "SUCCESS" in r.stdout


def test_faulty_green_is_rolled_back_at_the_first_step() -> None:
    with FakeGateway(green_fail_every=20) as gw:   # 5 % 5xx
        t0 = time.monotonic()
        r = run_tool(gw, "platform", "green")
        took = time.monotonic() - t0
        assert r.returncode == 1, r.stdout + r.stderr
        assert gw.weights == {"blue": 100, "green": 0}
        assert [p["weights"]["green"] for p in gw.puts] == [10, 0]
        assert "ROLLED BACK" in r.stdout and "error rate" in r.stdout
        assert took < 30, took   # bound against hanging only


def test_custom_steps_and_persisted_weights(tmp_path: Path) -> None:
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps({"upstreams": {"platform": {
        "blue": {"targets": ["http://b"], "weight": 100},
        "green": {"targets": ["http://g"], "weight": 0}}}, "routes": []}))
    with FakeGateway() as gw:
        r = run_tool(gw, "--steps", "25,100", "--routes-file", str(routes),
                     "platform", "green")
        assert r.returncode == 0, r.stdout + r.stderr
        assert [p["weights"]["green"] for p in gw.puts] == [25, 100]
    pool = json.loads(routes.read_text())["upstreams"]["platform"]
    assert (pool["blue"]["weight"], pool["green"]["weight"]) == (0, 100)


def test_rollback_flips_back_at_once() -> None:
    with FakeGateway() as gw:
        gw.weights = {"blue": 0, "green": 100}
        r = run_tool(gw, "--rollback", "platform")
        assert r.returncode == 0, r.stdout + r.stderr
        assert gw.weights == {"blue": 100, "green": 0}
        # naming the colour whose release is undone never flips towards it
        r = run_tool(gw, "--rollback", "platform", "green")
        assert r.returncode == 0, r.stdout + r.stderr
        assert gw.weights == {"blue": 100, "green": 0}


def test_no_traffic_is_not_a_pass() -> None:
    with FakeGateway(rate=0) as gw:
        r = run_tool(gw, "platform", "green")
        assert r.returncode == 1, r.stdout + r.stderr
        assert "not enough traffic" in r.stdout
        assert gw.weights == {"blue": 100, "green": 0}


def test_green_without_targets_is_refused_before_moving() -> None:
    with FakeGateway(green_targets=False) as gw:
        r = run_tool(gw, "platform", "green")
        assert r.returncode == 2, r.stdout + r.stderr
        assert gw.puts == []
        r = run_tool(gw, "--targets", "http://green:8081", "platform",
                     "green")
        assert r.returncode == 0, r.stdout + r.stderr
        assert gw.targets["green"] == ["http://green:8081"]


def test_wrong_token_is_an_error() -> None:
    with FakeGateway() as gw:
        r = run_tool(gw, "platform", "green", token="wrong")
        assert r.returncode == 2
        assert re.search(r"HTTP 401", r.stderr), r.stderr
        assert gw.puts == []


def test_each_address_expands_a_host_name() -> None:
    assert cutover.expand_addresses("http://127.0.0.1:8080") == [
        "http://127.0.0.1:8080"]
    urls = cutover.expand_addresses("http://localhost:8080/base")
    assert "http://127.0.0.1:8080/base" in urls
    with pytest.raises(cutover.CutoverError):
        cutover.expand_addresses("http://no-such-host.invalid:8080")
