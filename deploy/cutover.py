"""deploy/cutover: blue/green release through the gateway's admin API.

Moves a service's traffic to a new colour in steps (default 10, 50, 100
percent). After each weight change it watches the gateway's own per-colour
metrics (request counter by status, latency histogram) for an analysis
window. The new colour fails the step when, in that window,

  * its error rate (5xx share) is above --max-error-rate, or above the old
    colour's by more than --max-error-rate-increase;
  * its p99 latency is above --max-p99, or above the old colour's p99 times
    --max-p99-ratio plus --p99-slack;
  * it served fewer than --min-requests by the end of the window (no
    evidence is not a pass).

Error checks run at every poll (--interval), so a bad colour is rolled back
as soon as it has served --min-requests, within one window. A failed step
sets the new colour to 0 and the old one to 100, prints a report and exits
1. Success leaves new=100 and old=0: the old colour keeps running idle, and
`deploy/cutover --rollback SERVICE NEW` moves everything back to the old
colour at once.

The weights live in each gateway process: with several gateway replicas
give every one (--gateway repeated, or --each-address to use every address
a host name resolves to, e.g. a headless Service). See deploy/README.md.

Exit codes: 0 done, 1 analysis failed (rolled back), 2 usage, settings or
admin API error (rolled back when traffic had moved), 3 the rollback itself
failed (check the gateway now), 130 interrupted (rolled back).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from cutover_metrics import (
    COLORS,
    ColorStats,
    Thresholds,
    Verdict,
    analyse,
    colour_stats,
    fmt_ms,
    parse_metrics,
)

REPO = Path(__file__).resolve().parents[1]


class CutoverError(Exception):
    """Admin API or settings problem (exit 2)."""


# --------------------------------------------------------------------------
# Gateway admin API


def expand_addresses(url: str) -> list[str]:
    """The URL once per address its host resolves to (IPv4 and IPv6)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname
    if host is None:
        raise CutoverError(f"no host in {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise CutoverError(f"cannot resolve {host}: {e}") from e
    urls = []
    for info in infos:
        addr = info[4][0]
        netloc = f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"
        u = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path,
                                     "", ""))
        if u not in urls:
            urls.append(u)
    return urls


class Gateway:
    """One gateway process: its admin API and /metrics."""

    def __init__(self, url: str, token: str | None, timeout: float = 5.0):
        self.url = url.rstrip("/")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.client = httpx.Client(base_url=self.url, headers=headers,
                                   timeout=timeout)

    def close(self) -> None:
        self.client.close()

    def _check(self, r: httpx.Response, what: str) -> dict:
        if r.status_code != 200:
            detail = r.text.strip().replace("\n", " ")[:300]
            raise CutoverError(f"{self.url}: {what}: HTTP {r.status_code} "
                               f"{detail}")
        try:
            return r.json()
        except ValueError as e:
            raise CutoverError(f"{self.url}: {what}: not JSON") from e

    def upstream(self, name: str) -> dict:
        try:
            r = self.client.get(f"/admin/upstreams/{name}")
        except httpx.HTTPError as e:
            raise CutoverError(f"{self.url}: GET upstream {name}: {e}") from e
        return self._check(r, f"GET /admin/upstreams/{name}")

    def set_pool(self, name: str, weights: dict[str, int],
                 targets: dict[str, list[str]] | None = None) -> dict:
        body: dict = {"weights": weights}
        if targets:
            body["targets"] = targets
        try:
            r = self.client.put(f"/admin/upstreams/{name}", json=body)
        except httpx.HTTPError as e:
            raise CutoverError(f"{self.url}: PUT upstream {name}: {e}") from e
        state = self._check(r, f"PUT /admin/upstreams/{name}")
        got = {c: state.get("colors", {}).get(c, {}).get("weight")
               for c in weights}
        if got != weights:
            raise CutoverError(f"{self.url}: PUT {name} answered weights "
                               f"{got}, wanted {weights}")
        return state

    def stats(self, upstream: str) -> dict[str, ColorStats]:
        try:
            r = self.client.get("/metrics", headers={"Accept": "text/plain"})
        except httpx.HTTPError as e:
            raise CutoverError(f"{self.url}: GET /metrics: {e}") from e
        if r.status_code != 200:
            raise CutoverError(f"{self.url}: GET /metrics: HTTP "
                               f"{r.status_code}")
        return colour_stats(parse_metrics(r.text), upstream)


def weights_of(state: dict) -> dict[str, int]:
    return {c: int(state.get("colors", {}).get(c, {}).get("weight", 0))
            for c in COLORS}


def other(color: str) -> str:
    return "blue" if color == "green" else "green"


# --------------------------------------------------------------------------
# The cutover


class Interrupted(Exception):
    pass


@dataclass
class Settings:
    service: str
    new: str
    steps: list[int]
    window: float
    interval: float
    thresholds: Thresholds
    targets: list[str] | None = None
    routes_file: Path | None = None
    health_wait: float = 30.0


class Cutover:
    def __init__(self, gateways: list[Gateway], s: Settings,
                 out: Callable[[str], None] = print,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.gws = gateways
        self.s = s
        self.old = other(s.new)
        self.out = out
        self.clock = clock
        self.sleep = sleep
        self.moved = False
        self.history: list[str] = []

    def say(self, msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        self.history.append(line)
        self.out(line)

    def set_weights(self, new_w: int) -> None:
        weights = {self.s.new: new_w, self.old: 100 - new_w}
        # Marked before the calls: a gateway may take the weights even
        # when a later one fails, and then all of them get rolled back.
        self.moved = self.moved or new_w > 0
        for gw in self.gws:
            gw.set_pool(self.s.service, weights)
        self.say(f"{self.s.service}: {self.s.new} {new_w}% / {self.old} "
                 f"{100 - new_w}%")

    def rollback(self) -> bool:
        """new=0, old=100 on every gateway; False when any failed."""
        ok = True
        for gw in self.gws:
            try:
                gw.set_pool(self.s.service, {self.s.new: 0, self.old: 100})
            except CutoverError as e:
                ok = False
                self.say(f"ROLLBACK FAILED on {gw.url}: {e}")
        if ok:
            self.say(f"rolled back: {self.s.service} {self.old} 100% / "
                     f"{self.s.new} 0%")
        return ok

    def scrape(self) -> dict[str, ColorStats]:
        total = {c: ColorStats() for c in COLORS}
        for gw in self.gws:
            st = gw.stats(self.s.service)
            for c in COLORS:
                total[c] = total[c].plus(st[c])
        return total

    def preflight(self) -> None:
        """The new colour has targets, and at least one healthy (waiting
        up to health_wait for the gateway's health checks to see it)."""
        svc, new = self.s.service, self.s.new
        for gw in self.gws:
            if self.s.targets:
                state = gw.upstream(svc)
                if weights_of(state)[new] != 0:
                    raise CutoverError(
                        f"{gw.url}: {svc} {new} has weight "
                        f"{weights_of(state)[new]}: not replacing the "
                        "targets of a colour that takes traffic")
                gw.set_pool(svc, weights_of(state), {new: self.s.targets})
            deadline = self.clock() + self.s.health_wait
            while True:
                state = gw.upstream(svc)
                col = state.get("colors", {}).get(new)
                targets = (col or {}).get("targets") or []
                if not targets:
                    raise CutoverError(f"{gw.url}: {svc} has no {new} "
                                       "targets (set them with --targets)")
                healthy = [t for t in targets if t.get("healthy", True)
                           and t.get("breaker", "closed") != "open"]
                if healthy:
                    break
                if self.clock() >= deadline:
                    urls = ", ".join(t.get("url", "?") for t in targets)
                    raise CutoverError(f"{gw.url}: no healthy {new} target "
                                       f"of {svc} after "
                                       f"{self.s.health_wait:g}s ({urls})")
                self.sleep(0.5)
            w = weights_of(state)
            self.say(f"{gw.url}: {svc} now {self.old} {w[self.old]}% / "
                     f"{new} {w[new]}%; {new} targets: "
                     + ", ".join(t.get("url", "?") for t in targets))

    def watch_step(self, step: int, baseline: ColorStats | None
                   ) -> tuple[Verdict, ColorStats, ColorStats]:
        th = self.s.thresholds
        start = self.scrape()
        t0 = self.clock()
        deadline = t0 + self.s.window
        while True:
            now = self.clock()
            self.sleep(max(0.0, min(self.s.interval, deadline - now)))
            cur = self.scrape()
            new = cur[self.s.new].minus(start[self.s.new])
            old = cur[self.old].minus(start[self.old])
            v = analyse(new, old, th, baseline)
            self.say(f"  {step:3d}% {self.clock() - t0:5.1f}s  "
                     f"{self.s.new}: {new.requests:.0f} req, "
                     f"{new.error_rate:.2%} 5xx, p99 "
                     f"{fmt_ms(new.quantile(0.99))} | {self.old}: "
                     f"{old.requests:.0f} req, {old.error_rate:.2%} 5xx, "
                     f"p99 {fmt_ms(old.quantile(0.99))}")
            if not v.ok:
                return v, new, old
            if self.clock() >= deadline:
                if not v.enough:
                    v = Verdict(False, False, [
                        f"{self.s.new} served {new.requests:.0f} requests "
                        f"in {self.s.window:g}s, fewer than "
                        f"--min-requests {th.min_requests}: not enough "
                        f"traffic to judge"])
                return v, new, old

    def run(self) -> int:
        s = self.s
        self.say(f"cutover {s.service} -> {s.new}: steps "
                 f"{','.join(map(str, s.steps))}%, window {s.window:g}s, "
                 f"max error rate {s.thresholds.max_error_rate:.2%}, "
                 f"max p99 {fmt_ms(s.thresholds.max_p99)}")
        self.preflight()
        baseline: ColorStats | None = None
        for step in s.steps:
            self.set_weights(step)
            verdict, _new, old = self.watch_step(step, baseline)
            if not verdict.ok:
                self.say(f"step {step}% FAILED: " + "; ".join(
                    verdict.reasons))
                if not self.rollback():
                    return 3
                self.report(False, step, verdict.reasons)
                return 1
            self.say(f"step {step}% passed")
            if old.requests >= max(1, s.thresholds.min_requests):
                baseline = old
        self.say(f"cutover complete: {s.service} {s.new} 100% / {self.old} "
                 f"0% ({self.old} idle; `deploy/cutover --rollback "
                 f"{s.service} {s.new}` moves back)")
        if s.routes_file is not None:
            persist_weights(s.routes_file, s.service,
                            {s.new: 100, self.old: 0})
            self.say(f"wrote the new weights to {s.routes_file}")
        self.report(True, 100, [])
        return 0

    def report(self, ok: bool, step: int, reasons: list[str]) -> None:
        s = self.s
        lines = ["", "cutover report", "--------------",
                 f"service:  {s.service}",
                 f"new:      {s.new}", f"old:      {self.old}",
                 f"result:   {'SUCCESS' if ok else 'ROLLED BACK'}"]
        if not ok:
            lines.append(f"failed at step: {step}%")
            lines.extend(f"reason:   {r}" for r in reasons)
        final = {s.new: 100, self.old: 0} if ok else {s.new: 0, self.old: 100}
        lines.append("weights:  " + json.dumps(final))
        if ok:
            lines.append("persist:  set these weights in the gateway routes "
                         "file so a restarted gateway keeps them")
        self.out("\n".join(lines))


def persist_weights(path: Path, service: str, weights: dict[str, int]
                    ) -> None:
    """Writes the weights into a routes file's pool (pretty-printed)."""
    doc = json.loads(path.read_text())
    pool = doc.get("upstreams", {}).get(service)
    if not isinstance(pool, dict):
        raise CutoverError(f"{path}: no upstream {service!r}")
    for color, w in weights.items():
        if color in pool:
            pool[color]["weight"] = w
        elif w:
            raise CutoverError(f"{path}: {service} has no {color} pool")
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)


def do_rollback(gws: list[Gateway], service: str, undo: str | None,
                out: Callable[[str], None], force: bool = False) -> int:
    """Undoes a cutover to `undo` (the colour it moved traffic to): all
    traffic to the other colour on every gateway. Without `undo` it
    flips: the colour with less weight on the first gateway (the one the
    last cutover left idle) gets everything. The colour taking the
    traffic must have a healthy target unless `force`."""
    state = gws[0].upstream(service)
    w = weights_of(state)
    if undo is None:
        if w["blue"] == w["green"]:
            raise CutoverError(f"{service} is split {w}: say which colour's "
                               "release to undo")
        to = "blue" if w["blue"] < w["green"] else "green"
    else:
        to = other(undo)
    targets = state.get("colors", {}).get(to, {}).get("targets") or []
    if not targets:
        raise CutoverError(f"{service} has no {to} targets to roll back to")
    healthy = [t for t in targets if t.get("healthy", True)
               and t.get("breaker", "closed") != "open"]
    if not healthy and not force:
        raise CutoverError(f"no healthy {to} target of {service}: not "
                           "moving traffic there (--force to do it anyway)")
    weights = {to: 100, other(to): 0}
    for gw in gws:
        gw.set_pool(service, weights)
        out(f"{gw.url}: {service} {to} 100% / {other(to)} 0% (was "
            f"{w['blue']}/{w['green']} blue/green)")
    return 0


# --------------------------------------------------------------------------
# Command line


def parse_steps(text: str) -> list[int]:
    try:
        steps = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"bad --steps {text!r}") from e
    if not steps or steps[-1] != 100 or any(
            not 0 < s <= 100 for s in steps) or steps != sorted(set(steps)):
        raise argparse.ArgumentTypeError(
            "--steps: increasing percentages in 1..100 ending with 100")
    return steps


def admin_token(args: argparse.Namespace) -> str | None:
    if args.admin_token:
        return args.admin_token
    for var in ("BASALT_ADMIN_TOKEN", "ADMIN_TOKEN"):
        if os.environ.get(var):
            return os.environ[var]
    for f in (args.admin_token_file, os.environ.get("ADMIN_TOKEN_FILE")):
        if f and not Path(f).is_file():
            raise CutoverError(f"admin token file {f} not found")
    files = [args.admin_token_file, os.environ.get("ADMIN_TOKEN_FILE")]
    run_dir = Path(os.environ.get("BASALT_RUN_DIR", REPO / ".run"))
    files.append(str(run_dir / "secrets" / "admin_token"))
    for f in files:
        if f and Path(f).is_file():
            return Path(f).read_text().strip()
    return None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deploy/cutover",
        description="Move a service's gateway traffic to a new colour in "
        "steps, with metric analysis and automatic rollback.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("service", help="upstream pool name, e.g. platform")
    p.add_argument("color", nargs="?", choices=COLORS,
                   help="the new colour (with --rollback: the colour whose "
                   "release to undo; all traffic goes to the other one)")
    p.add_argument("--rollback", action="store_true",
                   help="move all traffic back at once and exit; without "
                   "COLOR it flips to the colour with less weight")
    p.add_argument("--force", action="store_true",
                   help="with --rollback: even when the target colour has "
                   "no healthy target")
    p.add_argument("--gateway", action="append", default=None,
                   help="gateway base URL; repeat for every replica "
                   "(default $BASALT_GATEWAY_URL or http://127.0.0.1:8080)")
    p.add_argument("--each-address", action="store_true",
                   help="use every address the gateway host resolves to "
                   "(a headless Service lists every replica)")
    p.add_argument("--admin-token", help="bearer for /admin (default "
                   "$BASALT_ADMIN_TOKEN, $ADMIN_TOKEN, $ADMIN_TOKEN_FILE, "
                   "then .run/secrets/admin_token)")
    p.add_argument("--admin-token-file")
    p.add_argument("--steps", type=parse_steps, default=[10, 50, 100],
                   help="comma list of the new colour's weights")
    p.add_argument("--window", type=float, default=60.0,
                   help="analysis window per step, seconds")
    p.add_argument("--interval", type=float, default=5.0,
                   help="metrics poll period, seconds")
    p.add_argument("--max-error-rate", type=float, default=0.01,
                   help="new colour's 5xx share limit")
    p.add_argument("--max-error-rate-increase", type=float, default=0.005,
                   help="allowed excess over the old colour's 5xx share")
    p.add_argument("--max-p99", type=float, default=1.0,
                   help="new colour's p99 limit, seconds")
    p.add_argument("--max-p99-ratio", type=float, default=1.5,
                   help="new p99 limit relative to the old colour's")
    p.add_argument("--p99-slack", type=float, default=0.05,
                   help="seconds added to the relative p99 limit")
    p.add_argument("--min-requests", type=int, default=20,
                   help="requests the new colour must serve per window")
    p.add_argument("--targets",
                   help="comma list of URLs to set as the new colour's "
                   "targets before starting")
    p.add_argument("--routes-file", type=Path,
                   help="on success, write the final weights into this "
                   "routes file (e.g. k8s/base/gateway/routes.json)")
    p.add_argument("--health-wait", type=float, default=30.0,
                   help="seconds to wait for a healthy new-colour target")
    p.add_argument("--timeout", type=float, default=5.0,
                   help="per admin/metrics request, seconds")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = lambda m: print(m, flush=True)  # noqa: E731
    urls = args.gateway or [os.environ.get("BASALT_GATEWAY_URL",
                                           "http://127.0.0.1:8080")]
    gws: list[Gateway] = []
    try:
        if args.each_address:
            urls = [u for url in urls for u in expand_addresses(url)]
        token = admin_token(args)
        if token is None:
            out("cutover: warning: no admin token (see --admin-token)")
        gws = [Gateway(u, token, args.timeout) for u in urls]
        if args.rollback:
            return do_rollback(gws, args.service, args.color, out,
                               args.force)
        if args.color is None:
            raise CutoverError("say the new colour (blue or green)")
        settings = Settings(
            service=args.service, new=args.color, steps=args.steps,
            window=args.window, interval=max(0.05, args.interval),
            thresholds=Thresholds(
                max_error_rate=args.max_error_rate,
                max_error_rate_increase=args.max_error_rate_increase,
                max_p99=args.max_p99, max_p99_ratio=args.max_p99_ratio,
                p99_slack=args.p99_slack, min_requests=args.min_requests),
            targets=[t.strip() for t in args.targets.split(",") if t.strip()]
            if args.targets else None,
            routes_file=args.routes_file, health_wait=args.health_wait)
        return run_with_rollback(Cutover(gws, settings, out=out))
    except CutoverError as e:
        print(f"cutover: error: {e}", file=sys.stderr, flush=True)
        return 2
    finally:
        for gw in gws:
            gw.close()


def run_with_rollback(c: Cutover) -> int:
    """Runs the cutover; an API error or Ctrl-C after traffic moved rolls
    back before exiting."""
    def on_signal(signum, frame):
        raise Interrupted()
    prev_int = signal.signal(signal.SIGINT, on_signal)
    prev_term = signal.signal(signal.SIGTERM, on_signal)
    try:
        return c.run()
    except (CutoverError, Interrupted) as e:
        interrupted = isinstance(e, Interrupted)
        if not c.moved and not interrupted:
            raise   # nothing to undo: main() reports it
        msg = "interrupted" if interrupted else f"error: {e}"
        c.say(f"cutover {msg}")
        if c.moved and not c.rollback():
            return 3
        if c.moved:
            c.report(False, -1, [msg])
        return 130 if interrupted else 2
    finally:
        signal.signal(signal.SIGINT, prev_int)
        signal.signal(signal.SIGTERM, prev_term)


if __name__ == "__main__":
    sys.exit(main())
