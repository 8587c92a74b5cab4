"""Test harness: a fresh PostgreSQL database per session built by the real migrations, an isolated Redis
database, and outbound network blocked (pytest-socket, only loopback allowed: see pyproject addopts).

PostgreSQL and Redis are real and required: when they cannot be reached the run fails, it never skips.
URLs come from AVA_TEST_DATABASE_URL / AVA_TEST_REDIS_URL (defaults: the local servers).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from tortoise import connections

from ava_bot.db import close_db, init_db, normalise_db_url, run_migrations
from ava_bot.settings import Settings
from imaging.certs import DevCertificates, create_dev_certificates
from tests.fakes.openai import FakeOpenAI

#: Scans every log record of the suite for secrets (tests/logscan.py).
pytest_plugins = ["tests.logscan"]

ADMIN_DATABASE_URL = os.environ.get("AVA_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
TEST_REDIS_URL = os.environ.get("AVA_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")

# Tables every test starts without rows (the migrations bookkeeping table is kept).
KEEP_TABLES = {"tortoise_migrations"}


def _with_database(url: str, name: str) -> str:
    base, _, _ = normalise_db_url(url).rpartition("/")
    return f"{base}/{name}"


def _asyncpg_dsn(url: str) -> str:
    return normalise_db_url(url).replace("postgres://", "postgresql://", 1)


@pytest.fixture(scope="session")
async def pg_url() -> AsyncIterator[str]:
    """A brand-new PostgreSQL database for this session, migrated with the real migrations, ORM open on it."""
    name = f"ava_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(_asyncpg_dsn(ADMIN_DATABASE_URL), timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is required for the tests and is not reachable at {ADMIN_DATABASE_URL}: {exc}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = _with_database(ADMIN_DATABASE_URL, name)
    await run_migrations(url)
    await init_db(url)
    try:
        yield url
    finally:
        await close_db()
        admin = await asyncpg.connect(_asyncpg_dsn(ADMIN_DATABASE_URL), timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def truncate_all() -> None:
    """Delete every row of every application table (identities restart)."""
    conn = connections.get("default")
    _, rows = await conn.execute_query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    tables = [r["tablename"] for r in rows if r["tablename"] not in KEEP_TABLES]
    if tables:
        quoted = ", ".join(f'"{t}"' for t in tables)
        await conn.execute_script(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[str]:
    """The session database, emptied after the test."""
    try:
        yield pg_url
    finally:
        await truncate_all()


@pytest.fixture
async def redis() -> AsyncIterator[ArqRedis]:
    """An arq Redis client on the isolated test database, flushed before and after the test."""
    try:
        client = await create_pool(RedisSettings.from_dsn(TEST_REDIS_URL), retry=0)
    except Exception as exc:  # arq raises plain ConnectionError/OSError subclasses
        pytest.fail(f"Redis is required for the tests and is not reachable at {TEST_REDIS_URL}: {exc}")
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


@pytest.fixture(scope="session")
def dev_certs(tmp_path_factory: pytest.TempPathFactory) -> DevCertificates:
    """C2PA development certificates (local CA + leaf) shared by the session."""
    return create_dev_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def make_settings(tmp_path: Path, dev_certs: DevCertificates) -> Iterator[Any]:
    """Build `Settings` for a test without reading the developer's environment or `.env`."""

    from tests.logscan import remember_settings  # imported once pytest loaded the plugin (assertion rewriting)

    def build(**values: Any) -> Settings:
        values.setdefault("media_dir", tmp_path / "media")
        values.setdefault("secret_key_file", tmp_path / "secret_key")  # never the developer's data/secret_key
        values.setdefault("c2pa_cert_chain", dev_certs.chain)
        values.setdefault("c2pa_private_key", dev_certs.signer_key)
        return remember_settings(Settings(_env_file=None, **values))  # type: ignore[call-arg]

    saved = {k: v for k, v in os.environ.items() if k.upper() in _setting_env_names()}
    for key in saved:
        del os.environ[key]
    try:
        yield build
    finally:
        os.environ.update(saved)


def _setting_env_names() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file (in a directory that does not exist yet) migrated by the real `ava-bot migrate` command."""
    path = tmp_path_factory.mktemp("sqlite") / "sub" / "ava.sqlite3"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "AVA_ENV"}}
    env["DATABASE_URL"] = f"sqlite://{path}"
    done = subprocess.run(
        [sys.executable, "-m", "ava_bot.cli", "migrate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return path


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeOpenAI]:
    """A fake OpenAI-compatible server (an echo unless the test scripts its answers), reached by the real client."""
    async with FakeOpenAI() as fake:
        yield fake
