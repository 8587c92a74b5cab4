"""The ingest benchmark's baseline server: a bare aiohttp handler answering 200, in a process of its own.

Run with `python -m bench.bare PORT [EVENT_LOOP]` (uvloop or asyncio; Ava's default if not given). It reads the
body (any handler must) and answers `{"ok": true}` on the same paths as Ava's webhooks, with no access log (Ava's
is off below WARNING) and its startup objects frozen out of garbage collection as Ava's are, so the ingest ratio
compares Ava's work per request against aiohttp's own cost under the same client, on the event loop Ava's web
process runs on in the same run.
"""

from __future__ import annotations

import sys
from typing import cast, get_args

from aiohttp import web

from ava_bot.runtime import EventLoopKind, freeze_startup_objects, new_event_loop
from ava_bot.settings import Settings


async def ok(request: web.Request) -> web.Response:
    """Read the body, answer 200."""
    await request.read()
    return web.json_response({"ok": True})


async def health(request: web.Request) -> web.Response:
    """Liveness, as Ava's `/health`."""
    return web.json_response({"status": "ok"})


async def _freeze(app: web.Application) -> None:
    """The same process tuning as Ava's web process (`ava_bot.runtime`), so the two differ in their handlers only."""
    freeze_startup_objects()


def main() -> None:
    """Serve on 127.0.0.1:PORT until terminated."""
    default: EventLoopKind = Settings.model_fields["event_loop"].default
    loop = sys.argv[2] if len(sys.argv) > 2 else default
    if loop not in get_args(EventLoopKind):
        raise SystemExit(f"bench.bare: EVENT_LOOP must be one of {get_args(EventLoopKind)}, not {loop!r}")
    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_post("/webhooks/telegram", ok)
    app.router.add_post("/webhooks/whatsapp", ok)
    app.on_startup.append(_freeze)
    kind = cast(EventLoopKind, loop)  # one of them: checked above
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None, loop=new_event_loop(kind))


if __name__ == "__main__":
    main()
