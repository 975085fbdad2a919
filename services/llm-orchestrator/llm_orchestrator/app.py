"""FastAPI application: /v1/chat/completions, /v1/models, ops endpoints."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import redis.asyncio as aioredis
from basalt_common import logs
from basalt_common.edge import Exchange
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from .analytics import Analytics
from .auth import Authenticator, AuthError, Identity
from .budgets import Budgets, Limits
from .chat import Chat, with_keepalive
from .metrics import Metrics
from .models import (
    ChatRequest,
    ErrorBody,
    ErrorDetail,
    Health,
    ModelCard,
    ModelList,
)
from .providers import GeminiProvider, OpenAIProvider, Provider, UpstreamError
from .router import ModelNotFound, Router
from .settings import Settings
from .tools import PlatformTools, ToolsUnavailable

log = logging.getLogger("llm")
# Fire-and-forget tasks, referenced until done (asyncio keeps weak refs).
_background: set[asyncio.Future[None]] = set()
ROUTES = {"/v1/chat/completions", "/v1/models", "/healthz", "/readyz",
          "/metrics"}


def err(status: int, code: str, message: str,
        headers: dict[str, str] | None = None, type_: str | None = None,
        field: str | None = None) -> JSONResponse:
    kind = type_ or ("invalid_request_error" if status < 500
                     else "api_error")
    body = ErrorBody(error=ErrorDetail(
        code=code, message=message, request_id=logs.request_id_var.get(),
        type=kind, field=field))
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status,
                        headers=headers)


class Edge:
    """Request id, JSON access log and HTTP metrics (pure ASGI, so
    streaming responses stay streaming)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.m = metrics

    async def __call__(self, scope: Scope, receive: Receive,
                       send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ex = Exchange(scope, send)
        route = ex.path if ex.path in ROUTES else "other"
        try:
            await self.app(scope, receive, ex.send)
        finally:
            ex.finish(self.m.http, route, log)


class State:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        cfg = settings.providers()
        token = settings.token()
        self.auth = Authenticator(token, settings.public_key(),
                                  settings.jwt_issuer, settings.jwt_audience)
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.llm_timeout_s,
                                  connect=settings.llm_connect_timeout_s),
            limits=httpx.Limits(max_connections=512,
                                max_keepalive_connections=128))
        providers: dict[str, Provider] = {}
        for p in cfg.providers:
            key = p.api_key
            if not key and p.api_key_env:
                key = os.environ.get(p.api_key_env, "")
            if p.type == "gemini":
                providers[p.name] = GeminiProvider(p, self.http, key)
            else:
                providers[p.name] = OpenAIProvider(p, self.http, key)
        self.router = Router(providers, cfg.aliases, settings.llm_retries,
                             settings.llm_backoff_ms,
                             settings.llm_backoff_max_ms, metrics.attempts)
        self.redis: aioredis.Redis | None = (
            aioredis.Redis.from_url(settings.redis_url,
                                    socket_timeout=2.0,
                                    socket_connect_timeout=2.0)
            if settings.redis_url else None)
        self.budgets = Budgets(self.redis, Limits(
            settings.llm_user_rpm, settings.llm_user_rpd,
            settings.llm_user_tpm, settings.llm_user_tpd))
        self.analytics = Analytics(settings.platform_url, token,
                                   metrics.analytics_dropped)

    async def close(self) -> None:
        await self.analytics.stop()
        await self.http.aclose()
        if self.redis is not None:
            await self.redis.aclose()


def create_app(settings: Settings) -> ASGIApp:
    metrics = Metrics()
    state = State(settings, metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.analytics.start()
        log.info("llm-orchestrator ready", extra={
            "providers": sorted(state.router.providers),
            "aliases": sorted(state.router.aliases),
            "mcp_url": settings.mcp_url or None})
        yield
        await state.close()

    app = FastAPI(title="basalt llm-orchestrator", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz")
    async def readyz() -> Response:
        checks: dict[str, str] = {}
        ok = True
        if state.redis is not None:
            try:
                await state.redis.ping()
                checks["redis"] = "ok"
            except Exception as e:  # noqa: BLE001
                checks["redis"] = f"error: {type(e).__name__}"
                ok = False
        body = Health(status="ready" if ok else "unavailable", checks=checks)
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    @app.get("/metrics")
    async def prom() -> Response:
        return Response(generate_latest(metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def list_models(request: Request) -> Response:
        try:
            state.auth.identify(request.headers)
        except AuthError as e:
            return err(401, e.code, str(e),
                       {"WWW-Authenticate": 'Bearer realm="basalt"'},
                       "authentication_error")
        cards = [ModelCard(id=i, owned_by=o)
                 for i, o in state.router.model_ids()]
        return JSONResponse(ModelList(data=cards).model_dump())

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await handle_chat(state, request)

    return Edge(app, metrics)


async def handle_chat(state: State, request: Request) -> Response:
    s = state.settings
    try:
        who = state.auth.identify(request.headers)
    except AuthError as e:
        return err(401, e.code, str(e),
                   {"WWW-Authenticate": 'Bearer realm="basalt"'},
                   "authentication_error")
    raw = await request.body()
    try:
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        req = ChatRequest.model_validate(body)
    except ValidationError as e:
        bad = e.errors()[0]
        where = ".".join(str(p) for p in bad["loc"])
        return err(422, "validation_failed", f"{where}: {bad['msg']}",
                   field=where)
    except ValueError as e:
        return err(400, "invalid_json", f"the body is not valid JSON ({e})")

    if not state.router.providers:
        return err(503, "no_provider",
                   "no LLM provider is configured: set LLM_PROVIDERS (JSON) "
                   "or OPENAI_API_KEY / OPENAI_BASE_URL or GEMINI_API_KEY",
                   type_="api_error")
    try:
        targets = state.router.resolve(req.model)
    except ModelNotFound:
        return err(404, "model_not_found",
                   f"unknown model {req.model!r}: GET /v1/models lists "
                   "the configured aliases and provider/model names",
                   field="model")

    refusal = await state.budgets.admit(who.user_id)
    if refusal is not None:
        state.metrics.budget_refusals.labels(refusal.limit).inc()
        return err(429, "budget_exceeded",
                   f"LLM budget exceeded ({refusal.limit}); retry in "
                   f"{refusal.retry_after} s",
                   {"Retry-After": str(refusal.retry_after)},
                   "rate_limit_error")

    platform = req.tools == "platform" or request.headers.get(
        "x-basalt-tools", "").strip().lower() == "platform"
    if req.tools == "platform":
        del body["tools"]
    want_usage = bool(req.stream_options and req.stream_options.include_usage)
    rid = logs.request_id_var.get()

    tools: PlatformTools | None = None
    offered: list[dict[str, Any]] | None = None
    if platform:
        if not s.mcp_url:
            return err(503, "tools_unavailable",
                       "platform tools asked for but MCP_URL is not set",
                       type_="api_error")
        headers = {"X-Request-Id": rid}
        if who.authorization:
            headers["Authorization"] = who.authorization
        tp = request.headers.get("traceparent")
        if tp:
            headers["traceparent"] = tp
        tools = PlatformTools(s.mcp_url, headers, s.llm_timeout_s)
        try:
            await tools.__aenter__()
            offered = await tools.openai_tools()
            if isinstance(req.tools, list):
                offered += req.tools
        except ToolsUnavailable as e:
            await tools.__aexit__(None, None, None)
            return err(502, "tools_unavailable", str(e), type_="api_error")

    run = Chat(state.router, targets, body, tools, s.llm_max_tool_steps, rid)

    if not req.stream:
        try:
            resp = await run.complete(offered)
        except UpstreamError as e:
            run.out.status = e.code
            return _upstream_failure(e)
        finally:
            if tools is not None:
                await tools.__aexit__(None, None, None)
            _account(state, who, req, run, stream=False)
        return JSONResponse(resp)

    try:
        first, rest = await run.open(offered)
    except UpstreamError as e:
        run.out.status = e.code
        if tools is not None:
            await tools.__aexit__(None, None, None)
        _account(state, who, req, run, stream=True)
        return _upstream_failure(e)

    async def events() -> AsyncIterator[bytes]:
        try:
            async for data in with_keepalive(
                    run.stream(first, rest, offered, want_usage),
                    s.llm_keepalive_s):
                yield data
        finally:
            if tools is not None:
                await tools.__aexit__(None, None, None)
            _account(state, who, req, run, stream=True)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache",
                                      "X-Accel-Buffering": "no"})


def _upstream_failure(e: UpstreamError) -> Response:
    if e.status == 429:
        h = {"Retry-After": str(int(e.retry_after or 1))}
        return err(429, "upstream_rate_limited", str(e), h,
                   "rate_limit_error")
    if e.code == "upstream_timeout":
        return err(504, "upstream_timeout", str(e), type_="api_error")
    if 400 <= e.status < 500:
        return err(e.status, "upstream_rejected", str(e))
    return err(502, "upstream_error", str(e), type_="api_error")


def _account(state: State, who: Identity, req: ChatRequest, run: Chat,
             stream: bool) -> None:
    """Metrics, budgets and the analytics event of a finished request."""
    o = run.out
    took = time.perf_counter() - run.t0
    prov = o.target.provider.name if o.target else "none"
    model = o.target.model if o.target else req.model
    m = state.metrics
    m.completions.labels(prov, model, o.status, str(stream).lower()).inc()
    m.tokens.labels(prov, model, "prompt").inc(o.prompt_tokens)
    m.tokens.labels(prov, model, "completion").inc(o.completion_tokens)
    m.tool_calls.inc(o.tool_calls)
    if o.ttft_s is not None:
        m.ttft.labels(prov).observe(o.ttft_s)
    if o.total_tokens:
        task = asyncio.ensure_future(state.budgets.spend(who.user_id,
                                                         o.total_tokens))
        _background.add(task)
        task.add_done_callback(_background.discard)
    state.analytics.record(who.user_id, who.authorization, {
        "model": model, "requested_model": req.model, "provider": prov,
        "prompt_tokens": o.prompt_tokens,
        "completion_tokens": o.completion_tokens,
        "total_tokens": o.total_tokens,
        "latency_ms": round(took * 1000, 1),
        "ttft_ms": round(o.ttft_s * 1000, 1) if o.ttft_s is not None
        else None,
        "stream": stream, "tool_steps": o.tool_steps,
        "tool_calls": o.tool_calls, "status": o.status})
