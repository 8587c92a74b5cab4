"""Migrations build the schema on PostgreSQL and SQLite; the database itself enforces the safety floor."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from tortoise.exceptions import IntegrityError, ValidationError

from core.models import Avatar, ChannelIdentity, Direction, Message, User
from tests.conftest import _asyncpg_dsn

CORE_TABLES = {"users", "channel_identities", "avatars", "messages"}

AVATAR_19 = (
    "INSERT INTO avatars (user_id, name, gender, age, nationality, appearance, personality, created_at, updated_at) "
    "VALUES ({user}, 'Ava', 'woman', {age}, 'Italian', 'dark hair', 'caring', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
)


def test_sqlite_migrations_create_core_tables(sqlite_db: Path) -> None:
    """`ava-bot migrate` creates every core table on SQLite (directory included)."""
    with sqlite3.connect(sqlite_db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables >= CORE_TABLES


def test_sqlite_rejects_avatar_aged_19(sqlite_db: Path) -> None:
    """SQLite's CHECK refuses an avatar of 19 written with raw SQL, and accepts 20."""
    with sqlite3.connect(sqlite_db) as conn:
        conn.execute("INSERT INTO users (created_at, updated_at) VALUES (CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)")
        user = conn.execute("SELECT max(id) FROM users").fetchone()[0]
        with pytest.raises(sqlite3.IntegrityError, match="avatars_age_adult"):
            conn.execute(AVATAR_19.format(user=user, age=19))
        conn.execute(AVATAR_19.format(user=user, age=20))


def test_sqlite_migrate_twice_is_a_no_op(sqlite_db: Path) -> None:
    """Re-running migrations on an up-to-date database changes nothing and succeeds."""
    env = dict(os.environ, DATABASE_URL=f"sqlite://{sqlite_db}")
    done = subprocess.run([sys.executable, "-m", "ava_bot.cli", "migrate"], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0


async def test_postgres_migrations_create_core_tables(db: str) -> None:
    """The session database was built by the real migrations."""
    conn = await asyncpg.connect(_asyncpg_dsn(db))
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        checks = await conn.fetch("SELECT conname FROM pg_constraint WHERE contype = 'c'")
    finally:
        await conn.close()
    assert {r["tablename"] for r in rows} >= CORE_TABLES
    assert "avatars_age_adult" in {r["conname"] for r in checks}


async def test_postgres_rejects_avatar_aged_19(db: str) -> None:
    """PostgreSQL's CHECK refuses an avatar of 19 written with raw SQL, and accepts 20."""
    user = await User.create()
    conn = await asyncpg.connect(_asyncpg_dsn(db))
    try:
        with pytest.raises(asyncpg.CheckViolationError, match="avatars_age_adult"):
            await conn.execute(AVATAR_19.format(user=user.id, age=19))
        await conn.execute(AVATAR_19.format(user=user.id, age=20))
    finally:
        await conn.close()


async def test_model_validation_rejects_avatar_aged_19(db: str) -> None:
    """The ORM refuses an under-20 avatar before the database is asked."""
    user = await User.create()
    with pytest.raises(ValidationError):
        await Avatar.create(
            user=user, name="Ava", gender="woman", age=19, nationality="Italian", appearance="x", personality="shy"
        )
    assert await Avatar.filter(user=user).count() == 0


async def test_second_insert_of_same_external_message_is_rejected(db: str) -> None:
    """(channel, external message id) is unique: a redelivered webhook cannot create a second row."""
    user = await User.create()
    fields = {"user": user, "direction": Direction.INBOUND, "channel": "telegram", "chat_id": "1", "text": "hi"}
    await Message.create(external_message_id="m-1", **fields)
    with pytest.raises(IntegrityError):
        await Message.create(external_message_id="m-1", **fields)
    await Message.create(external_message_id="m-1", **(fields | {"channel": "whatsapp"}))
    assert await Message.filter(external_message_id="m-1").count() == 2


async def test_outbound_messages_without_external_id_do_not_collide(db: str) -> None:
    """Outbound rows carry no external id and never trip the uniqueness rule."""
    user = await User.create()
    for _ in range(2):
        await Message.create(user=user, direction=Direction.OUTBOUND, channel="web", chat_id="1", text="hello")
    assert await Message.filter(user=user).count() == 2


async def test_channel_identity_is_unique_per_channel(db: str) -> None:
    """One platform account maps to exactly one user."""
    user = await User.create()
    await ChannelIdentity.create(user=user, channel="telegram", external_user_id="42")
    with pytest.raises(IntegrityError):
        await ChannelIdentity.create(user=await User.create(), channel="telegram", external_user_id="42")


def test_postgres_urls_get_a_pool_big_enough_for_the_worker() -> None:
    """PostgreSQL URLs get a pool sized for concurrent turns unless they set one; SQLite is untouched."""
    from ava_bot.db import DEFAULT_POOL_SIZE, with_pool_size

    assert with_pool_size("postgresql://u@h/db") == f"postgres://u@h/db?maxsize={DEFAULT_POOL_SIZE}"
    assert with_pool_size("postgres://u@h/db?ssl=true") == f"postgres://u@h/db?ssl=true&maxsize={DEFAULT_POOL_SIZE}"
    assert with_pool_size("postgres://u@h/db?maxsize=7") == "postgres://u@h/db?maxsize=7"
    assert with_pool_size("sqlite://./data/ava.sqlite3") == "sqlite://./data/ava.sqlite3"


def _migrate_sqlite(path: Path, target: str | None) -> None:
    _migrate(f"sqlite://{path}", target)


def _migrate(url: str, target: str | None) -> None:
    """Migrate the database at `url` up (or down) to `target` (None: the latest), in a process of its own (this one
    has the ORM open on the session database)."""
    code = (
        "import asyncio, sys\n"
        "from tortoise import Tortoise\n"
        "from tortoise.migrations.api import migrate\n"
        "from ava_bot.db import tortoise_config\n"
        "async def main():\n"
        "    try:\n"
        f"        await migrate(config=tortoise_config({url!r}), target={target!r})\n"
        "    finally:\n"
        "        await Tortoise.close_connections()\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_sqlite_upgrade_to_typed_setup_draft_keeps_every_row(tmp_path: Path) -> None:
    """Migration 0004 drops the JSON draft column in place: users' messages and avatars survive on SQLite."""
    path = tmp_path / "upgrade.sqlite3"
    _migrate_sqlite(path, "ava.0003_photos")
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO users (id, setup_step, setup_draft, editing_avatar, reference_regenerations, mode,"
            " created_at, updated_at)"
            " VALUES (1, 'gender', '{\"gender\": \"woman\"}', 0, 0, 'secretary', '2026-01-01', '2026-01-01')"
        )
        db.execute(
            "INSERT INTO avatars (id, user_id, name, gender, age, nationality, appearance, personality, created_at,"
            " updated_at) VALUES (1, 1, 'Mia', 'woman', 25, 'Italian', 'dark hair', 'shy', '2026-01-01', '2026-01-01')"
        )
        db.execute(
            "INSERT INTO messages (id, user_id, direction, channel, chat_id, text, in_history, status, created_at)"
            " VALUES (1, 1, 'in', 'web', '1', 'hello', 0, 'done', '2026-01-01')"
        )
    _migrate_sqlite(path, None)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM avatars").fetchone() == (1,)
        columns = {row[1] for row in db.execute("PRAGMA table_info(users)")}
        assert "setup_draft" not in columns and {"draft_gender", "version", "question_round"} <= columns


async def test_postgres_inbound_functions_migrate_down_and_up_again(pg_url: str) -> None:
    """Migration 0012 down restores the store function of 0010 (CRC-32 keys only) and drops the one-call receive;
    up again brings both back."""
    name = f"ava_updown_{os.getpid()}"
    admin = await asyncpg.connect(_asyncpg_dsn(pg_url))
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = pg_url.rsplit("/", 1)[0] + f"/{name}"

    async def functions() -> tuple[set[str], bool]:
        connection = await asyncpg.connect(_asyncpg_dsn(url))
        try:
            names = {row[0] for row in await connection.fetch("SELECT proname FROM pg_proc WHERE proname LIKE 'ava_%'")}
            body = await connection.fetchval("SELECT prosrc FROM pg_proc WHERE proname = 'ava_store_inbound'")
        finally:
            await connection.close()
        return names, "ava_arrival_lock" in body

    try:
        _migrate(url, None)
        assert await functions() == ({"ava_arrival_lock", "ava_receive_inbound", "ava_store_inbound"} | _OTHERS, True)
        _migrate(url, "ava.0011_one_statement_turns")
        assert await functions() == ({"ava_store_inbound"} | _OTHERS, False)
        _migrate(url, None)
        assert await functions() == ({"ava_arrival_lock", "ava_receive_inbound", "ava_store_inbound"} | _OTHERS, True)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


#: Functions of earlier migrations, there throughout.
_OTHERS = {"ava_require", "ava_take_unit"}
