"""A small web service that uses Redis the way services do: a session store and a rate limit.

    POST /login   {"user": "ana"}        -> 200 {"session": ID}    a session in Redis, with a TTL
    GET  /me      header X-Session: ID   -> 200 {"user": "ana"} | 401 (no such session)
    GET  /search  header X-Api-Key: KEY  -> 200 (X-RateLimit-Source: redis | local) | 429 (Retry-After)
    GET  /health                         -> 200 (no Redis involved)

Redis failing shows as 503 (refused or dropped: the store is unavailable) or 504 (no answer
within ``redis_timeout_s``: the write may have happened). Sessions are a hard dependency;
the rate limit is not: when Redis fails it falls back to a per-process token bucket
(``patterns.rate_limiter``, ``FailurePolicy.LOCAL``), so /search keeps serving.

A login is acknowledged only once ``sync_replicas`` replicas have it (``WAIT``), so a
failover to a replica cannot lose an acknowledged session (0: acknowledge at once).
Configured by addresses, like any service: one node, Sentinels + master name, or
Cluster startup nodes.
"""
from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from patterns.rate_limiter import FailurePolicy, LocalTokenBucket, RateLimiter, TokenBucket

Address = tuple[str, int]


@dataclass(frozen=True)
class Settings:
    """Where Redis is and how the service uses it. Times in seconds unless named otherwise."""

    nodes: tuple[Address, ...]  # one node, or the Cluster's startup nodes (ignored with sentinels)
    sentinels: tuple[Address, ...] = ()
    master_name: str | None = None  # the name the Sentinels monitor the primary under
    cluster: bool = False
    password: str | None = None
    redis_timeout_s: float = 0.25  # per Redis call (connect and reply); no retries
    session_ttl_s: int = 3600
    sync_replicas: int = 0  # replicas that must have a session before a login is acknowledged
    sync_timeout_ms: int = 100  # how long a login waits for them (WAIT), milliseconds
    rate_capacity: int = 20  # requests a key may burst
    rate_refill_per_s: float = 10.0  # sustained requests per second per key


class SessionNotReplicated(RedisError):
    """The session was written but fewer than ``sync_replicas`` replicas have it."""


@asynccontextmanager
async def connect(s: Settings) -> AsyncIterator[Any]:
    """A redis-py asyncio client for ``s`` (one attempt per call, bounded by the timeout), closed on exit."""
    common: dict[str, Any] = {"password": s.password, "socket_timeout": s.redis_timeout_s,
                              "socket_connect_timeout": s.redis_timeout_s, "decode_responses": True,
                              "retry": Retry(NoBackoff(), 0)}
    if s.sentinels:
        sentinel = redis.asyncio.sentinel.Sentinel(
            list(s.sentinels), sentinel_kwargs={"password": s.password, "socket_timeout": s.redis_timeout_s})
        client = sentinel.master_for(s.master_name or "mymaster", **common)
        try:
            yield client
        finally:
            await client.aclose()
            for each in sentinel.sentinels:
                await each.aclose()
        return
    if s.cluster:
        nodes = [redis.asyncio.cluster.ClusterNode(h, p) for h, p in s.nodes]
        client = redis.asyncio.cluster.RedisCluster(startup_nodes=nodes, **common)
    else:
        host, port = s.nodes[0]
        client = redis.asyncio.Redis(host=host, port=port, **common)
    try:
        yield client
    finally:
        await client.aclose()


class SessionStore:
    """Sessions as JSON strings under ``session:<id>`` with a TTL."""

    def __init__(self, client: Any, s: Settings) -> None:
        self.client = client
        self.settings = s

    async def create(self, user: str) -> str:
        sid = secrets.token_urlsafe(16)
        await self.client.set(f"session:{sid}", json.dumps({"user": user}), ex=self.settings.session_ttl_s)
        if self.settings.sync_replicas:
            acked = await self.client.wait(self.settings.sync_replicas, self.settings.sync_timeout_ms)
            if acked < self.settings.sync_replicas:
                raise SessionNotReplicated(f"{acked} of {self.settings.sync_replicas} replicas have the session")
        return sid

    async def get(self, sid: str) -> dict[str, Any] | None:
        raw = await self.client.get(f"session:{sid}")
        return json.loads(raw) if raw is not None else None


def create_app(settings: Settings) -> Starlette:
    """The ASGI application; its Redis client lives as long as the app (lifespan)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with connect(settings) as client:
            app.state.sessions = SessionStore(client, settings)
            app.state.limiter = RateLimiter(
                client, TokenBucket(settings.rate_capacity, settings.rate_refill_per_s),
                failure=FailurePolicy.LOCAL, local=LocalTokenBucket(settings.rate_capacity, settings.rate_refill_per_s))
            yield

    async def login(request: Request) -> JSONResponse:
        try:
            user = (await request.json())["user"]
        except (ValueError, KeyError, TypeError):
            user = None
        if not isinstance(user, str) or not user:
            return JSONResponse({"error": 'expected a JSON body {"user": NAME}'}, 400)
        return JSONResponse({"session": await request.app.state.sessions.create(user)})

    async def me(request: Request) -> JSONResponse:
        sid = request.headers.get("x-session", "")
        session = await request.app.state.sessions.get(sid) if sid else None
        if session is None:
            return JSONResponse({"error": "no such session"}, 401)
        return JSONResponse({"user": session["user"]})

    async def search(request: Request) -> JSONResponse:
        key = request.headers.get("x-api-key") or (request.client.host if request.client else "anonymous")
        decision = await request.app.state.limiter.check(key)
        headers = {"X-RateLimit-Source": decision.source, "X-RateLimit-Remaining": str(decision.remaining)}
        if not decision.allowed:
            headers["Retry-After"] = str(max(1, round(decision.retry_after_s)))
            return JSONResponse({"error": "rate limited"}, 429, headers)
        return JSONResponse({"q": request.query_params.get("q", ""), "results": []}, headers=headers)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def redis_timed_out(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "session store timed out", "detail": type(exc).__name__}, 504)

    async def redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "session store unavailable", "detail": type(exc).__name__}, 503)

    return Starlette(
        routes=[Route("/login", login, methods=["POST"]), Route("/me", me), Route("/search", search),
                Route("/health", health)],
        exception_handlers={RedisTimeoutError: redis_timed_out, TimeoutError: redis_timed_out,
                            RedisError: redis_unavailable, RedisClusterException: redis_unavailable},
        lifespan=lifespan)
