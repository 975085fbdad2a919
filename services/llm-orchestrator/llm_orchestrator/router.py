"""Model aliases → ordered targets; retries with back-off, then fallback.

A target is (provider, model). For each target in order the call is tried
up to 1 + LLM_RETRIES times while it fails in a retryable way (429, 5xx,
timeout, broken connection; a Retry-After header is honoured up to the
back-off cap), then the next target is tried. A provider that refuses the
credentials or does not know the model (401/403/404) is skipped at once.
Any other 4xx means the request itself is wrong: it is returned as is.
A stream counts as opened once its first chunk arrived: after that,
failures are reported inside the stream, never retried (the client may
already have seen tokens).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client import Counter

from .providers import Provider, UpstreamError

log = logging.getLogger("llm.router")
T = TypeVar("T")


@dataclass(frozen=True)
class Target:
    provider: Provider
    model: str

    @property
    def label(self) -> str:
        return f"{self.provider.name}/{self.model}"


class ModelNotFound(Exception):
    pass


class Router:
    def __init__(self, providers: dict[str, Provider],
                 aliases: dict[str, list[str]], retries: int,
                 backoff_ms: int, backoff_max_ms: int,
                 attempts: Counter) -> None:
        self.providers = providers
        self.aliases = aliases
        self.retries = retries
        self.backoff_s = backoff_ms / 1000
        self.backoff_max_s = backoff_max_ms / 1000
        self.attempts = attempts

    def model_ids(self) -> list[tuple[str, str]]:
        """(id, owner) of every name /v1/models lists."""
        out = [(a, "alias") for a in sorted(self.aliases)]
        for p in self.providers.values():
            out += [(f"{p.name}/{m}", p.name) for m in p.cfg.models]
        return out

    def resolve(self, model: str) -> list[Target]:
        if model in self.aliases:
            return [Target(self.providers[t.split("/", 1)[0]],
                           t.split("/", 1)[1]) for t in self.aliases[model]]
        prov, sep, name = model.partition("/")
        if sep and prov in self.providers and name:
            return [Target(self.providers[prov], name)]
        # A bare model name: every provider that lists it, in config order.
        hits = [Target(p, model) for p in self.providers.values()
                if model in p.cfg.models]
        if hits:
            return hits
        raise ModelNotFound(model)

    def _delay(self, attempt: int, err: UpstreamError) -> float:
        d: float = min(self.backoff_max_s, self.backoff_s * 2.0 ** attempt)
        d *= random.uniform(0.8, 1.2)
        if err.retry_after is not None:
            d = max(d, min(err.retry_after, self.backoff_max_s))
        return d

    async def run(self, targets: list[Target],
                  call: Callable[[Target], Awaitable[T]]) -> tuple[Target, T]:
        last: UpstreamError | None = None
        for t in targets:
            for attempt in range(self.retries + 1):
                try:
                    res = await call(t)
                    self.attempts.labels(t.provider.name, "ok").inc()
                    return t, res
                except UpstreamError as e:
                    last = e
                    outcome = ("retryable" if e.retryable
                               else f"http_{e.status}")
                    self.attempts.labels(t.provider.name, outcome).inc()
                    log.warning("upstream attempt failed", extra={
                        "target": t.label, "attempt": attempt + 1,
                        "status": e.status, "error": str(e)})
                    if e.retryable and attempt < self.retries:
                        await asyncio.sleep(self._delay(attempt, e))
                        continue
                    if e.retryable or e.status in (401, 403, 404):
                        break
                    raise
        assert last is not None
        raise last

    async def complete(self, targets: list[Target],
                       body: dict[str, Any]) -> tuple[Target, dict[str, Any]]:
        async def call(t: Target) -> dict[str, Any]:
            return await t.provider.complete({**body, "model": t.model})
        return await self.run(targets, call)

    async def open_stream(self, targets: list[Target], body: dict[str, Any]
                          ) -> tuple[Target, tuple[dict[str, Any],
                                                   AsyncIterator[
                                                       dict[str, Any]]]]:
        """The first target whose stream produced a first chunk: that
        chunk and the rest of the stream."""
        async def call(t: Target) -> tuple[dict[str, Any],
                                           AsyncIterator[dict[str, Any]]]:
            opts = dict(body.get("stream_options") or {})
            opts["include_usage"] = True
            agen = t.provider.stream({**body, "model": t.model,
                                      "stream": True,
                                      "stream_options": opts})
            try:
                first = await agen.__anext__()
            except StopAsyncIteration:
                raise UpstreamError(502, "upstream closed the stream "
                                    "without a chunk", True) from None
            except BaseException:
                await _aclose(agen)
                raise
            return first, agen
        return await self.run(targets, call)


async def _aclose(agen: AsyncIterator[Any]) -> None:
    close = getattr(agen, "aclose", None)
    if close is not None:
        await close()
