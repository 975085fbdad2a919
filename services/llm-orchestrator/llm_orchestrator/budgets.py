"""Per-user budgets in Redis, shared by every replica.

Fixed windows per minute and per (UTC) day: `llm:b:{user}:{kind}:{window}`
where kind is r (requests) or t (tokens). A request first takes one unit
of each request budget (INCR; given back when any budget refuses it) and
is refused while the tokens already used in a window reach the limit;
tokens are added when the completion ends (usage reported by the model).
Redis down → budgets are not enforced (logged, counted): they protect
cost, not correctness, and Redis only holds what may be lost.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("llm.budgets")


@dataclass
class Limits:
    rpm: int
    rpd: int
    tpm: int
    tpd: int


@dataclass
class Refusal:
    limit: str
    retry_after: int


class Budgets:
    def __init__(self, client: aioredis.Redis | None, limits: Limits) -> None:
        self.r = client
        self.limits = limits

    @staticmethod
    def _windows(now: float) -> tuple[int, int]:
        return int(now // 60), int(now // 86400)

    async def admit(self, user: str) -> Refusal | None:
        """None when the request may run, else which limit refused it."""
        lim = self.limits
        if self.r is None or not (lim.rpm or lim.rpd or lim.tpm or lim.tpd):
            return None
        now = time.time()
        m, d = self._windows(now)
        rm, rd = f"llm:b:{user}:r:m{m}", f"llm:b:{user}:r:d{d}"
        tm, td = f"llm:b:{user}:t:m{m}", f"llm:b:{user}:t:d{d}"
        try:
            async with self.r.pipeline(transaction=True) as p:
                p.incr(rm)
                p.expire(rm, 120)
                p.incr(rd)
                p.expire(rd, 90000)
                p.get(tm)
                p.get(td)
                res = await p.execute()
        except (RedisError, OSError) as e:
            log.warning("budgets not enforced: redis error",
                        extra={"error": str(e)})
            return None
        reqs_m, reqs_d = int(res[0]), int(res[2])
        tok_m, tok_d = int(res[4] or 0), int(res[5] or 0)
        until_m = int(60 - now % 60) + 1
        until_d = int(86400 - now % 86400) + 1
        refusal = None
        if lim.rpd and reqs_d > lim.rpd:
            refusal = Refusal("requests_per_day", until_d)
        elif lim.tpd and tok_d >= lim.tpd:
            refusal = Refusal("tokens_per_day", until_d)
        elif lim.rpm and reqs_m > lim.rpm:
            refusal = Refusal("requests_per_minute", until_m)
        elif lim.tpm and tok_m >= lim.tpm:
            refusal = Refusal("tokens_per_minute", until_m)
        if refusal is not None:
            try:
                async with self.r.pipeline(transaction=True) as p:
                    p.decr(rm)
                    p.decr(rd)
                    await p.execute()
            except (RedisError, OSError):
                pass
        return refusal

    async def spend(self, user: str, tokens: int) -> None:
        if self.r is None or tokens <= 0:
            return
        m, d = self._windows(time.time())
        tm, td = f"llm:b:{user}:t:m{m}", f"llm:b:{user}:t:d{d}"
        try:
            async with self.r.pipeline(transaction=True) as p:
                p.incrby(tm, tokens)
                p.expire(tm, 120)
                p.incrby(td, tokens)
                p.expire(td, 90000)
                await p.execute()
        except (RedisError, OSError) as e:
            log.warning("token spend not recorded: redis error",
                        extra={"error": str(e)})
