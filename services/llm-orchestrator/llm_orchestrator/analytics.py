"""`llm_completion` analytics events, sent in the background.

Best effort and never on the request path: events go into a bounded
queue that one task drains to the platform's POST /analytics/events
(PLATFORM_URL), identified as the user with X-Internal-Token + X-User-Id
(or the user's own bearer token when no internal token is configured).
A full queue or a failed POST drops the event (logged and counted).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import httpx
from prometheus_client import Counter

log = logging.getLogger("llm.analytics")


class Analytics:
    def __init__(self, platform_url: str, internal_token: str,
                 dropped: Counter, max_queue: int = 10000) -> None:
        self.url = platform_url + "/analytics/events" if platform_url else ""
        self.token = internal_token
        self.dropped = dropped
        self.queue: asyncio.Queue[tuple[dict[str, str], dict[str, Any]]] = (
            asyncio.Queue(max_queue))
        self.task: asyncio.Task[None] | None = None
        self.client: httpx.AsyncClient | None = None

    def start(self) -> None:
        if self.url:
            self.client = httpx.AsyncClient(timeout=10.0)
            self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            # Give queued events a moment to leave, then stop.
            try:
                await asyncio.wait_for(self.queue.join(), 2.0)
            except TimeoutError:
                pass
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        if self.client is not None:
            await self.client.aclose()

    def record(self, user_id: str, authorization: str,
               properties: dict[str, Any]) -> None:
        if not self.url:
            return
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["X-Internal-Token"] = self.token
            headers["X-User-Id"] = user_id
        elif authorization:
            headers["Authorization"] = authorization
        else:
            self.dropped.labels("no_identity").inc()
            return
        event = {"event": "llm_completion", "distinct_id": user_id,
                 "message_id": str(uuid.uuid4()), "properties": properties}
        try:
            self.queue.put_nowait((headers, event))
        except asyncio.QueueFull:
            self.dropped.labels("queue_full").inc()

    async def _run(self) -> None:
        assert self.client is not None
        while True:
            headers, event = await self.queue.get()
            try:
                r = await self.client.post(self.url, json=event,
                                           headers=headers)
                if r.status_code >= 300:
                    self.dropped.labels(f"http_{r.status_code}").inc()
                    log.warning("analytics event refused",
                                extra={"status": r.status_code,
                                       "body": r.text[:200]})
            except httpx.HTTPError as e:
                self.dropped.labels("unreachable").inc()
                log.warning("analytics event not sent",
                            extra={"error": type(e).__name__})
            finally:
                self.queue.task_done()
