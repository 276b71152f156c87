"""Split-brain write loss (after Jepsen's 2013 Redis analysis) on the Sentinel topology.

Clients are in two groups: group ``a`` writes straight to the node that is primary
when the cycle's fault begins (as an application whose connection was never told
of a failover), group ``b`` writes through Sentinel (``master_for``). Each write
adds a unique element to one set (SADD). The fault partitions ``primary + group
a`` from ``replicas + Sentinels + group b``: the majority promotes a replica while
the old primary keeps acknowledging group a's writes; after the heal it is demoted
and its acknowledged writes are gone (``lost_writes``, also within each cycle's
loss window).

Options (the mitigations compared side by side):
  ``min_replicas``: ``min-replicas-to-write 1`` + ``min-replicas-max-lag 2`` on every
  node: the isolated primary refuses writes (NOREPLICAS) once its replica links are
  older than 2 s, bounding the loss window.
  ``wait``: every write is sent as ``SADD`` + ``WAIT 1 200`` in one pipeline, so both
  run on the same connection and WAIT confirms *this* write; a write no replica
  confirmed is recorded ``unknown`` (it happened on the primary and may or may not
  survive). Sent as two pooled commands, WAIT could run on another connection and
  confirm nothing about the write.
"""
from __future__ import annotations

import asyncio
import random
from typing import Any

from experiments import faultplans
from experiments.final_read import settled_read
from experiments.history import Outcome
from experiments.model import HYPOTHESIS, Experiment, Scenario, app_policy, warm_up
from experiments.workload import OpResult, attempt, classify
from faults import kinds
from labcommon.poll import wait_until
from patterns.failures import unpipelined
from topologies.api import Topology

SET_KEY = "{splitbrain}:set"
TIMEOUT_S = 0.5
MIN_REPLICAS_MAX_LAG_S = 2
WAIT_TIMEOUT_MS = 200
CLIENT_POLICY = app_policy(TIMEOUT_S)  # both groups' clients


class SplitBrainScenario(Scenario):
    keys_in_prefix = True
    needs_groups = True

    async def setup(self) -> None:
        topo = self.ctx.topo
        self.key = topo.key_prefix + SET_KEY
        self.ctx.client_policy = CLIENT_POLICY
        self.client_b = topo.client(asyncio=True, group="b", policy=CLIENT_POLICY)
        await warm_up(self.client_b, 16)
        self.primary = ""
        self.client_a: Any = None
        self.old_clients: list[Any] = []
        await self._pin_group_a()
        self.saved: dict[str, tuple[str, str]] = {}
        if self.ctx.options.get("min_replicas"):
            for node in topo.spec.redis_nodes:
                with topo.node_client(node.name, direct=True, decode_responses=True) as c:
                    self.saved[node.name] = (c.config_get("min-replicas-to-write")["min-replicas-to-write"],
                                             c.config_get("min-replicas-max-lag")["min-replicas-max-lag"])
                    c.config_set("min-replicas-to-write", 1)
                    c.config_set("min-replicas-max-lag", MIN_REPLICAS_MAX_LAG_S)
        await self.client_b.delete(self.key)
        self.seq = 0

    async def _pin_group_a(self) -> None:
        """Point group a at the node that is primary now (Sentinel's view)."""
        primary = await asyncio.to_thread(faultplans.primary_of, self.ctx.topo, self.key)
        if primary == self.primary:
            return
        if self.client_a is not None:
            self.old_clients.append(self.client_a)  # in-flight writes may still use it; closed in finish
        self.primary = primary
        self.client_a = self.ctx.topo.node_client(primary, asyncio=True, group="a", policy=CLIENT_POLICY)
        await warm_up(self.client_a, 16)

    async def before_fault(self, cycle: int) -> None:
        await self._pin_group_a()

    def fault_key(self) -> str:
        return self.key

    async def _write(self, client: Any, element: str) -> Any:
        if not self.ctx.options.get("wait"):
            return await client.sadd(self.key, element)
        return await sadd_confirmed(client, self.key, element)

    async def op(self, client_id: int, rng: random.Random) -> OpResult:
        self.seq += 1
        group = "a" if client_id % 2 == 0 else "b"
        element = f"{group}-{client_id}-{self.seq}"
        client = self.client_a if group == "a" else self.client_b
        res = await attempt("add", {"value": element, "group": group}, self._write(client, element),
                            classify=_classify)
        return res._replace(node=self.primary if group == "a" else None)

    async def finish(self) -> dict[str, Any]:
        topo = self.ctx.topo
        try:
            # the converged state: the old primary demoted (its data replaced by the new primary's)
            await asyncio.to_thread(wait_until, lambda: topo.role(self.primary) == "replica" or
                                    topo.primary() == self.primary, 40, f"{self.primary} demoted or still primary")
            members = await settled_read(lambda: self.client_b.smembers(self.key))
            final = sorted(m.decode() if isinstance(m, bytes) else m for m in members)
        finally:
            for node, (to_write, lag) in self.saved.items():
                with topo.node_client(node, direct=True) as c:
                    c.config_set("min-replicas-to-write", to_write)
                    c.config_set("min-replicas-max-lag", lag)
            for c in (*self.old_clients, self.client_a, self.client_b):
                await c.aclose()
        return {"set": final, "old_primary": self.primary}


async def sadd_confirmed(client: Any, key: str, element: str, replicas: int = 1,
                         timeout_ms: int = WAIT_TIMEOUT_MS) -> int:
    """SADD then ``WAIT replicas timeout_ms`` on ONE connection (a pipeline without MULTI):
    WAIT counts the replicas that acknowledged *this connection's* writes, so only then does
    it confirm this write. Raises :class:`NotReplicatedError` when fewer replicas confirmed."""
    pipe = client.pipeline(transaction=False)
    pipe.sadd(key, element)
    pipe.execute_command("WAIT", replicas, timeout_ms)
    added, confirmed = await pipe.execute()
    if int(confirmed) < replicas:
        raise NotReplicatedError(f"WAIT: {confirmed} of {replicas} replicas confirmed {element}")
    return int(added)


class NotReplicatedError(Exception):
    """WAIT returned before any replica confirmed the write."""


def _classify(exc: BaseException) -> tuple[Outcome, str]:
    if isinstance(exc, NotReplicatedError):
        return "unknown", "NotReplicated"  # applied on the primary; may or may not survive
    failed = unpipelined(exc)  # sadd_confirmed's pipeline: SADD, then WAIT (which writes nothing)
    if failed is not None and failed[0] == 1:
        return classify(failed[1])  # the SADD's own error (NOREPLICAS: refused, not written)
    return classify(exc)


def _split(topo: Topology, sc: Scenario) -> kinds.Fault:
    primary = sc.primary  # type: ignore[attr-defined]  # this module's scenario sets .primary; fault plans are typed on Scenario
    others = [n.name for n in topo.spec.nodes if n.name != primary]
    return kinds.make("partition", f"{primary},@a|{','.join(others)},@b")


CHECKS = ["steady_state", "errors_by_type", "send_lag", "failover_time", "lost_writes"]
_COMMON: dict[str, Any] = {"pattern": "split-brain", "topology": "sentinel", "scenario": SplitBrainScenario,
               "fault": _split, "fault_label": "partition the primary + client group a from the rest",
               "hypothesis": dict(HYPOTHESIS), "checks": CHECKS, "concurrency": 32}
EXPERIMENTS = [
    Experiment(name="splitbrain-plain", summary="Jepsen 2013: primary partitioned with client group a; "
               "acknowledged writes lost after healing (no mitigation)", options={}, **_COMMON),
    Experiment(name="splitbrain-min-replicas", summary="as splitbrain-plain with min-replicas-to-write 1 / "
               "max-lag 2 s: the isolated primary stops acknowledging", options={"min_replicas": True}, **_COMMON),
    Experiment(name="splitbrain-wait", summary="as splitbrain-plain with WAIT 1 200 after each write: "
               "unconfirmed writes are unknown, not acknowledged", options={"wait": True}, **_COMMON),
]
