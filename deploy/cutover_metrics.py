"""Metric analysis for deploy/cutover: the Prometheus text format, the
gateway's per-colour counters and latency histogram, and the rules that
judge a new colour against thresholds and against the old colour."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

COLORS = ("blue", "green")
# Metric names: the contract's names first, then the gateway's first-cut
# names, so the tool reads either.
REQUEST_FAMILIES = ("gateway_requests_total",
                    "gateway_upstream_requests_total")
DURATION_FAMILIES = ("gateway_request_duration_seconds",
                     "gateway_upstream_duration_seconds")


# --------------------------------------------------------------------------
# Prometheus text format


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

    def label(self, key: str) -> str | None:
        for k, v in self.labels:
            if k == key:
                return v
        return None


def _parse_labels(text: str) -> tuple[tuple[str, str], ...]:
    """`a="x",b="y\\"z"` -> (("a","x"),("b",'y"z'))."""
    out = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " ,":
            i += 1
        if i >= n:
            break
        eq = text.index("=", i)
        key = text[i:eq].strip()
        i = eq + 1
        if i >= n or text[i] != '"':
            raise ValueError(f"bad label value near {text[i:i + 20]!r}")
        i += 1
        val = []
        while i < n and text[i] != '"':
            if text[i] == "\\" and i + 1 < n:
                nxt = text[i + 1]
                val.append({"n": "\n", "\\": "\\", '"': '"'}.get(nxt, nxt))
                i += 2
                continue
            val.append(text[i])
            i += 1
        if i >= n:
            raise ValueError("unterminated label value")
        i += 1
        out.append((key, "".join(val)))
    return tuple(out)


def parse_metrics(text: str) -> list[Sample]:
    """Samples of a Prometheus text exposition (comments skipped)."""
    samples = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name, rest = line.split("{", 1)
            close = rest.rindex("}")
            labels = _parse_labels(rest[:close])
            value_part = rest[close + 1:].split()
        else:
            parts = line.split()
            name, labels, value_part = parts[0], (), parts[1:]
        if not value_part:
            continue
        try:
            value = float(value_part[0])
        except ValueError:
            continue
        samples.append(Sample(name.strip(), labels, value))
    return samples


# --------------------------------------------------------------------------
# Per-colour statistics


@dataclass
class ColorStats:
    """Cumulative counters of one colour of one upstream (or a delta)."""
    requests: float = 0.0
    errors: float = 0.0
    # upper bound (float, inf for +Inf) -> cumulative count
    buckets: dict[float, float] = field(default_factory=dict)

    def minus(self, older: ColorStats) -> ColorStats:
        """self - older; a counter that went down (gateway restart) counts
        from zero."""
        if self.requests < older.requests:
            return ColorStats(self.requests, self.errors, dict(self.buckets))
        buckets = {le: max(0.0, c - older.buckets.get(le, 0.0))
                   for le, c in self.buckets.items()}
        return ColorStats(self.requests - older.requests,
                          max(0.0, self.errors - older.errors), buckets)

    def plus(self, other: ColorStats) -> ColorStats:
        buckets = dict(self.buckets)
        for le, c in other.buckets.items():
            buckets[le] = buckets.get(le, 0.0) + c
        return ColorStats(self.requests + other.requests,
                          self.errors + other.errors, buckets)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests > 0 else 0.0

    def quantile(self, q: float) -> float | None:
        return histogram_quantile(q, self.buckets)


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus-style quantile from cumulative buckets: linear
    interpolation inside the bucket holding the rank; a rank in the +Inf
    bucket answers the highest finite bound. None without observations."""
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if math.isinf(le):
                finite = [b for b in bounds if not math.isinf(b)]
                return finite[-1] if finite else None
            if count == prev_count:
                return le
            return prev_bound + (le - prev_bound) * (
                (rank - prev_count) / (count - prev_count))
        prev_bound, prev_count = le, count
    return bounds[-1]


def colour_stats(samples: Iterable[Sample], upstream: str
                 ) -> dict[str, ColorStats]:
    """Per-colour counters of `upstream` from one /metrics scrape, summed
    over the other labels (route, method)."""
    samples = list(samples)
    names = {s.name for s in samples}
    req_family = next((f for f in REQUEST_FAMILIES if f in names), None)
    dur_family = next((f for f in DURATION_FAMILIES
                       if f + "_bucket" in names), None)
    out = {c: ColorStats() for c in COLORS}
    for s in samples:
        if s.label("upstream") != upstream:
            continue
        color = s.label("color")
        if color not in out:
            continue
        st = out[color]
        if req_family is not None and s.name == req_family:
            st.requests += s.value
            status = s.label("status") or ""
            if status.startswith("5"):
                st.errors += s.value
        elif dur_family is not None and s.name == dur_family + "_bucket":
            le_text = s.label("le")
            if le_text is None:
                continue
            le = math.inf if le_text in ("+Inf", "Inf") else float(le_text)
            st.buckets[le] = st.buckets.get(le, 0.0) + s.value
    return out


# --------------------------------------------------------------------------
# Analysis


@dataclass
class Thresholds:
    max_error_rate: float = 0.01
    max_error_rate_increase: float = 0.005
    max_p99: float = 1.0
    max_p99_ratio: float = 1.5
    p99_slack: float = 0.05
    min_requests: int = 20


@dataclass
class Verdict:
    ok: bool            # no breach so far
    enough: bool        # the new colour served min_requests
    reasons: list[str]


def fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f}ms"


def analyse(new: ColorStats, old: ColorStats, th: Thresholds,
            old_baseline: ColorStats | None = None) -> Verdict:
    """Judges the new colour's window. `old` is the old colour in the same
    window; when it served too little (e.g. at 100 %), `old_baseline` (the
    old colour in the previous step) stands in for the comparisons."""
    enough = new.requests >= max(1, th.min_requests)
    reasons: list[str] = []
    if not enough:
        return Verdict(True, False, reasons)
    ref = old
    if old.requests < max(1, th.min_requests) and old_baseline is not None:
        ref = old_baseline
    have_ref = ref.requests >= max(1, th.min_requests)

    rate = new.error_rate
    if rate > th.max_error_rate:
        reasons.append(f"error rate {rate:.2%} > max {th.max_error_rate:.2%}"
                       f" ({new.errors:.0f}/{new.requests:.0f})")
    elif have_ref and rate - ref.error_rate > th.max_error_rate_increase:
        reasons.append(
            f"error rate {rate:.2%} exceeds the old colour's "
            f"{ref.error_rate:.2%} by more than "
            f"{th.max_error_rate_increase:.2%}")

    p99 = new.quantile(0.99)
    if p99 is not None:
        if p99 > th.max_p99:
            reasons.append(f"p99 {fmt_ms(p99)} > max {fmt_ms(th.max_p99)}")
        elif have_ref:
            ref_p99 = ref.quantile(0.99)
            if ref_p99 is not None:
                limit = ref_p99 * th.max_p99_ratio + th.p99_slack
                if p99 > limit:
                    reasons.append(
                        f"p99 {fmt_ms(p99)} > old colour's "
                        f"{fmt_ms(ref_p99)} x {th.max_p99_ratio:g} + "
                        f"{fmt_ms(th.p99_slack)}")
    return Verdict(not reasons, True, reasons)
