"""Per-user rate limiting under load: ``USERS`` users each offered more requests
than their limit (``LIMIT`` per ``WINDOW_S``), so admissions and rejections both
happen, through a fault that makes Redis unreachable or fails it over.

Each request is recorded as ``request`` ``{"key": user}`` with value
``{"allowed": bool, "source": "redis"|"fail_open"|"fail_closed"|"local"}``; a
source other than ``redis`` means the limiter caught a Redis error and applied
its failure policy (``options["policy"]``: ``fail_open`` / ``fail_closed`` /
``local``). The errors themselves are counted by type in the final state
(``limiter_counters``).

Windows are aligned to the wall clock (``[n*W, (n+1)*W)``), the frame the
``rate_limit`` check's fixed mode judges in: the pattern's atomic fixed-window
script runs on one key per user *and window*. (The pattern's own window starts
at a user's first request, which may admit up to 2x the limit in a
clock-aligned window and would read as over-admission.)
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from experiments import faultplans
from experiments.model import (
    GENERIC_CHECKS,
    SERVED_THROUGH,
    Experiment,
    PatternLoad,
    Scenario,
    add_counts,
    app_client,
)
from experiments.workload import OpResult, attempt
from labcommon.errors import UnknownNameError
from patterns.rate_limiter import (
    FailurePolicy,
    FixedWindow,
    LocalTokenBucket,
    RateLimiter,
)

USERS = 10
LIMIT = 10  # requests admitted per user and window
WINDOW_S = 1.0  # seconds; the quick profile (200 ops/s) offers each user ~20/s, 2x its limit
CLIENT_TIMEOUT_S = 0.25  # socket timeout: a stalled Redis costs at most this per check
POLICIES = {"fail_open": FailurePolicy.OPEN, "fail_closed": FailurePolicy.CLOSED, "local": FailurePolicy.LOCAL}


class AlignedFixedWindowLimiter(RateLimiter):
    """The pattern's fixed-window limiter on one key per user and clock-aligned
    window: ``rl:{user}:fw:<n>`` for ``now()`` in ``[n*W, (n+1)*W)``. The hash tag
    keeps every window of a user in one slot."""

    def __init__(self, client: Any, window_s: float, now: Callable[[], float], **kwargs: Any) -> None:
        super().__init__(client, FixedWindow(limit=LIMIT, window_ms=int(window_s * 1000)), **kwargs)
        self.window_s = window_s
        self.now = now  # Unix seconds

    def key(self, user: str) -> str:
        return f"{super().key(user)}:{math.floor(self.now() / self.window_s)}"


def failure_policy(name: str) -> FailurePolicy:
    """``fail_open`` / ``fail_closed`` / ``local`` -> FailurePolicy (else UnknownNameError)."""
    if name not in POLICIES:
        raise UnknownNameError("rate-limiter policy", name, list(POLICIES))
    return POLICIES[name]


class RateLimitScenario(Scenario):
    # The windows live in Redis; each generator process has its own local fallback bucket, sized to
    # its share of the limit (as an application sizes per-instance buckets), and its own counters.
    parallel = True

    async def setup(self) -> None:
        policy = failure_policy(str(self.ctx.options.get("policy", "fail_open")))
        self.client = await app_client(self.ctx, CLIENT_TIMEOUT_S)
        # Local fallback sized so that, over every generator process, it alone admits at most
        # LIMIT per window (capacity + refill * W).
        share = LIMIT / 2 / self.ctx.share.count
        local = LocalTokenBucket(capacity=share, refill_per_s=share / WINDOW_S)
        writer = self.ctx.writer
        self.limiter = AlignedFixedWindowLimiter(
            self.client, WINDOW_S, now=lambda: writer.wall_at(writer.clock()),  # the history's wall clock
            failure=policy, local=local, prefix=f"rl-{self.ctx.run_id}")
        self.users = [f"user-{i}" for i in range(USERS)]

    def fault_key(self) -> str:
        return self.limiter.key(self.users[0])

    async def op(self, client_id: int, rng: random.Random) -> OpResult:
        user = rng.choice(self.users)
        res = await attempt("request", {"key": user}, self.limiter.check(user))
        if res.outcome != "ok":
            return res
        return res._replace(value={"allowed": res.value.allowed, "source": res.value.source})

    async def worker_finish(self) -> dict[str, Any]:
        counters = self.limiter.counters.snapshot()
        await self.client.aclose()
        return {"limiter_counters": counters}

    async def finish(self) -> dict[str, Any]:
        counters = add_counts(self.limiter.counters.snapshot(),
                              *(w["limiter_counters"] for w in self.ctx.worker_states))
        await self.client.aclose()
        return {"limiter_counters": counters}


_WINDOW = {"mode": "fixed", "limit": LIMIT, "window_s": WINDOW_S}
CHECKS: list[Any] = [{"name": "rate_limit", "params": _WINDOW}, {"name": "false_rejections", "params": _WINDOW}]
# The showcase judges both sides of the trade-off: each policy gives one of them up.
SHOWCASE_CHECKS: list[Any] = [{"name": "rate_limit", "params": _WINDOW},
                              {"name": "false_rejections", "params": {**_WINDOW, "max_false_rejection_ratio": 0.0}}]
# A failure policy answers at once while Redis is unavailable: every request gets a decision.
HYPOTHESIS = {**SERVED_THROUGH, "during": {"availability_min": 0.99, "p99_max_ms": 500.0}}
LOAD = PatternLoad(pattern="rate-limiter", scenario=RateLimitScenario, checks=CHECKS,
                   options={"policy": "fail_open"}, hypothesis=HYPOTHESIS)

_SHOWCASE = {
    "fail_open": ("open", "admits everyone while Redis is unreachable: how many requests beyond the limit?"),
    "fail_closed": ("closed", "rejects everyone while Redis is unreachable: how many false rejections?"),
    "local": ("local", "falls back to per-process buckets: how far off the global limit?"),
}
EXPERIMENTS = [
    Experiment(
        name=f"rate-limiter-failover-{suffix}",
        summary=f"fixed-window rate limiter ({policy}) while the Sentinel primary is killed: {question}",
        pattern="rate-limiter", topology="sentinel", topologies=("single", "cluster"),
        scenario=RateLimitScenario, fault=faultplans.kill_primary, fault_label="kill the primary",
        hypothesis=dict(HYPOTHESIS),
        checks=[*GENERIC_CHECKS, *SHOWCASE_CHECKS],
        options={"policy": policy},
    )
    for policy, (suffix, question) in _SHOWCASE.items()
]
