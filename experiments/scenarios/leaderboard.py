"""Leaderboard on a sorted set under load: 80% ZINCRBY of a random player by a small
integer, 20% reads (top 10, or one player's rank).

Records: ``zincrby`` ``{"member", "amount"}`` (value: the new score), ``top``
``{"n"}`` (value: ``[[member, score], ...]``), ``rank`` ``{"member"}`` (value:
``{"rank", "score"}`` or null). Every call is one attempt (no pattern retry):
ZINCRBY is not idempotent, and a retry after a timeout could apply an amount twice
under a single record.

Final state: ``scores`` (``{member: score}``), read back through the client, so
from the *current* primary, after the run; ``final_total`` is their sum. Through a
primary kill without AOF, acknowledged increments that had not reached the
promoted replica are gone: ``leaderboard_increments`` fails, and that is the
evidence, not a bug.
"""
from __future__ import annotations

import random
from typing import Any

from experiments import faultplans
from experiments.final_read import settled_read
from experiments.model import (
    GENERIC_CHECKS,
    HYPOTHESIS,
    Experiment,
    PatternLoad,
    RunContext,
    Scenario,
    add_counts,
    app_client,
)
from experiments.workload import OpResult, attempt
from patterns.common import REDIS_FAILURES, RetryPolicy
from patterns.leaderboard import Leaderboard, LeaderboardUnavailable

N_MEMBERS = 200
MAX_AMOUNT = 10  # each increment adds 1..MAX_AMOUNT points
INCR_RATIO = 0.8
TOP_N = 10
CLIENT_TIMEOUT_S = 0.25  # socket timeout


class LeaderboardScenario(Scenario):
    parallel = True  # the board lives in Redis; each generator process counts its own calls (added up)

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self.client: Any = None

    async def setup(self) -> None:
        self.client = await app_client(self.ctx, CLIENT_TIMEOUT_S)
        self.board = Leaderboard(self.client, f"exp-{self.ctx.run_id}", retry=RetryPolicy.none())

    def fault_key(self) -> str:
        return self.board.key()

    async def op(self, client_id: int, rng: random.Random) -> OpResult:
        member = f"player-{rng.randrange(N_MEMBERS)}"
        r = rng.random()
        if r < INCR_RATIO:
            amount = rng.randint(1, MAX_AMOUNT)
            return await attempt("zincrby", {"member": member, "amount": amount}, self.board.incr(member, amount))
        if r < (1 + INCR_RATIO) / 2:
            res = await attempt("top", {"n": TOP_N}, self.board.top(TOP_N), read=True)
            return res._replace(value=[[e.member, e.score] for e in res.value]) if res.value is not None else res
        res = await attempt("rank", {"member": member}, self.board.rank(member), read=True)
        e = res.value
        return res._replace(value={"rank": e.rank, "score": e.score} if e is not None else None)

    async def _final_scores(self) -> tuple[dict[str, float] | None, list[str]]:
        """Every member's score (retried while a failover may still settle); the errors met on the way."""
        errors: list[str] = []
        try:
            entries = await settled_read(lambda: self.board.page(1, N_MEMBERS * 10), errors=errors,
                                         retry_on=lambda exc: isinstance(exc, LeaderboardUnavailable))
        except LeaderboardUnavailable as exc:
            errors.append(type(exc.__cause__ if exc.__cause__ is not None else exc).__name__)
            return None, errors
        return {e.member: e.score for e in entries}, errors

    async def worker_finish(self) -> dict[str, Any]:
        counters = self.board.counters.snapshot()
        try:
            await self.client.aclose()
        except REDIS_FAILURES as exc:
            self.ctx.writer.event("client_close_error", error=type(exc).__name__)
        return {"board_counters": counters}

    async def finish(self) -> dict[str, Any]:
        if self.client is None:
            return {}
        try:
            scores, errors = await self._final_scores()
            counters = add_counts(self.board.counters.snapshot(),
                                  *(w["board_counters"] for w in self.ctx.worker_states))
            state: dict[str, Any] = {"final_read_errors": errors, "board_counters": counters}
            if scores is not None:  # absent = the check says unknown, never a guess
                state.update(scores=scores, final_total=sum(scores.values()))
            return state
        finally:
            try:
                await self.client.aclose()
            except REDIS_FAILURES as exc:  # closing a client whose primary just died: recorded, not raised
                self.ctx.writer.event("client_close_error", error=type(exc).__name__)


CHECKS = ["leaderboard_increments"]
LOAD = PatternLoad(pattern="leaderboard", scenario=LeaderboardScenario, checks=CHECKS)
EXPERIMENTS = [
    Experiment(
        name="leaderboard-primary-kill",
        summary="leaderboard ZINCRBY while the Sentinel primary is killed (no AOF): how many acknowledged "
                "points are lost with the writes that had not replicated?",
        pattern="leaderboard", topology="sentinel", topologies=("single", "cluster"),
        scenario=LeaderboardScenario, fault=faultplans.kill_primary, fault_label="kill the primary",
        hypothesis=dict(HYPOTHESIS),
        checks=[*GENERIC_CHECKS, *CHECKS],
    ),
]
