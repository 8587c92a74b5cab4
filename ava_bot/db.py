"""Database wiring: the Tortoise config for the one `ava` app, start/stop, and migrations."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.migrations.api import migrate

logger = logging.getLogger(__name__)

#: Every package's models live in the single Tortoise app `ava` (ARCHITECTURE: one app, all models).
MODEL_MODULES: list[str] = ["core.models", "imaging.models", "billing.models"]


def normalise_db_url(url: str) -> str:
    """Map common URL spellings onto the ones Tortoise understands (``postgresql://`` -> ``postgres://``)."""
    scheme, _, rest = url.partition("://")
    if scheme in {"postgresql", "postgresql+asyncpg", "asyncpg"}:
        return f"postgres://{rest}"
    return url


#: PostgreSQL pool size per process. No connection is held during a network call (LLM, image download, channel
#: send): turns and photo jobs hold one only for short queries and one short commit, so a modest pool serves the
#: worker's 20 concurrent jobs (a test runs 40 concurrent slow turns on 5). Tortoise's default is 5.
DEFAULT_POOL_SIZE = 10


def with_pool_size(db_url: str, pool_size: int = DEFAULT_POOL_SIZE) -> str:
    """Add `maxsize` to a PostgreSQL URL that does not set it (SQLite URLs are returned unchanged)."""
    url = normalise_db_url(db_url)
    if not url.startswith("postgres://") or "maxsize=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}maxsize={pool_size}"


async def keep_session(connection: object) -> None:
    """asyncpg's pool `reset`: nothing beyond what asyncpg always does (roll back a transaction left open).

    The default reset runs one more statement each time a connection goes back to the pool (every ORM query:
    `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`), a round trip that cost the webhook ingest
    about a sixth of its CPU. It undoes session state this application never makes: no `SET` outside a
    transaction, no `LISTEN`, no session-level advisory lock (only `pg_advisory_xact_lock`), no cursor `WITH HOLD`.
    Code that starts making such state must use it inside a transaction (`SET LOCAL`) or restore it.
    """


def connection_config(db_url: str) -> str | dict[str, Any]:
    """Tortoise's `default` connection for `db_url`: the pool size added; on asyncpg, `keep_session` as reset."""
    url = with_pool_size(db_url)
    config: dict[str, Any] = expand_db_url(url) if url.startswith("postgres://") else {}
    if config.get("engine") != "tortoise.backends.asyncpg":
        return url
    config["credentials"]["reset"] = keep_session
    return config


def tortoise_config(db_url: str) -> dict[str, Any]:
    """The Tortoise config dict for `db_url`: one app `ava`, migrations in the top-level package."""
    return {
        "connections": {"default": connection_config(db_url)},
        "apps": {
            "ava": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


#: Used only by the ``tortoise`` CLI for ``makemigrations`` (it needs a static config); the service itself
#: always builds its config from Settings. In-memory SQLite: importing this touches nothing.
TORTOISE_ORM = tortoise_config("sqlite://:memory:")


def ensure_sqlite_dir(db_url: str) -> None:
    """Create the directory of a file-backed SQLite database so a fresh clone starts cleanly."""
    parts = urlsplit(db_url)
    if parts.scheme != "sqlite":
        return
    path = db_url.split("://", 1)[1].split("?", 1)[0]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


async def run_migrations(db_url: str) -> None:
    """Apply every pending migration to the database at `db_url`, then release its connections."""
    ensure_sqlite_dir(db_url)
    try:
        await migrate(config=tortoise_config(db_url))
    finally:
        await Tortoise.close_connections()
    logger.info("migrations applied")


async def init_db(db_url: str) -> None:
    """Open the ORM on `db_url` (schema must already be migrated)."""
    ensure_sqlite_dir(db_url)
    await Tortoise.init(config=tortoise_config(db_url))


async def close_db() -> None:
    """Close every ORM connection."""
    await Tortoise.close_connections()
