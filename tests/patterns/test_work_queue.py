"""Streams work queue against real Redis: crash recovery, dead letters, dedup, shutdown."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from patterns.work_queue import Consumer, Job, WorkQueue
from tests.patterns.helpers import eventually, open_client

pytestmark = pytest.mark.integration


def test_every_job_has_exactly_one_effect_despite_a_killed_consumer(app_client_factory: Any, prefix: str) -> None:
    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            queue = WorkQueue(client, f"{prefix}:jobs")
            await queue.ensure_group()
            ids = [f"job-{i}" for i in range(200)]
            for job_id in ids:
                await queue.enqueue({"n": job_id}, job_id=job_id)
            await queue.enqueue({"n": "job-7"}, job_id="job-7")  # a producer retry: same job twice

            effects: Counter[str] = Counter()  # NOT idempotent by itself: counts every application
            invocations: Counter[str] = Counter()
            stuck = asyncio.Event()

            async def handler_a(job: Job) -> None:
                invocations[job.job_id] += 1
                if sum(effects.values()) >= 30:
                    stuck.set()
                    await asyncio.Event().wait()  # hangs mid-batch, never acks
                effects[job.job_id] += 1

            async def handler_b(job: Job) -> None:
                invocations[job.job_id] += 1
                effects[job.job_id] += 1

            a = Consumer(queue, "a", handler_a, batch=10, block_ms=100, claim_idle_ms=60_000)
            task_a = a.start()
            await eventually(lambda: _is_set(stuck), 10, "consumer a is stuck mid-batch")
            task_a.cancel()  # the crash: delivered-but-unacked entries stay pending under "a"
            await asyncio.gather(task_a, return_exceptions=True)
            stats = await queue.stats()
            assert stats.pending > 0

            b = Consumer(queue, "b", handler_b, batch=25, block_ms=100, claim_idle_ms=300, claim_every_s=0.1)
            b.start()
            try:
                async def drained() -> bool:
                    s = await queue.stats()
                    return s.pending == 0 and s.lag == 0 and set(effects) == set(ids)

                await eventually(drained, 20, "every job processed and acknowledged")
            finally:
                await b.stop()

            assert all(effects[j] == 1 for j in ids), {j: n for j, n in effects.items() if n != 1}
            assert set(effects) == set(ids)
            assert b.counters["claimed"] >= 1  # a's stuck batch was recovered by XAUTOCLAIM
            assert b.counters["duplicates_skipped"] + a.counters["duplicates_skipped"] == 1
            assert invocations["job-7"] == 1
            assert (await queue.stats()).dlq_length == 0
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

            consumer = Consumer(queue, "c", handler, block_ms=50, claim_idle_ms=100, claim_every_s=0.05, max_deliveries=3)
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


async def _dlq_len(client: Any, queue: WorkQueue, n: int) -> bool:
    return int(await client.xlen(queue.dlq_key)) >= n
