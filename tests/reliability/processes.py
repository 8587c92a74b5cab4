"""Real `ava-bot serve` / `ava-bot worker` subprocesses for the reliability suite.

Each process gets an explicit environment (nothing of the developer's Ava settings is inherited, and it runs in
its own directory so no `.env` is read), logs at DEBUG into one file per process, and is killed when the test
ends, passes or fails (and by the kernel if the test process itself dies: PR_SET_PDEATHSIG).

    stack = AvaStack(tmp_path, env)                      # env: see tests/reliability/conftest.py `ava_env`
    web = await stack.start_web()                        # waits for GET /health
    worker = await stack.start_worker(JOB_TIMEOUT_SECONDS="5")   # extra env for this process only
    webs, workers = await stack.start(webs=2, workers=2, extra_env={"S3_BUCKET": "media"})
    await worker.stop()                                  # SIGTERM, waits (fails the test past the timeout)
    worker.kill()                                        # SIGKILL
    print(worker.output)                                 # everything it printed (stdout + stderr)
    stack.assert_no_secrets()                            # no secret of any env appears in any output
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from arq.connections import RedisSettings, create_pool

from tests.logscan import scan as scan_shapes

REPO = Path(__file__).resolve().parents[2]
#: The interpreter's environment in the production image (the Dockerfile's runtime ENV; `tests/test_deploy.py`
#: holds the two together): the processes here, and the benchmarks', run as deployed.
AS_DEPLOYED = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "131072", "PYTHONOPTIMIZE": "2"}
#: The only variables of the test process a subprocess inherits (no Ava setting is among them).
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
#: Environment names whose values are secrets (besides passwords inside URLs).
SECRET_NAME = re.compile(r"SECRET|TOKEN|_KEY|PASSWORD|DSN", re.IGNORECASE)
#: Settings holding URLs that may carry a password.
URL_NAMES = ("DATABASE_URL", "REDIS_URL", "S3_ENDPOINT_URL")
#: A secret also counts as leaked when any run of this many of its characters appears (a partial leak).
LEAK_WINDOW = 12
WORKER_STARTED = "Starting worker for"
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def secrets_of(env: Mapping[str, str]) -> list[str]:
    """Secret values in `env`: values of secret-named variables and passwords inside URL settings."""
    found = [value for name, value in env.items() if SECRET_NAME.search(name) and value.strip()]
    for name in URL_NAMES:
        password = urlsplit(env.get(name, "")).password
        if password:
            found.append(password)
    return sorted(set(found))


def leaks(text: str, secrets: Iterable[str]) -> list[str]:
    """The secrets (or runs of `LEAK_WINDOW` of their characters) that appear in `text`."""
    found = []
    for secret in secrets:
        windows = [secret[i : i + LEAK_WINDOW] for i in range(max(1, len(secret) - LEAK_WINDOW + 1))]
        if any(window in text for window in windows):
            found.append(secret)
    return found


class AvaProcess:
    """One `ava-bot serve` or `ava-bot worker` subprocess with its output captured in `log_path`."""

    def __init__(self, name: str, command: str, env: Mapping[str, str], workdir: Path) -> None:
        self.name, self.command, self.env = name, command, dict(env)
        self.log_path = workdir / f"{name}.log"
        self.port = int(env["PORT"]) if command == "serve" else None
        self._workdir = workdir
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of a web process."""
        assert self.port is not None, f"{self.name} is not a web process"
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._popen is not None
        return self._popen.pid

    @property
    def running(self) -> bool:
        """True while the process has not exited."""
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit status (negative: killed by that signal), None while running."""
        return None if self._popen is None else self._popen.poll()

    @property
    def output(self) -> str:
        """Everything the process printed so far (stdout and stderr interleaved)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def start(self) -> AvaProcess:
        """Start the process (does not wait for it to be ready)."""
        assert self._popen is None, f"{self.name} was started already"
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(  # our own CLI, fixed arguments
                [sys.executable, "-m", "ava_bot.cli", self.command],
                env=self.env,
                cwd=self._workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of the test run reaches these through the cleanup only
                preexec_fn=_die_with_parent,  # only prctl in the child: no locks taken
            )
        return self

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Web: until GET /health answers 200. Worker: until arq logged its start (see `AvaStack.ping`)."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if not self.running:
                    raise AssertionError(f"{self.name} exited with {self.returncode}:\n{self.output[-4000:]}")
                if self.port is not None:
                    try:
                        if (await client.get(f"{self.url}/health")).status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                elif WORKER_STARTED in self.output:
                    return
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} not ready after {timeout} s:\n{self.output[-4000:]}")

    def signal(self, sig: signal.Signals) -> None:
        """Send `sig` to the process if it still runs."""
        if self.running:
            os.kill(self.pid, sig)

    async def wait_exit(self, timeout: float) -> int | None:
        """Wait up to `timeout` s for the process to exit; its exit status, or None if it still runs."""
        deadline = time.monotonic() + timeout
        while self.running and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.returncode

    async def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then wait; fails (after a SIGKILL) when it did not exit within `timeout` seconds."""
        self.signal(signal.SIGTERM)
        code = await self.wait_exit(timeout)
        if code is None:
            self.kill()
            raise AssertionError(f"{self.name} ignored SIGTERM for {timeout} s:\n{self.output[-4000:]}")
        return code

    def kill(self) -> None:
        """SIGKILL and reap (no clean-up runs in the process: a crash)."""
        if self._popen is None:
            return
        if self._popen.poll() is None:
            self._popen.kill()
        self._popen.wait(timeout=10)


class AvaStack:
    """Web and worker processes sharing one environment (database, Redis, fakes) and one working directory."""

    def __init__(self, workdir: Path, env: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.env = dict(env)
        self.processes: list[AvaProcess] = []

    def env_path(self, name: str) -> Path:
        """A path setting of the stack's env (e.g. MEDIA_DIR) as a Path."""
        return Path(self.env[name])

    def process_env(self, extra_env: Mapping[str, str] | None = None, **more: str) -> dict[str, str]:
        """The full environment of a new process: inherited basics, the stack's env, then the extras."""
        env = {name: os.environ[name] for name in INHERITED if name in os.environ}
        env["PYTHONUNBUFFERED"] = "1"
        return env | AS_DEPLOYED | self.env | dict(extra_env or {}) | more

    def spawn(self, command: str, extra_env: Mapping[str, str] | None = None, **more: str) -> AvaProcess:
        """Start `ava-bot <command>` (serve gets a free PORT unless given) without waiting for it."""
        env = self.process_env(extra_env, **more)
        if command == "serve" and "PORT" not in (extra_env or {}) and "PORT" not in more:
            env["PORT"] = str(free_port())
        role = "web" if command == "serve" else "worker"
        name = f"{role}{sum(p.command == command for p in self.processes) + 1}"
        process = AvaProcess(name, command, env, self.workdir)
        self.processes.append(process)
        return process.start()

    async def start_web(self, extra_env: Mapping[str, str] | None = None, **more: str) -> AvaProcess:
        """A web process (`ava-bot serve`) answering /health."""
        process = self.spawn("serve", extra_env, **more)
        await process.wait_ready()
        return process

    async def start_worker(self, extra_env: Mapping[str, str] | None = None, **more: str) -> AvaProcess:
        """A worker process (`ava-bot worker`) that started consuming (followed by a ping round trip)."""
        process = self.spawn("worker", extra_env, **more)
        await process.wait_ready()
        await self.ping(redis_url=process.env["REDIS_URL"])
        return process

    async def start(
        self, *, webs: int = 1, workers: int = 1, extra_env: Mapping[str, str] | None = None
    ) -> tuple[list[AvaProcess], list[AvaProcess]]:
        """`webs` web and `workers` worker processes, started together and all ready."""
        started = [self.spawn("serve", extra_env) for _ in range(webs)]
        started += [self.spawn("worker", extra_env) for _ in range(workers)]
        await asyncio.gather(*(p.wait_ready(timeout=60) for p in started))
        if workers:
            await self.ping()
        return started[:webs], started[webs:]

    async def run_cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run `ava-bot <args>` (e.g. "deadletters", "list") to completion with the stack's environment."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ava_bot.cli",
            *args,
            env=self.process_env(),
            cwd=self.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout)
        assert process.returncode is not None
        return subprocess.CompletedProcess(list(args), process.returncode, out.decode(), err.decode())

    async def ping(self, *, redis_url: str | None = None, timeout: float = 20.0) -> None:
        """Enqueue arq's `ping` job and wait for its result: some worker consumes the queue."""
        pool = await create_pool(RedisSettings.from_dsn(redis_url or self.env["REDIS_URL"]))
        try:
            job = await pool.enqueue_job("ping")
            assert job is not None
            assert await job.result(timeout=timeout, poll_delay=0.05) == "pong"
        finally:
            await pool.aclose()

    async def stop_all(self, timeout: float = 20.0) -> None:
        """SIGTERM every running process and wait for all of them."""
        running = [p for p in self.processes if p.running]
        await asyncio.gather(*(p.stop(timeout) for p in running))

    def kill_all(self) -> None:
        """SIGKILL every process still running (test clean-up: no orphans)."""
        for process in self.processes:
            process.kill()

    def secrets(self) -> list[str]:
        """Every secret value given to any process of the stack."""
        return sorted({s for p in self.processes for s in secrets_of(p.env)} | set(secrets_of(self.env)))

    def assert_no_secrets(self, extra: Iterable[str] = ()) -> None:
        """Fail when any output holds a secret of any process's env (or of `extra`), whole or a run of
        `LEAK_WINDOW` characters, or a secret-shaped value (`tests.logscan.PATTERNS`: DSN passwords, hashes...)."""
        secrets = [*self.secrets(), *extra]
        assert secrets, "no secrets to look for: the check would prove nothing"
        for process in self.processes:
            output = process.output
            found = leaks(output, secrets)
            assert not found, f"{process.name} printed secrets {[s[:4] + '…' for s in found]} ({process.log_path})"
            if scan_shapes(output, secrets) is not None:  # name the lines only on failure (one pass otherwise)
                lines = [hit[1] for line in output.splitlines() if (hit := scan_shapes(line, secrets))]
                raise AssertionError(f"{process.name} printed secret-shaped values:\n" + "\n".join(lines[:10]))
