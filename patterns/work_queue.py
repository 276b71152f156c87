"""Work queue on Redis Streams with consumer groups: at-least-once delivery, each
job id handled by one consumer at a time, duplicates acknowledged without running,
crash recovery, dead letters.

Keys (one hash tag per queue, so scripts may touch several on a cluster):
``q:{name}:stream`` (jobs), ``q:{name}:dlq`` (dead letters),
``q:{name}:done:<job_id>`` (processed markers, TTL ``dedup_ttl_s``),
``q:{name}:lease:<job_id>`` (who is running the job now, TTL ``lease_ms``).

Each entry carries ``job_id`` (chosen by the producer, so a producer retry
that re-adds the same job is deduplicated too) and ``payload`` (JSON).
What is and is not guaranteed: patterns/README.md, "Work queue".
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from patterns.common import Counters, LuaScript, RetryPolicy, as_str, tagged
from patterns.failures import REDIS_FAILURES

CONSUMER_COUNTERS = (
    "delivered",
    "claimed",
    "redelivered",
    "processed",
    "handler_failures",
    "duplicates_skipped",  # the job's marker existed: acknowledged without running
    "duplicates_deferred",  # another consumer holds the job's lease: left pending, retried later
    "dead_lettered",
    "trimmed_lost",
    "claim_failures",  # Redis failed before the handler could start: left pending
    "ack_failures",  # completion failed after the retry policy: kept and retried by the loop
    "completed_late",  # ... and later completed by the loop
    "lease_lost",  # a refresh found the lease gone or taken while the handler ran
    "group_recreated",
    "loop_errors",
)

# KEYS[1] stream, KEYS[2] marker, KEYS[3] lease; ARGV group, entry id, token, lease_ms
# -> 'done' (marker exists: entry acknowledged), 'busy' (someone else runs it), 'run' (lease is ours).
# Idempotent: a retry after a lost reply finds its own token.
_CLAIM = """
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
  return 'done'
end
local cur = redis.call('GET', KEYS[3])
if cur and cur ~= ARGV[3] then return 'busy' end
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
return 'run'
"""

# KEYS[1] stream, KEYS[2] lease; ARGV group, consumer, entry id, token, lease_ms -> 1 kept, 0 lost.
# XCLAIM ... JUSTID resets the entry's idle time (without counting a delivery), so other
# consumers' XAUTOCLAIM leaves a job alone while its handler still runs.
_REFRESH = """
if redis.call('GET', KEYS[2]) ~= ARGV[4] then return 0 end
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
"""

# KEYS[1] stream, KEYS[2] marker, KEYS[3] lease; ARGV group, id, ttl_s, token -> XACK count.
# Idempotent (SET NX, XACK, DEL of our own lease), so it is retried.
_COMPLETE = """
redis.call('SET', KEYS[2], ARGV[2], 'NX', 'EX', ARGV[3])
if redis.call('GET', KEYS[3]) == ARGV[4] then redis.call('DEL', KEYS[3]) end
return redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
"""

# KEYS[1] lease; ARGV token -> 1 released, 0 not ours
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS[1] stream, KEYS[2] dlq; ARGV group, id, dlq_maxlen, reason, deliveries, field, value, ...
# XACK first: if another consumer already settled the entry, do not dead-letter it twice.
_DEAD_LETTER = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local fields = {'orig_id', ARGV[2], 'reason', ARGV[4], 'deliveries', ARGV[5]}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
return 1
"""


def is_nogroup(exc: BaseException) -> bool:
    """The consumer group (or its stream) is gone: e.g. a failover to a replica that never
    received XGROUP CREATE, or a flushed stream."""
    return isinstance(exc, ResponseError) and "NOGROUP" in str(exc)


@dataclass(frozen=True)
class Job:
    id: str  # stream entry id
    job_id: str  # idempotency key
    payload: Any
    deliveries: int  # times delivered, this delivery included
    raw: dict[str, str]


@dataclass(frozen=True)
class QueueStats:
    length: int  # XLEN
    pending: int  # delivered, not acknowledged
    lag: int | None  # entries not yet delivered to the group (None: Redis cannot tell, e.g. after trims)
    entries_read: int | None
    dlq_length: int


Handler = Callable[[Job], Awaitable[None]]


class WorkQueue:
    """Producer side plus shared key layout. ``maxlen_approx`` bounds the stream
    with ``MAXLEN ~``: entries trimmed before they are processed are LOST, so
    size it above the worst backlog you expect. ``retry`` is used for every
    idempotent call: enqueue, and the consumers' claim, completion and release."""

    def __init__(
        self,
        client: Any,
        name: str,
        group: str = "workers",
        maxlen_approx: int = 100_000,
        dlq_maxlen_approx: int = 100_000,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        self.client = client
        self.name = name
        self.group = group
        self.maxlen_approx = maxlen_approx
        self.dlq_maxlen_approx = dlq_maxlen_approx
        self.retry = retry
        self.counters = Counters(("enqueued",))
        self.stream_key = f"q:{tagged(name)}:stream"
        self.dlq_key = f"q:{tagged(name)}:dlq"
        self._claim = LuaScript(client, _CLAIM)
        self._refresh = LuaScript(client, _REFRESH)
        self._complete = LuaScript(client, _COMPLETE)
        self._release = LuaScript(client, _RELEASE)
        self._dead_letter = LuaScript(client, _DEAD_LETTER)

    def done_key(self, job_id: str) -> str:
        return f"q:{tagged(self.name)}:done:{job_id}"

    def lease_key(self, job_id: str) -> str:
        return f"q:{tagged(self.name)}:lease:{job_id}"

    async def ensure_group(self, start_id: str = "0") -> None:
        """Create the group (and the stream) if missing; an existing group is fine.
        From ``0``: a group recreated after it was lost delivers whatever the stream
        still holds, and the processed markers acknowledge what was already done."""
        try:
            await self.client.xgroup_create(self.stream_key, self.group, id=start_id, mkstream=True)
        except REDIS_FAILURES as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def enqueue(self, payload: Any, job_id: str | None = None) -> str:
        """XADD a job; returns its entry id. Retried per policy: a retry after a
        timeout may add the job twice, which consumers dedupe by ``job_id``.
        An XADD acknowledged by a primary that fails before replicating is lost."""
        fields = {"job_id": job_id or uuid.uuid4().hex, "payload": json.dumps(payload)}
        entry_id = await self.retry.run(
            lambda: self.client.xadd(self.stream_key, fields, maxlen=self.maxlen_approx, approximate=True),
            self.counters,
        )
        self.counters.inc("enqueued")
        return as_str(entry_id) or ""

    async def stats(self) -> QueueStats:
        groups = await self.client.xinfo_groups(self.stream_key)
        mine = next((g for g in groups if as_str(g.get("name")) == self.group), None)
        length = int(await self.client.xlen(self.stream_key))
        dlq = int(await self.client.xlen(self.dlq_key))
        if mine is None:
            return QueueStats(length, 0, None, None, dlq)
        lag, read = mine.get("lag"), mine.get("entries-read")
        return QueueStats(
            length, int(mine["pending"]), None if lag is None else int(lag), None if read is None else int(read), dlq
        )


class Consumer:
    """One consumer of the group. ``start()`` runs the loop as a task,
    ``stop()`` shuts down gracefully (stop reading, finish the in-flight batch,
    acknowledge). Cancelling the task instead simulates a crash: its delivered
    but unacknowledged entries stay pending until another consumer claims them
    after ``claim_idle_ms``, and its leases expire after ``lease_ms``.

    Before its handler runs, a job id is leased (``SET NX PX lease_ms``, refreshed
    every third of ``min(lease_ms, claim_idle_ms)`` together with the entry's idle
    time), so while Redis keeps the lease no two consumers run one job id at once.
    ``lease_ms`` defaults to ``claim_idle_ms``.

    The client's socket timeout must exceed ``block_ms`` (XREADGROUP BLOCK)."""

    def __init__(
        self,
        queue: WorkQueue,
        name: str,
        handler: Handler,
        batch: int = 10,
        block_ms: int = 500,
        claim_idle_ms: int = 30_000,
        claim_every_s: float = 1.0,
        max_deliveries: int = 5,
        dedup_ttl_s: int = 86_400,
        error_backoff_s: tuple[float, float] = (0.05, 2.0),
        lease_ms: int | None = None,
    ) -> None:
        if claim_idle_ms <= 0 or (lease_ms is not None and lease_ms <= 0):
            raise ValueError(f"claim_idle_ms and lease_ms must be > 0 ms, got {claim_idle_ms}, {lease_ms}")
        self.queue = queue
        self.client = queue.client
        self.name = name
        self.handler = handler
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.claim_every_s = claim_every_s
        self.max_deliveries = max_deliveries
        self.dedup_ttl_s = dedup_ttl_s
        self.error_backoff_s = error_backoff_s
        self.lease_ms = lease_ms or claim_idle_ms
        self.refresh_every_s = min(self.lease_ms, claim_idle_ms) / 3000
        self.counters = Counters(CONSUMER_COUNTERS)
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._claim_cursor = "0-0"
        self._group_ready = False
        self._running: dict[str, asyncio.Event] = {}  # job_id -> set when this process is done with it
        self._uncompleted: dict[str, tuple[Job, str]] = {}  # entry id -> (job, lease token): effect done, ack not

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name=f"consumer-{self.name}")
        return self._task

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Graceful: no new reads, in-flight jobs finish and are acknowledged."""
        self._stopping.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, timeout_s)

    async def run(self) -> None:
        """The loop: never dies of a Redis failure (outage at start, NOGROUP, timeouts);
        each one is counted and followed by a jittered backoff."""
        next_claim = 0.0
        failures = 0
        while not self._stopping.is_set():
            try:
                if not self._group_ready:
                    await self.queue.ensure_group()
                    self._group_ready = True
                await self._complete_leftovers()
                jobs: list[Job] = []
                if time.monotonic() >= next_claim:
                    jobs = await self._claim()
                    next_claim = time.monotonic() + self.claim_every_s
                if not jobs:
                    jobs = await self._read_new()
                if jobs:
                    await asyncio.gather(*(self._handle(j) for j in jobs))
                failures = 0
            except REDIS_FAILURES as exc:
                self.counters.error(exc)
                self.counters.inc("loop_errors")
                if is_nogroup(exc):
                    self._group_ready = False
                    self.counters.inc("group_recreated")
                failures += 1
                lo, hi = self.error_backoff_s
                await asyncio.sleep(random.uniform(0, min(hi, lo * 2**failures)))
        with contextlib.suppress(*REDIS_FAILURES):  # counted; the entries stay pending
            await self._complete_leftovers()

    # -- reading ---------------------------------------------------------------

    async def _read_new(self) -> list[Job]:
        reply = await self.client.xreadgroup(
            self.queue.group, self.name, {self.queue.stream_key: ">"}, count=self.batch, block=self.block_ms
        )
        entries = _stream_entries(reply)
        self.counters.inc("delivered", len(entries))
        return [_job(eid, fields, 1) for eid, fields in entries if fields is not None]

    async def _claim(self) -> list[Job]:
        """XAUTOCLAIM entries idle longer than ``claim_idle_ms`` (their consumer
        died or is stuck); delivery counts come from XPENDING."""
        reply = await self.client.xautoclaim(
            self.queue.stream_key, self.queue.group, self.name, self.claim_idle_ms, self._claim_cursor, count=self.batch
        )
        cursor, entries = as_str(reply[0]) or "0-0", reply[1]
        deleted = reply[2] if len(reply) > 2 else []
        self._claim_cursor = cursor
        if deleted:
            self.counters.inc("trimmed_lost", len(deleted))  # pending entries trimmed away: lost work
        entries = [(as_str(eid) or "", f) for eid, f in entries if f is not None]
        entries = [(eid, f) for eid, f in entries if eid not in self._uncompleted]
        if not entries:
            return []
        pipe = self.client.pipeline(transaction=False)
        for eid, _ in entries:
            pipe.xpending_range(self.queue.stream_key, self.queue.group, min=eid, max=eid, count=1)
        pending = await pipe.execute()
        jobs = []
        for (eid, fields), info in zip(entries, pending, strict=False):
            deliveries = int(info[0]["times_delivered"]) if info else 1
            jobs.append(_job(eid, fields, deliveries))
        self.counters.inc("claimed", len(jobs))
        self.counters.inc("redelivered", len(jobs))
        return jobs

    # -- processing --------------------------------------------------------------

    async def _handle(self, job: Job) -> None:
        """One entry. Entries of one job id in this process run one after the other:
        the second finds the first's marker and is acknowledged as a duplicate."""
        try:
            if job.job_id == "" or job.payload is _MALFORMED:
                await self._dead(job, "malformed")
                return
        except REDIS_FAILURES as exc:
            self.counters.error(exc)
            self.counters.inc("claim_failures")
            return
        while (earlier := self._running.get(job.job_id)) is not None:
            await earlier.wait()
        done = self._running[job.job_id] = asyncio.Event()
        try:
            await self._process(job)
        finally:
            del self._running[job.job_id]
            done.set()

    async def _process(self, job: Job) -> None:
        token = uuid.uuid4().hex
        q = self.queue
        try:
            state = as_str(await q.retry.run(
                lambda: q._claim(keys=[q.stream_key, q.done_key(job.job_id), q.lease_key(job.job_id)],
                                 args=[q.group, job.id, token, self.lease_ms]),
                self.counters))
            if state == "done":
                self.counters.inc("duplicates_skipped")
                return
            if state == "busy":
                self.counters.inc("duplicates_deferred")  # pending; a later claim finds its marker
                return
            if job.deliveries > self.max_deliveries:
                await self._release(job, token)
                await self._dead(job, "max_deliveries")
                return
        except REDIS_FAILURES as exc:
            self.counters.error(exc)
            self.counters.inc("claim_failures")
            return
        keeper = asyncio.create_task(self._keep_lease(job, token))
        try:
            await self.handler(job)
        except Exception:  # noqa: BLE001 - any handler failure leaves the job pending for redelivery
            self.counters.inc("handler_failures")
            await _cancel(keeper)
            with contextlib.suppress(*REDIS_FAILURES):  # counted; the lease expires anyway
                await self._release(job, token)
            return
        finally:
            await _cancel(keeper)  # also on a crash (cancellation): the lease then expires by itself
        try:
            await q.retry.run(lambda: self._complete_call(job, token), self.counters)
            self.counters.inc("processed")
        except REDIS_FAILURES as exc:
            # the effect happened but the ack did not: keep it, the loop retries before new work
            self.counters.error(exc)
            self.counters.inc("ack_failures")
            self._uncompleted[job.id] = (job, token)

    def _complete_call(self, job: Job, token: str) -> Awaitable[Any]:
        q = self.queue
        return q._complete(keys=[q.stream_key, q.done_key(job.job_id), q.lease_key(job.job_id)],
                           args=[q.group, job.id, self.dedup_ttl_s, token])

    async def _complete_leftovers(self) -> None:
        """Retry completions that failed earlier; raises the first Redis failure."""
        for entry_id, (job, token) in list(self._uncompleted.items()):
            await self.queue.retry.run(functools.partial(self._complete_call, job, token), self.counters)
            del self._uncompleted[entry_id]
            self.counters.inc("processed")
            self.counters.inc("completed_late")

    async def _keep_lease(self, job: Job, token: str) -> None:
        """While the handler runs: extend the lease and reset the entry's idle time."""
        q = self.queue
        while True:
            await asyncio.sleep(self.refresh_every_s)
            try:
                kept = await q._refresh(keys=[q.stream_key, q.lease_key(job.job_id)],
                                        args=[q.group, self.name, job.id, token, self.lease_ms])
            except REDIS_FAILURES as exc:
                self.counters.error(exc)  # try again next tick; the lease may still hold
                continue
            if not kept:
                self.counters.inc("lease_lost")  # expired (outage longer than lease_ms) or lost in a failover
                return

    async def _release(self, job: Job, token: str) -> None:
        q = self.queue
        await q.retry.run(lambda: q._release(keys=[q.lease_key(job.job_id)], args=[token]), self.counters)

    async def _dead(self, job: Job, reason: str) -> None:
        flat: list[str] = []
        for k, v in job.raw.items():
            flat += [k, v]
        q = self.queue
        moved = await q.retry.run(
            lambda: q._dead_letter(
                keys=[q.stream_key, q.dlq_key],
                args=[q.group, job.id, q.dlq_maxlen_approx, reason, job.deliveries, *flat],
            ),
            self.counters,
        )
        if moved:
            self.counters.inc("dead_lettered")


async def _cancel(task: asyncio.Task[Any]) -> None:
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


_MALFORMED = object()


def _job(entry_id: Any, fields: dict[Any, Any], deliveries: int) -> Job:
    raw = {as_str(k) or "": as_str(v) or "" for k, v in fields.items()}
    payload: Any
    try:
        payload = json.loads(raw["payload"])
    except (KeyError, ValueError):
        payload = _MALFORMED
    return Job(as_str(entry_id) or "", raw.get("job_id", ""), payload, deliveries, raw)


def _stream_entries(reply: Any) -> list[tuple[Any, Any]]:
    """XREADGROUP reply for one stream, RESP2 (list) or RESP3 (dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return list(next(iter(reply.values()))[0]) if reply else []
    return list(reply[0][1])


@contextlib.asynccontextmanager
async def running(consumer: Consumer, stop_timeout_s: float = 10.0) -> AsyncIterator[Consumer]:
    """``async with running(consumer):`` start, then stop gracefully on exit."""
    consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop(stop_timeout_s)
