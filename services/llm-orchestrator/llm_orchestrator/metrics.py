"""Prometheus metrics of the orchestrator (one registry per app)."""

from __future__ import annotations

from basalt_common.edge import HttpMetrics
from prometheus_client import CollectorRegistry, Counter, Histogram

BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10,
           30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.http = HttpMetrics(r, BUCKETS)
        self.completions = Counter(
            "llm_completions_total", "Chat completions by outcome",
            ["provider", "model", "status", "stream"], registry=r)
        self.attempts = Counter(
            "llm_upstream_attempts_total", "Calls to providers by outcome",
            ["provider", "outcome"], registry=r)
        self.tokens = Counter(
            "llm_tokens_total", "Tokens used, as reported by providers",
            ["provider", "model", "kind"], registry=r)
        self.ttft = Histogram(
            "llm_time_to_first_token_seconds",
            "Request start to first content token", ["provider"],
            buckets=BUCKETS, registry=r)
        self.tool_calls = Counter(
            "llm_tool_calls_total", "Tool calls run through MCP",
            registry=r)
        self.budget_refusals = Counter(
            "llm_budget_refusals_total", "Requests refused by a budget",
            ["limit"], registry=r)
        self.analytics_dropped = Counter(
            "llm_analytics_events_dropped_total",
            "llm_completion events not delivered", ["reason"], registry=r)
