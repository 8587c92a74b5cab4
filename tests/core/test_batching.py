"""`core.batching.Coalescer`: concurrent calls become batches, one at a time, in order; a failing batch is retried
item by item so a bad item fails alone; a cancelled caller does not stop its item."""

from __future__ import annotations

import asyncio

import pytest

from core.batching import Coalescer


class Recorder:
    """A `process` function recording its batches; items equal to "bad" make it raise; `gate` holds batches."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.running = 0
        self.most_at_once = 0

    async def __call__(self, items: list[str]) -> list[str]:
        self.batches.append(list(items))
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await self.gate.wait()
            if "bad" in items:
                raise ValueError("bad item")
            return [item.upper() for item in items]
        finally:
            self.running -= 1


async def test_a_lone_call_is_processed_at_once() -> None:
    process = Recorder()
    coalescer = Coalescer(process)
    assert await asyncio.wait_for(coalescer.submit("a"), 1) == "A"
    assert process.batches == [["a"]]


async def test_calls_arriving_during_a_batch_form_the_next_batch_in_order() -> None:
    process = Recorder()
    coalescer = Coalescer(process)
    process.gate.clear()
    first = asyncio.create_task(coalescer.submit("a"))
    await asyncio.sleep(0.01)  # "a" is being processed
    later = [asyncio.create_task(coalescer.submit(item)) for item in "bcde"]
    await asyncio.sleep(0.01)
    assert process.batches == [["a"]]
    process.gate.set()
    assert await first == "A"
    assert await asyncio.gather(*later) == ["B", "C", "D", "E"]
    assert process.batches == [["a"], ["b", "c", "d", "e"]]
    assert process.most_at_once == 1


async def test_batches_are_capped() -> None:
    process = Recorder()
    coalescer = Coalescer(process, max_batch=3)
    results = await asyncio.gather(*(coalescer.submit(str(i)) for i in range(7)))
    assert results == [str(i) for i in range(7)]
    assert [len(batch) for batch in process.batches] == [3, 3, 1]


async def test_a_failing_batch_is_retried_one_by_one_so_the_bad_item_fails_alone() -> None:
    process = Recorder()
    coalescer = Coalescer(process)
    results = await asyncio.gather(*(coalescer.submit(item) for item in ["a", "bad", "c"]), return_exceptions=True)
    assert results[0] == "A" and results[2] == "C"
    assert isinstance(results[1], ValueError)
    assert process.batches == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]


async def test_a_wrong_number_of_results_is_an_error_not_a_silent_mismatch() -> None:
    async def short(items: list[str]) -> list[str]:
        return items[:1]

    coalescer = Coalescer(short)
    results = await asyncio.gather(coalescer.submit("a"), coalescer.submit("b"), return_exceptions=True)
    assert results[0] == "a"  # on its own, one result for one item
    assert results[1] == "b"


async def test_a_cancelled_caller_does_not_stop_its_item_or_the_others() -> None:
    process = Recorder()
    coalescer = Coalescer(process)
    process.gate.clear()
    gone = asyncio.create_task(coalescer.submit("a"))
    stays = asyncio.create_task(coalescer.submit("b"))
    await asyncio.sleep(0.01)
    gone.cancel()
    await asyncio.sleep(0.01)
    process.gate.set()
    assert await stays == "B"
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert process.batches == [["a", "b"]]


async def test_it_keeps_working_after_the_queue_went_empty() -> None:
    process = Recorder()
    coalescer = Coalescer(process)
    assert await coalescer.submit("a") == "A"
    await asyncio.sleep(0)
    assert await coalescer.submit("b") == "B"
    assert process.batches == [["a"], ["b"]]


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Coalescer(Recorder(), max_batch=0)
