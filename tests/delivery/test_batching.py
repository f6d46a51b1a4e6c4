"""Group commit: requests that wait together are written together, each gets its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from realtime.delivery.batching import GroupCommit


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def flush(self, requests: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(requests))
        await asyncio.sleep(0.01)  # a transaction takes a while; others queue meanwhile
        return [ValueError(n) if n < 0 else n * 10 for n in requests]


async def test_a_lone_request_is_written_at_once_on_its_own() -> None:
    recorder = Recorder()
    commit: GroupCommit[int, int] = GroupCommit(recorder.flush)

    assert await commit.submit(1) == 10
    assert recorder.batches == [[1]]


async def test_requests_arriving_during_a_write_go_together_in_the_next_one() -> None:
    recorder = Recorder()
    commit: GroupCommit[int, int] = GroupCommit(recorder.flush)
    first = asyncio.create_task(commit.submit(1))
    await asyncio.sleep(0.001)  # the first batch is being written

    rest = await asyncio.gather(*(commit.submit(n) for n in range(2, 8)))

    assert [await first, *rest] == [n * 10 for n in range(1, 8)]
    assert recorder.batches == [[1], [2, 3, 4, 5, 6, 7]]


async def test_a_failed_request_fails_alone() -> None:
    commit: GroupCommit[int, int] = GroupCommit(Recorder().flush)

    outcomes = await asyncio.gather(
        commit.submit(1), commit.submit(-1), commit.submit(2), return_exceptions=True
    )

    assert outcomes[0] == 10 and outcomes[2] == 20
    assert isinstance(outcomes[1], ValueError)


async def test_a_flush_that_raises_fails_its_whole_batch_and_the_next_batch_still_runs() -> None:
    calls = 0

    async def flaky(requests: Sequence[int]) -> list[int | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database went away")
        return list(requests)

    commit: GroupCommit[int, int] = GroupCommit(flaky)
    with pytest.raises(ConnectionError):
        await commit.submit(1)
    assert await commit.submit(2) == 2


async def test_batches_are_capped() -> None:
    recorder = Recorder()
    commit: GroupCommit[int, int] = GroupCommit(recorder.flush, max_batch=3)

    await asyncio.gather(*(commit.submit(n) for n in range(1, 9)))

    assert max(len(batch) for batch in recorder.batches) == 3
    assert sorted(n for batch in recorder.batches for n in batch) == list(range(1, 9))


async def test_a_cancelled_caller_does_not_stop_the_others() -> None:
    recorder = Recorder()
    commit: GroupCommit[int, int] = GroupCommit(recorder.flush)
    first = asyncio.create_task(commit.submit(1))
    await asyncio.sleep(0)
    doomed = asyncio.create_task(commit.submit(2))
    survivor = asyncio.create_task(commit.submit(3))
    await asyncio.sleep(0)
    doomed.cancel()

    assert await first == 10
    assert await survivor == 30
    assert [2, 3] in recorder.batches  # written anyway: the batch was already formed


async def test_drain_waits_until_a_lingering_batch_is_written() -> None:
    recorder = Recorder()
    commit: GroupCommit[int, int] = GroupCommit(recorder.flush, linger=0.05)
    future = commit.enqueue(4)

    await commit.drain()

    assert future.done() and future.result() == 40
    assert recorder.batches == [[4]]


async def test_with_several_writers_a_slow_batch_does_not_hold_up_the_next() -> None:
    started: list[list[int]] = []
    release = asyncio.Event()

    async def flush(requests: Sequence[int]) -> list[int | BaseException]:
        started.append(list(requests))
        if requests[0] == 1:
            await release.wait()  # a stuck transaction
        return list(requests)

    commit: GroupCommit[int, int] = GroupCommit(flush, writers=2)
    stuck = asyncio.create_task(commit.submit(1))
    await asyncio.sleep(0)

    assert await asyncio.wait_for(commit.submit(2), 1) == 2
    release.set()
    assert await stuck == 1


async def test_a_request_queued_as_a_writer_finishes_is_still_written() -> None:
    commit: GroupCommit[int, int] = GroupCommit(Recorder().flush)
    for n in range(50):
        first = asyncio.create_task(commit.submit(n))
        await asyncio.sleep(0.011)  # the writer is just done with it
        assert await asyncio.wait_for(commit.submit(n), 1) == n * 10
        await first


async def test_a_posted_request_has_its_callback_told_its_own_outcome_once_written() -> None:
    recorder = Recorder()
    commit: GroupCommit[int, int] = GroupCommit(recorder.flush)
    told: list[tuple[int, object]] = []
    written = asyncio.Event()

    def done(request: int, outcome: int | BaseException) -> None:
        told.append((request, outcome))
        if len(told) == 3:
            written.set()

    for request in (1, -1, 2):
        commit.post(request, done)
    assert told == []  # not before the batch is written
    await asyncio.wait_for(written.wait(), 1)

    assert [(request, outcome) for request, outcome in told if request != -1] == [(1, 10), (2, 20)]
    [(_, failure)] = [(request, outcome) for request, outcome in told if request == -1]
    assert isinstance(failure, ValueError)


async def test_a_callback_that_raises_does_not_keep_the_others_from_their_outcome() -> None:
    commit: GroupCommit[int, int] = GroupCommit(Recorder().flush)
    told: list[int] = []

    def broken(request: int, outcome: int | BaseException) -> None:
        raise RuntimeError("a bug in one caller")

    commit.post(1, broken)
    second = commit.enqueue(2)
    commit.post(3, lambda request, outcome: told.append(request))

    assert await asyncio.wait_for(second, 1) == 20
    await commit.drain()
    assert told == [3]
