"""The CPU floor of one chat turn's I/O with our libraries: what a worker process spends per turn before any logic.

Run by `bench.turn` in a process of its own (the fake LLM lives in `bench.turn`'s process, so its CPU is not
counted here), as the worker runs (`bench.common.ava_env`). Each round does exactly the round trips a turn does in
the worker, through the same clients configured the same way, and nothing else:

* `STATEMENTS` statements through the ORM's connection (Tortoise on asyncpg's pool, opened by `ava_bot.db.init_db`):
  the drain's pending look, the attempt count with the user, the avatar with the history, the subscription with the
  usage, the one-statement commit (which also reads whether the chat is reachable) and the delivery mark; `WRITES`
  of them commit a write (here an UPDATE of a scratch row), the others read (`SELECT 1`);
* `PUBLISHES` Redis PUBLISHes of a web-channel event's size (the "typing" activity and the reply);
* one Chat Completions call through `core.llm.OpenAICompatibleLLM` (the openai SDK) with the messages of a real
  turn of the benchmark (read from a JSON file).

Not included: arq's job bookkeeping and the drain slot's Redis calls (shared by the turns of a slice), logging, and
all of Ava's own work. It runs on the event loop the worker runs on (`--event-loop`, as `EVENT_LOOP`). Printed:
one JSON object, the mean CPU milliseconds of each part per round.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import get_args

from redis.asyncio import Redis
from tortoise import connections

from ava_bot.db import close_db, init_db
from ava_bot.runtime import EventLoopKind, run
from bench.common import DEFAULT_LOOP, REDIS_URL
from core.llm import OpenAICompatibleLLM
from core.ports import ChatMessage

STATEMENTS = 6
WRITES = 3
PUBLISHES = 2
#: About a web-channel reply event (JSON with the text, the message id and the chat).
EVENT = "x" * 300


async def measure(
    db_url: str, llm_url: str, api_key: str, messages: list[ChatMessage], rounds: int
) -> dict[str, float]:
    """Mean CPU ms per round of each part, over `rounds` rounds after a tenth as many warm-up rounds."""
    await init_db(db_url)  # as the worker opens it
    db = connections.get("default")
    redis = Redis.from_url(REDIS_URL)
    llm = OpenAICompatibleLLM(base_url=llm_url, api_key=api_key, model="bench-model")
    try:
        await db.execute_script(
            "CREATE TABLE bench_floor (id integer PRIMARY KEY, n integer); INSERT INTO bench_floor VALUES (1, 0)"
        )

        async def statements() -> None:
            for _ in range(STATEMENTS - WRITES):
                await db.execute_query_dict("SELECT 1", [])
            for _ in range(WRITES):
                await db.execute_query_dict("UPDATE bench_floor SET n = n + 1 WHERE id = $1 RETURNING n", [1])

        async def publishes() -> None:
            for _ in range(PUBLISHES):
                await redis.publish("bench-floor", EVENT)

        async def llm_call() -> None:
            await llm.complete(messages)

        parts: dict[str, Callable[[], Awaitable[None]]] = {
            "statements": statements,
            "publishes": publishes,
            "llm": llm_call,
        }
        samples: dict[str, list[float]] = {name: [] for name in parts}
        warmup = max(1, rounds // 10)
        for n in range(warmup + rounds):
            for name, part in parts.items():
                start = time.process_time()
                await part()
                if n >= warmup:
                    samples[name].append((time.process_time() - start) * 1000)
        return {name: statistics.fmean(values) for name, values in samples.items()}
    finally:
        await llm.aclose()
        await redis.aclose()
        await close_db()


def main() -> None:
    """Print the parts' mean CPU ms per round as one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--llm-url", required=True)
    parser.add_argument("--llm-api-key", required=True)
    parser.add_argument("--messages", type=Path, required=True, help="JSON list of {role, content} of a real turn")
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--event-loop", choices=get_args(EventLoopKind), default=DEFAULT_LOOP, help="as EVENT_LOOP")
    args = parser.parse_args()
    messages = [ChatMessage(m["role"], m["content"]) for m in json.loads(args.messages.read_text())]
    parts = measure(args.database_url, args.llm_url, args.llm_api_key, messages, args.rounds)
    print(json.dumps(run(parts, args.event_loop)))


if __name__ == "__main__":
    main()
