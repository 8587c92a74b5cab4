"""Tuning a long-running process once it has started, before it takes work.

`freeze_startup_objects`: everything alive once a process has imported its libraries and opened its clients
(modules, classes, ORM metadata, pydantic schemas, the SDKs' types: about 200,000 objects in the web process)
lives as long as the process. Python's garbage collector still scans all of them in every full collection: here
that took 60-200 ms each time, a pause that every request and turn in flight waited through (it was most of the
webhook's p99 latency). Frozen, they are left out of collections; what work allocates is collected as before.
`ava-bot serve` freezes after the application has started, `ava-bot worker` before it polls.
"""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)


def freeze_startup_objects() -> int:
    """Collect the garbage there is, then move every live object to the collector's permanent generation; how
    many objects are frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.info("%s startup objects frozen out of garbage collection", frozen)
    return frozen
