"""The PostgreSQL pool's cheap reset (`ava_bot.db.keep_session`): what a returned connection still must not carry.

The pool skips asyncpg's reset statement; asyncpg still rolls back a transaction a connection was given back
with, so no half-done work and no transaction-scoped lock leaks into the next query.
"""

from __future__ import annotations

from tortoise import connections

from ava_bot.db import connection_config, keep_session
from core.inbox import arrival_lock_key
from core.models import User


def test_postgres_pools_use_the_cheap_reset_and_sqlite_is_untouched() -> None:
    """asyncpg connections get `keep_session` as the pool reset and the pool size; SQLite URLs stay URLs."""
    config = connection_config("postgresql://ava@db:5432/ava")
    assert isinstance(config, dict)
    assert config["engine"] == "tortoise.backends.asyncpg"
    assert config["credentials"]["reset"] is keep_session
    assert config["credentials"]["maxsize"] == "10"
    assert connection_config("sqlite://./data/ava.sqlite3") == "sqlite://./data/ava.sqlite3"


async def test_a_connection_given_back_inside_a_transaction_is_rolled_back(db: str) -> None:
    """Work left uncommitted on a pooled connection (and its transaction locks) is gone once it is returned."""
    client = connections.get("default")
    async with client.acquire_connection() as connection:
        await connection.execute("BEGIN")
        await connection.execute(
            "INSERT INTO users (setup_step, mode, created_at, updated_at)"
            " VALUES ('onboarding', 'secretary', now(), now())"
        )
        await connection.execute("SELECT pg_advisory_xact_lock($1)", arrival_lock_key(1))
    assert await User.all().count() == 0
    # Every pooled connection answers outside a transaction, and the lock is free again.
    async with client.acquire_connection() as connection:
        assert not connection.is_in_transaction()
        assert await connection.fetchval("SELECT pg_try_advisory_xact_lock($1)", arrival_lock_key(1))
