"""Group commit for concurrent calls: while one batch is being processed, new calls gather for the next one.

A `Coalescer` turns many concurrent `submit(item)` calls into few `process(items)` calls, one at a time, in arrival
order. A lone call is processed at once (nothing waits for a timer); under load, every call that arrives while a
batch is running joins the next one, so the batch size follows the load by itself. The inbox uses it so that one
statement (look-up and store) and one Redis round trip serve all the webhooks that arrived meanwhile.

If `process` raises for a batch of several items, each item is processed again on its own, so an item that cannot
be processed fails alone and the others succeed (`process` must therefore be safe to repeat: the inbox's is
idempotent). A caller that stops waiting (its request was cancelled) does not stop its item.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: Items per `process` call at most: bounds one statement's size and one batch's latency.
MAX_BATCH = 256


class Coalescer(Generic[T, R]):
    """Processes submitted items in batches, one batch at a time (see the module docstring)."""

    def __init__(self, process: Callable[[list[T]], Awaitable[list[R]]], *, max_batch: int = MAX_BATCH) -> None:
        """`process(items)` returns one result per item, in order."""
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._process = process
        self._max_batch = max_batch
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """`item`'s result, once the batch it joined has been processed (its exception, if it failed)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._worker is None:
            self._worker = asyncio.create_task(self._run())
        return await future  # cancelling the caller cancels the future only: the item is still processed

    async def _run(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                await self._settle(batch)
        finally:
            self._worker = None

    async def _settle(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        items = [item for item, _ in batch]
        try:
            results = await self._process(items)
            if len(results) != len(items):
                raise RuntimeError(f"{len(results)} results for {len(items)} items")
        except Exception as exc:
            if len(batch) == 1:
                _set(batch[0][1], exc)
                return
            logger.warning("a batch of %s failed (%r): processing them one by one", len(batch), exc)
            for one in batch:
                await self._settle([one])
            return
        except BaseException as exc:  # cancelled (shutdown): nobody else will answer these callers
            for _, future in batch:
                _set(future, exc)
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


def _set(future: asyncio.Future[R], exc: BaseException) -> None:
    if not future.done():
        if isinstance(exc, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(exc)
