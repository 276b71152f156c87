"""Streams work queue against real Redis: crash recovery, dead letters, dedup, shutdown,
and the faults that break naive dedup (a killed consumer, duplicates in one batch, a slow
handler, an outage during the ack, an outage at start, a lost consumer group)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from faults.injector import FaultInjector
from patterns.common import RetryPolicy, prepare_client
from patterns.work_queue import Consumer, Job, WorkQueue
from tests.patterns.helpers import eventually, no_retry_client, open_client, outage_faults, run_healed

pytestmark = pytest.mark.integration

#: Retries that outlast a short outage (the queue's default gives up after 2 s / 3 attempts).
PATIENT = RetryPolicy(attempts=100, base_s=0.02, cap_s=0.2, deadline_s=20)


class Effects:
    """What the handlers did: every invocation (not idempotent), the idempotent store
    (one row per job_id, as ``INSERT ... ON CONFLICT DO NOTHING`` would keep), and the
    most runs of one job_id at the same time."""

    def __init__(self) -> None:
        self.invocations: Counter[str] = Counter()
        self.store: dict[str, str] = {}
        self.running: Counter[str] = Counter()
        self.max_concurrent = 0

    def begin(self, job: Job) -> None:
        self.invocations[job.job_id] += 1
        self.running[job.job_id] += 1
        self.max_concurrent = max(self.max_concurrent, self.running[job.job_id])

    def apply(self, job: Job, who: str) -> None:
        self.store.setdefault(job.job_id, who)

    def end(self, job: Job) -> None:
        self.running[job.job_id] -= 1

    def handler(self, who: str) -> Callable[[Job], Awaitable[None]]:
        """A handler that does nothing but its effect, as ``who``."""

        async def handle(job: Job) -> None:
            self.begin(job)
            self.apply(job, who)
            self.end(job)

        return handle


async def _drained(queue: WorkQueue, expected: set[str], effects: Effects) -> bool:
    s = await queue.stats()
    return s.pending == 0 and s.lag == 0 and set(effects.store) == expected


def test_killed_between_effect_and_ack_is_redelivered_and_the_store_dedupes(app_client_factory: Any,
                                                                           prefix: str) -> None:
    """The documented limit: a consumer that dies after its effect and before the
    marker + XACK leaves the job pending; another consumer runs it again (at-least-once).
    Only storage that is idempotent on ``job_id`` keeps one effect."""

    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            queue = WorkQueue(client, f"{prefix}:jobs")
            await queue.ensure_group()
            ids = [f"job-{i}" for i in range(20)]
            for job_id in ids:
                await queue.enqueue({"n": job_id}, job_id=job_id)
            effects = Effects()
            dying = asyncio.Event()

            async def handler_a(job: Job) -> None:
                effects.begin(job)
                try:
                    effects.apply(job, "a")
                    if job.job_id == "job-5":
                        dying.set()
                        await asyncio.Event().wait()  # the effect is done; the process dies before the ack
                finally:
                    effects.end(job)  # a crash ends the run too

            handler_b = effects.handler("b")

            a = Consumer(queue, "a", handler_a, batch=10, block_ms=100, claim_idle_ms=300)
            task_a = a.start()
            await eventually(lambda: _is_set(dying), 10, "consumer a applied job-5's effect")
            task_a.cancel()  # the crash
            await asyncio.gather(task_a, return_exceptions=True)

            b = Consumer(queue, "b", handler_b, batch=25, block_ms=100, claim_idle_ms=300, claim_every_s=0.05)
            b.start()
            try:
                await eventually(lambda: _drained(queue, set(ids), effects), 20, "every job acknowledged")
            finally:
                await b.stop()

            assert effects.invocations["job-5"] == 2  # redelivered: at-least-once, not exactly-once
            assert effects.store["job-5"] == "a"  # the idempotent store kept the first effect only
            assert set(effects.store) == set(ids)
            assert b.counters["claimed"] >= 1
            assert effects.max_concurrent == 1
        finally:
            await client.aclose()

    asyncio.run(main())


def test_duplicates_in_one_batch_run_once(app_client_factory: Any, prefix: str) -> None:
    """A producer retry adds a job twice, back to back: both entries arrive in one batch.
    The handler runs once; the second entry is acknowledged as a duplicate."""

    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            queue = WorkQueue(client, f"{prefix}:jobs")
            await queue.ensure_group()
            for i in range(4):
                await queue.enqueue({"i": i}, job_id=f"job-{i}")
                await queue.enqueue({"i": i}, job_id=f"job-{i}")  # the retried XADD
            effects = Effects()

            async def handler(job: Job) -> None:
                effects.begin(job)
                await asyncio.sleep(0.05)
                effects.apply(job, "c")
                effects.end(job)

            consumer = Consumer(queue, "c", handler, batch=10, block_ms=100)
            consumer.start()
            try:
                await eventually(lambda: _drained(queue, {f"job-{i}" for i in range(4)}, effects), 10,
                                 "both entries of every job settled")
            finally:
                await consumer.stop()
            assert effects.invocations == Counter({f"job-{i}": 1 for i in range(4)})
            assert consumer.counters["duplicates_skipped"] == 4
            assert consumer.counters["processed"] == 4
        finally:
            await client.aclose()

    asyncio.run(main())


def test_a_slow_handler_keeps_its_job(app_client_factory: Any, prefix: str) -> None:
    """A handler slower than ``claim_idle_ms`` is not reclaimed and run a second time by
    another consumer while it still works (nor is its duplicate entry run elsewhere)."""

    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            queue = WorkQueue(client, f"{prefix}:jobs")
            await queue.ensure_group()
            effects = Effects()
            started = asyncio.Event()

            async def slow(job: Job) -> None:
                effects.begin(job)
                started.set()
                await asyncio.sleep(1.0)  # five times claim_idle_ms
                effects.apply(job, "slow")
                effects.end(job)

            a = Consumer(queue, "a", slow, batch=1, block_ms=100, claim_idle_ms=200, claim_every_s=0.05)
            b = Consumer(queue, "b", slow, batch=1, block_ms=100, claim_idle_ms=200, claim_every_s=0.05)
            await queue.enqueue({"x": 1}, job_id="long")
            a.start()
            await eventually(lambda: _is_set(started), 5, "a runs the long job")
            await queue.enqueue({"x": 1}, job_id="long")  # its duplicate, read by b while a works
            b.start()
            try:
                await eventually(lambda: _drained(queue, {"long"}, effects), 15,
                                 "the long job and its duplicate settled")
            finally:
                await a.stop()
                await b.stop()
            assert effects.max_concurrent == 1
            assert effects.invocations["long"] == 1
        finally:
            await client.aclose()

    asyncio.run(main())


def test_an_outage_during_the_ack_does_not_run_the_job_again(app_client_factory: Any, prefix: str) -> None:
    """The connection breaks right after a handler's effect (every Redis node refuses
    connections for 0.5 s). The completion (marker + XACK) is retried, so the job is not
    redelivered and its handler does not run a second time."""
    topo = app_client_factory.topo
    injector = FaultInjector(topo)
    outage = outage_faults(topo)

    async def main() -> None:
        client = await prepare_client(no_retry_client(app_client_factory))
        try:
            queue = WorkQueue(client, f"{prefix}:jobs", retry=PATIENT)
            await queue.ensure_group()
            ids = [f"job-{i}" for i in range(10)]
            for job_id in ids:
                await queue.enqueue({"n": job_id}, job_id=job_id)
            effects = Effects()
            healed = asyncio.Event()

            async def heal_later() -> None:
                await asyncio.sleep(0.5)
                for f in outage:
                    await asyncio.to_thread(injector.heal, f)
                healed.set()

            heal_task: asyncio.Task[None] | None = None

            async def handler(job: Job) -> None:
                nonlocal heal_task
                effects.begin(job)
                effects.apply(job, "c")
                effects.end(job)
                if job.job_id == "job-3" and heal_task is None:  # the effect is done; now the link breaks
                    for f in outage:
                        await asyncio.to_thread(injector.inject, f)
                    heal_task = asyncio.create_task(heal_later())

            consumer = Consumer(queue, "c", handler, batch=1, block_ms=100, claim_idle_ms=300, claim_every_s=0.05)
            consumer.start()
            try:
                await eventually(lambda: _is_set(healed), 10, "outage injected and healed")
                await eventually(lambda: _drained(queue, set(ids), effects), 20, "every job acknowledged")
                # past claim_idle_ms several times over: a redelivery would have happened by now
                await asyncio.sleep(1.0)
            finally:
                await consumer.stop()
            assert heal_task is not None and heal_task.done()
            assert effects.invocations == Counter(dict.fromkeys(ids, 1))
            assert consumer.counters["processed"] == len(ids)
            assert sum(consumer.counters.errors.values()) >= 1  # the outage was seen
        finally:
            await client.aclose()

    run_healed(topo, main())


def test_a_consumer_started_during_an_outage_waits_and_then_works(app_client_factory: Any, prefix: str) -> None:
    topo = app_client_factory.topo
    injector = FaultInjector(topo)
    outage = outage_faults(topo)

    async def main() -> None:
        client = await prepare_client(no_retry_client(app_client_factory))
        try:
            queue = WorkQueue(client, f"{prefix}:jobs")
            effects = Effects()

            consumer = Consumer(queue, "c", effects.handler("c"), block_ms=100, error_backoff_s=(0.02, 0.2))
            for f in outage:
                injector.inject(f)
            task = consumer.start()
            try:
                await eventually(lambda: _async(consumer.counters["loop_errors"] >= 2), 10, "the outage is seen")
                assert not task.done(), task
                for f in outage:
                    injector.heal(f)
                await queue.enqueue({"n": 1}, job_id="after")
                await eventually(lambda: _async("after" in effects.store), 10, "the job after the outage ran")
            finally:
                await consumer.stop()
        finally:
            await client.aclose()

    run_healed(topo, main())


def test_a_lost_consumer_group_is_recreated(app_client_factory: Any, prefix: str) -> None:
    """A failover to a replica that never got XGROUP CREATE, or a flushed stream, leaves
    XREADGROUP failing with NOGROUP. The consumer recreates the group and goes on."""

    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            queue = WorkQueue(client, f"{prefix}:jobs")
            effects = Effects()

            consumer = Consumer(queue, "c", effects.handler("c"), block_ms=100, error_backoff_s=(0.02, 0.2))
            consumer.start()
            try:
                await queue.enqueue({"n": 1}, job_id="before")
                await eventually(lambda: _async("before" in effects.store), 10, "the first job ran")
                await client.delete(queue.stream_key)  # stream and group gone, as after a lossy failover
                await queue.enqueue({"n": 2}, job_id="after")  # XADD recreates the stream, not the group
                await eventually(lambda: _async("after" in effects.store), 10, "the job after the loss ran")
            finally:
                await consumer.stop()
            assert consumer.counters["group_recreated"] >= 1
        finally:
            await client.aclose()

    asyncio.run(main())


def test_poison_messages_land_in_the_dead_letter_stream(app_client_factory: Any, prefix: str) -> None:
    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            queue = WorkQueue(client, f"{prefix}:jobs")
            await queue.ensure_group()
            done: list[str] = []
            attempts: Counter[str] = Counter()

            async def handler(job: Job) -> None:
                attempts[job.job_id] += 1
                if job.payload.get("poison"):
                    raise ValueError("cannot process")
                done.append(job.job_id)

            poison_id = await queue.enqueue({"poison": True}, job_id="bad")
            for i in range(5):
                await queue.enqueue({"i": i}, job_id=f"good-{i}")
            await client.xadd(queue.stream_key, {"garbage": "x"})  # malformed: no job_id/payload

            consumer = Consumer(queue, "c", handler, block_ms=50, claim_idle_ms=100, claim_every_s=0.05,
                                max_deliveries=3)
            consumer.start()
            try:
                await eventually(lambda: _dlq_len(client, queue, 2), 10, "poison and malformed entries dead-lettered")
            finally:
                await consumer.stop()

            assert attempts["bad"] == 3  # handled max_deliveries times, then moved
            assert sorted(done) == [f"good-{i}" for i in range(5)]
            dead = await client.xrange(queue.dlq_key)
            fields = [{k.decode(): v.decode() for k, v in f.items()} for _, f in dead]
            by_reason = {f["reason"]: f for f in fields}
            assert by_reason["max_deliveries"]["orig_id"] == poison_id
            assert by_reason["max_deliveries"]["deliveries"] == "4"
            assert by_reason["max_deliveries"]["job_id"] == "bad"
            assert "malformed" in by_reason
            assert consumer.counters["dead_lettered"] == 2
            assert consumer.counters["handler_failures"] == 3
            assert (await queue.stats()).pending == 0
        finally:
            await client.aclose()

    asyncio.run(main())


def test_graceful_stop_finishes_and_acks_in_flight_jobs(app_client_factory: Any, prefix: str) -> None:
    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            queue = WorkQueue(client, f"{prefix}:jobs")
            await queue.ensure_group()
            for i in range(50):
                await queue.enqueue({"i": i})
            started = asyncio.Event()

            async def slow(job: Job) -> None:
                started.set()
                await asyncio.sleep(0.05)

            consumer = Consumer(queue, "c", slow, batch=10, block_ms=100)
            consumer.start()
            await eventually(lambda: _is_set(started), 5, "a batch is in flight")
            await consumer.stop(timeout_s=5)
            stats = await queue.stats()
            assert stats.pending == 0  # nothing delivered was left unacknowledged
            assert consumer.counters["processed"] == consumer.counters["delivered"] >= 10
            assert stats.lag == 50 - consumer.counters["delivered"] > 0  # it stopped reading
        finally:
            await client.aclose()

    asyncio.run(main())


def test_ensure_group_tolerates_busygroup_and_enqueue_trims(app_client_factory: Any, prefix: str) -> None:
    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            queue = WorkQueue(client, f"{prefix}:jobs", maxlen_approx=100)
            await queue.ensure_group()
            await queue.ensure_group()  # BUSYGROUP tolerated
            for i in range(1000):
                await queue.enqueue({"i": i})
            stats = await queue.stats()
            assert 100 <= stats.length < 1000  # MAXLEN ~ trims in whole macro-nodes
            assert queue.counters["enqueued"] == 1000
        finally:
            await client.aclose()

    asyncio.run(main())


async def _is_set(event: asyncio.Event) -> bool:
    return event.is_set()


async def _async(value: bool) -> bool:
    return value


async def _dlq_len(client: Any, queue: WorkQueue, n: int) -> bool:
    return int(await client.xlen(queue.dlq_key)) >= n
