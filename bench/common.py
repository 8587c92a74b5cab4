"""What the benchmarks share: a throw-away migrated database, Ava's real processes started as subprocesses, the
environment they run with, the event loop they run on, percentiles, and process memory read from /proc.

Databases: AVA_TEST_DATABASE_URL (admin URL; a temporary database is created and dropped) and AVA_TEST_REDIS_URL.
The benchmarks that start Ava's own web and worker processes use that Redis database's default arq queue, so give
them a Redis database to themselves (not one a test run is flushing); the keys they made are deleted at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg  # type: ignore[import-untyped]
from redis.asyncio import Redis

from ava_bot.db import close_db, init_db, normalise_db_url, run_migrations
from ava_bot.runtime import EventLoopKind
from ava_bot.runtime import run as run_on_loop
from ava_bot.settings import Settings
from tests.reliability.processes import AS_DEPLOYED

ADMIN_DATABASE_URL = os.environ.get("AVA_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("AVA_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
ROOT = Path(__file__).resolve().parent.parent
#: Key patterns Ava's processes write in Redis (arq's queue and jobs, drain slots, rate-limit counters).
AVA_KEY_PATTERNS = ("arq:*", "ava:*", "LIMITS*")
#: The event loop Ava's processes run on by default (the `EVENT_LOOP` setting): the benchmarks' own processes and
#: the bare baseline run on it too, so what they compare differs in the work measured only.
DEFAULT_LOOP: EventLoopKind = Settings.model_fields["event_loop"].default
T = TypeVar("T")


def run_benchmark(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the production default event loop."""
    return run_on_loop(main, DEFAULT_LOOP)


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (0..1) of `values`, nearest rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _dsn(url: str) -> str:
    return normalise_db_url(url).replace("postgres://", "postgresql://", 1)


async def analyze(database_url: str) -> None:
    """`ANALYZE` the benchmark's database once its working set is in: the statistics a running service's database
    has (PostgreSQL's autovacuum analyzes a table after 10% of it changed; it is off on some test machines, this
    one included). Without them the planner takes a table filled since the last analysis for the few rows it had
    then, and the plans Ava's processes cached then (a hash join over a scan of every message for each batch of
    webhooks) stay in use: the figures would be those of a database no production setup runs."""
    conn = await asyncpg.connect(_dsn(database_url), timeout=5)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def temporary_database(*, open_orm: bool = True) -> AsyncIterator[str]:
    """A fresh PostgreSQL database migrated by the real migrations (ORM open on it in this process when
    `open_orm`); dropped afterwards."""
    name = f"ava_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_dsn(ADMIN_DATABASE_URL), timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = normalise_db_url(ADMIN_DATABASE_URL).rpartition("/")
    url = f"{base}/{name}"
    try:
        await run_migrations(url)
        if open_orm:
            await init_db(url)
        yield url
    finally:
        if open_orm:
            await close_db()
        admin = await asyncpg.connect(_dsn(ADMIN_DATABASE_URL), timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def delete_ava_keys(redis_url: str = REDIS_URL) -> int:
    """Delete the keys Ava's processes made in the benchmark's Redis database; how many."""
    client = Redis.from_url(redis_url)
    deleted = 0
    try:
        for pattern in AVA_KEY_PATTERNS:
            batch = [key async for key in client.scan_iter(match=pattern, count=1000)]
            for start in range(0, len(batch), 1000):
                deleted += await client.delete(*batch[start : start + 1000])
    finally:
        await client.aclose()
    return deleted


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ava_env(workdir: Path, database_url: str, **settings: str) -> dict[str, str]:
    """The environment of an Ava process for a benchmark: development mode on the given database and
    AVA_TEST_REDIS_URL, files under `workdir`, and `settings` (upper-cased names) on top. Setting variables of the
    caller's environment are left out, so a developer's `.env`-style exports cannot change the figures. The
    interpreter runs as the Dockerfile runs it (`AS_DEPLOYED`: glibc's MALLOC_ARENA_MAX=2 and MALLOC_MMAP_THRESHOLD_,
    PYTHONOPTIMIZE=2) unless the caller set those variables."""
    names = {name.upper() for name in Settings.model_fields}
    env = {key: value for key, value in os.environ.items() if key.upper() not in names}
    env |= {key.upper(): str(value) for key, value in _base_settings(workdir, database_url).items()}
    env |= {key.upper(): value for key, value in settings.items()} | {"PYTHONPATH": str(ROOT)}
    return AS_DEPLOYED | env  # as the Dockerfile runs every process (measured as deployed)


def ava_settings(workdir: Path, database_url: str, **values: Any) -> Settings:
    """`Settings` for Ava's services run inside the benchmark's own process, as `ava_env` configures processes."""
    return Settings(_env_file=None, **(_base_settings(workdir, database_url) | values))  # type: ignore[call-arg]


def _base_settings(workdir: Path, database_url: str) -> dict[str, Any]:
    return {
        "ava_env": "development",
        "database_url": database_url,
        "redis_url": REDIS_URL,
        "secret_key": "bench-secret-key-" + "x" * 32,
        "media_dir": workdir / "media",
        "plans_file": ROOT / "plans.toml",
        "public_base_url": "https://ava.example",
        "moderation_disabled": True,
    }


class ServerProcess:
    """A Python module run as a subprocess (`python -m module args`), its log in a file, stopped with SIGTERM."""

    def __init__(
        self, name: str, argv: list[str], env: Mapping[str, str], workdir: Path, *, port: int | None = None
    ) -> None:
        self.command = name
        self.port = port
        self.log_path = workdir / f"{name.replace(' ', '-')}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", *argv], env=dict(env), cwd=workdir, stdout=log, stderr=log
            )

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    @property
    def url(self) -> str:
        """Base URL of a web process."""
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        """The end of the process's log (for error messages)."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def check_alive(self) -> None:
        """Raise with the log's tail when the process has exited."""
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.command} exited ({self.process.returncode}):\n{self.log_tail()}")

    async def wait_healthy(self, within: float = 60.0) -> None:
        """Wait until a web process answers `GET /health` (at most `within` seconds)."""
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                self.check_alive()
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.url}/health") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.command} not healthy after {within} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class AvaProcess(ServerProcess):
    """`ava-bot serve` (give a port) or `ava-bot worker`, with `env` from `ava_env`."""

    def __init__(self, command: str, env: Mapping[str, str], workdir: Path, *, port: int | None = None) -> None:
        if port is not None:
            env = dict(env) | {"PORT": str(port), "HOST": "127.0.0.1"}
        super().__init__(f"ava-bot {command}", ["ava_bot.cli", command], env, workdir, port=port)


def bare_server(workdir: Path, loop: EventLoopKind = DEFAULT_LOOP) -> ServerProcess:
    """The bare aiohttp baseline server (`bench.bare`) on a free port, on the `loop` event loop."""
    port = free_port()
    env = dict(os.environ) | {"PYTHONPATH": str(ROOT)}
    return ServerProcess("bare aiohttp", ["bench.bare", str(port), loop], env, workdir, port=port)


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of process `pid` in MB, from /proc/<pid>/status (VmRSS, VmHWM)."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in {"VmRSS", "VmHWM"}:
            fields[key] = int(value.split()[0]) / 1024  # kB
    return fields["VmRSS"], fields["VmHWM"]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process `pid` has used so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14 and 15)
