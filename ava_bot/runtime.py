"""Tuning a long-running process once it has started, before it takes work.

`freeze_startup_objects`: everything alive once a process has imported its libraries and opened its clients
(modules, classes, ORM metadata, pydantic schemas, the SDKs' types: about 200,000 objects in the web process)
lives as long as the process. Python's garbage collector still scans all of them in every full collection: here
that took 60-200 ms each time, a pause that every request and turn in flight waited through (it was most of the
webhook's p99 latency). Frozen, they are left out of collections; what work allocates is collected as before.
`ava-bot serve` freezes after the application has started, `ava-bot worker` before it polls.

`new_event_loop` / `run`: the long-running processes (`serve`, `worker`, `dev`) run on uvloop unless the
`EVENT_LOOP` setting says `asyncio`. uvloop (libuv, in C) spends less CPU per socket read, write and callback than
Python's own loop; every webhook, turn and photo is mostly such I/O (PostgreSQL, Redis, the LLM and the channels'
APIs), so the same core serves more of them. The one-shot commands keep `asyncio.run`: nothing to gain there.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
EventLoopKind = Literal["uvloop", "asyncio"]


def new_event_loop(kind: EventLoopKind) -> asyncio.AbstractEventLoop:
    """A new event loop of the `kind` the `EVENT_LOOP` setting names."""
    if kind == "asyncio":
        return asyncio.new_event_loop()
    import uvloop  # here: only the processes that run on it load it

    return uvloop.new_event_loop()


def running_loop_name() -> EventLoopKind:
    """Which kind of event loop the calling coroutine runs on (logged at start, so an operator sees it)."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"


def run(main: Coroutine[Any, Any, T], kind: EventLoopKind) -> T:
    """`asyncio.run(main)` on a new loop of `kind`: the same shutdown (tasks cancelled, async generators and the
    default executor closed), the loop chosen by setting."""
    with asyncio.Runner(loop_factory=lambda: new_event_loop(kind)) as runner:
        return runner.run(main)


def freeze_startup_objects() -> int:
    """Collect the garbage there is, then move every live object to the collector's permanent generation; how
    many objects are frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.info("%s startup objects frozen out of garbage collection", frozen)
    return frozen
