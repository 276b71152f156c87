"""Shared pieces for the patterns: counters, retry policy, keys (errors: ``patterns.failures``).

One retry mechanism is used everywhere: tenacity's ``AsyncRetrying`` built by
``RetryPolicy``. The redis-py client's own ``Retry`` (set on the client by
whoever builds it) sits *under* this one; the lab's topologies should give the
client a small or zero retry so the pattern's policy is the one that is
visible and counted.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline
from redis.exceptions import NoScriptError
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from patterns.failures import EARLIER_ATTEMPT_NOTE, REDIS_FAILURES, classify, is_transient

T = TypeVar("T")


class Counters:
    """Named event counters plus errors keyed by exception class name.

    The set of names is fixed at construction: ``inc("typo")`` raises
    ``KeyError`` listing the known names instead of silently creating a counter.
    Not thread-safe; each pattern instance lives on one event loop.
    """

    def __init__(self, names: Iterable[str]) -> None:
        self._counts: dict[str, int] = dict.fromkeys(("retries", *names), 0)
        self.errors: Counter[str] = Counter()

    def inc(self, name: str, n: int = 1) -> None:
        if name not in self._counts:
            raise KeyError(f"unknown counter {name!r}; known: {sorted(self._counts)}")
        self._counts[name] += n

    def error(self, exc: BaseException) -> None:
        self.errors[type(exc).__name__] += 1

    def __getitem__(self, name: str) -> int:
        return self._counts[name]

    def snapshot(self) -> dict[str, Any]:
        """Plain-dict copy: ``{name: count, ..., "errors": {ExcName: count}}``."""
        return {**self._counts, "errors": dict(self.errors)}


@dataclass(frozen=True)
class RetryPolicy:
    """How a pattern retries one logical Redis operation.

    ``attempts`` counts the first try (1 = no retry). Waits are full-jitter
    exponential: ``uniform(0, min(cap_s, base_s * 2**n))``. ``deadline_s`` bounds
    the whole operation including waits: no wait is started that would end past
    it, and each attempt is cut (``TimeoutError``, outcome unknown) at it;
    ``attempt_timeout_s`` bounds one attempt (on top of the client's socket
    timeout). Only transient errors
    (see ``is_transient``) are retried. A retried write after an attempt that may
    have executed (``patterns.failures``) may execute twice: each pattern documents
    whether that is safe; the error re-raised after such an attempt carries
    ``EARLIER_ATTEMPT_NOTE``, so it is never classified "not executed".
    """

    attempts: int = 3
    base_s: float = 0.01
    cap_s: float = 0.5
    deadline_s: float | None = 2.0
    attempt_timeout_s: float | None = None
    retry_if: Callable[[BaseException], bool] = field(default=is_transient)

    @classmethod
    def none(cls) -> RetryPolicy:
        """Single attempt, no retry."""
        return cls(attempts=1, deadline_s=None)

    def as_config(self) -> dict[str, Any]:
        """The policy as plain JSON (field names carry their unit; ``retry_if``: the predicate's name),
        for an experiment's config."""
        return {"attempts": self.attempts, "base_s": self.base_s, "cap_s": self.cap_s, "deadline_s": self.deadline_s,
                "attempt_timeout_s": self.attempt_timeout_s,
                "retry_if": getattr(self.retry_if, "__name__", repr(self.retry_if))}

    async def run(self, op: Callable[[], Awaitable[T]], counters: Counters) -> T:
        """Run ``op`` under this policy; every failed attempt is counted by type."""

        deadline = None if self.deadline_s is None else time.monotonic() + self.deadline_s
        maybe_executed = False  # an earlier attempt may have executed: later errors say so

        async def attempt() -> T:
            nonlocal maybe_executed
            limit = self.attempt_timeout_s
            if deadline is not None:
                left = max(0.0, deadline - time.monotonic())
                limit = left if limit is None else min(limit, left)
            try:
                if limit is None:
                    return await op()
                async with asyncio.timeout(limit):
                    return await op()
            except REDIS_FAILURES as exc:
                counters.error(exc)
                if maybe_executed and EARLIER_ATTEMPT_NOTE not in getattr(exc, "__notes__", ()):
                    exc.add_note(EARLIER_ATTEMPT_NOTE)
                maybe_executed = maybe_executed or classify(exc).may_have_executed
                raise

        if self.attempts <= 1:
            return await attempt()
        stop: stop_base = stop_after_attempt(self.attempts)
        if self.deadline_s is not None:
            stop = stop | stop_before_delay(self.deadline_s)  # never sleep past the deadline
        retrying = AsyncRetrying(
            retry=retry_if_exception(self.retry_if),
            wait=wait_random_exponential(multiplier=self.base_s, max=self.cap_s),
            stop=stop,
            reraise=True,
            before_sleep=lambda _state: counters.inc("retries"),
        )
        return await retrying(attempt)


def jittered_ttl_ms(base_ms: int, jitter_ratio: float, rng: random.Random | None = None) -> int:
    """``base_ms`` plus uniform jitter in ``[0, base_ms * jitter_ratio]`` so keys
    written together do not expire together (avoids synchronized misses)."""
    if base_ms <= 0:
        raise ValueError(f"base_ms must be > 0, got {base_ms}")
    if not 0 <= jitter_ratio <= 1:
        raise ValueError(f"jitter_ratio must be in [0, 1], got {jitter_ratio}")
    r = (rng or random).random()
    return base_ms + int(base_ms * jitter_ratio * r)


def tagged(tag: str) -> str:
    """Cluster hash tag: keys containing the same ``{tag}`` map to one slot."""
    if "{" in tag or "}" in tag:
        raise ValueError(f"hash tag must not contain braces: {tag!r}")
    return "{" + tag + "}"


def tag_for(value: str) -> str:
    """A hash tag for an arbitrary id (a user id may contain braces): ``%``, ``{`` and
    ``}`` are percent-escaped, which is one-to-one, so distinct ids never share a key
    and the key has exactly one ``{...}`` tag."""
    return tagged(value.replace("%", "%25").replace("{", "%7B").replace("}", "%7D"))


def as_str(value: bytes | str | None) -> str | None:
    """Decode a reply that may be bytes (client without decode_responses)."""
    if isinstance(value, bytes):
        return value.decode()
    return value


async def prepare_client(client: Any) -> Any:
    """Initialise a ``redis.asyncio.cluster.RedisCluster`` before concurrent use.

    redis-py 8.1's async cluster client discovers the cluster lazily; when many
    coroutines issue their first command at once, some fail with
    ``AttributeError: 'NoneType' object has no attribute 'writelines'``
    (reproduced with 20 concurrent SETs on a fresh client). Awaiting
    ``initialize()`` first avoids it. No-op for other clients."""
    initialize = getattr(client, "initialize", None)
    if initialize is not None and hasattr(client, "nodes_manager"):
        await initialize()
    return client


class LuaScript:
    """A Lua script on ``client`` (redis-py's ``register_script``) whose NOSCRIPT is recovered once
    for all callers.

    redis-py's script sends EVALSHA and, on NOSCRIPT, SCRIPT LOAD (on a cluster: to every primary)
    and EVALSHA again, in every caller. Callers that start together on a server without the script
    (fresh, restarted, failed over) all get NOSCRIPT and all load it: 500 concurrent first calls of
    the leaderboard on the lab's cluster sent 1,500 SCRIPT LOADs, most on new connections, and with
    both cores busy ran past the patterns' 2-s deadline (3 of 7 runs of its concurrency test). Here the
    first caller to see NOSCRIPT loads it and the others wait for that load, then send EVALSHA again;
    a NOSCRIPT after that (another server) falls back to redis-py's own load-and-retry. The first
    command of a call is still EVALSHA, so a call whose connection broke may have run the script.
    """

    def __init__(self, client: Any, source: str) -> None:
        self._script = client.register_script(source)
        self._lock = asyncio.Lock()
        self._loads = 0  # SCRIPT LOADs done here: a caller loads only when none happened since its EVALSHA

    @property
    def sha(self) -> str:
        return str(self._script.sha)

    async def __call__(self, keys: Iterable[Any] = (), args: Iterable[Any] = (), client: Any = None) -> Any:
        """Run the script (on ``client``, default the one it was registered on)."""
        keys, args = list(keys), list(args)
        target = self._script.registered_client if client is None else client
        if isinstance(target, Pipeline | ClusterPipeline):  # queued: redis-py loads it when the pipeline runs
            return await self._script(keys=keys, args=args, client=target)
        seen = self._loads
        try:
            return await target.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            async with self._lock:
                if self._loads == seen:
                    await target.script_load(self._script.script)
                    self._loads += 1
        return await self._script(keys=keys, args=args, client=target)
