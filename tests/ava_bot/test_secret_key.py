"""SECRET_KEY: a generated development key kept in a file, production refusing weak keys, loopback in development."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

import ava_bot.settings
from ava_bot.secret_key import load_or_create_secret, secret_key_problem
from ava_bot.settings import Settings
from core.errors import ConfigError
from tests.ava_bot.test_settings import PRODUCTION_BASE
from tests.conftest import TEST_REDIS_URL

SettingsFactory = Callable[..., Settings]


def production(make_settings: SettingsFactory, **values: object) -> Settings:
    """Complete production settings (whatever other keys production requires are filled in) with `values`."""
    draft = make_settings(**(PRODUCTION_BASE | values))
    others = {name.lower(): "set-for-this-test" for name in draft.missing_production_settings() if name != "SECRET_KEY"}
    return make_settings(**(PRODUCTION_BASE | others | values))


def test_development_secret_is_created_once_and_reused(tmp_path: Path) -> None:
    """The first call writes a random 48-byte key readable by its owner only; later calls read the same key."""
    path = tmp_path / "data" / "secret_key"
    first = load_or_create_secret(path)
    assert len(first) >= 64 and secret_key_problem(first) is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == first
    assert load_or_create_secret(tmp_path / "other") != first  # random, not a constant


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    """Concurrent first starts all end up with the same key (atomic creation, no half-written file)."""
    path = tmp_path / "secret_key"
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda _: load_or_create_secret(path), range(32)))
    assert len(keys) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no temporary files left


def test_a_damaged_secret_file_is_refused(tmp_path: Path) -> None:
    """A key file holding something too short stops start-up with a message saying what to do."""
    path = tmp_path / "secret_key"
    path.write_text("short\n")
    with pytest.raises(ConfigError, match="delete it"):
        load_or_create_secret(path)


def test_development_settings_sign_with_the_file_key(make_settings: SettingsFactory, tmp_path: Path) -> None:
    """Development without SECRET_KEY uses the file's key (the same across restarts), never a known constant."""
    path = tmp_path / "keys" / "secret_key"
    first = make_settings(secret_key_file=path).effective_secret_key
    assert make_settings(secret_key_file=path).effective_secret_key == first == path.read_text().strip()
    assert not hasattr(ava_bot.settings, "DEV_SECRET_KEY")
    assert any(str(path) in note for note in make_settings(secret_key_file=path).development_fallbacks())


@pytest.mark.parametrize(
    "weak",
    [
        "x" * 48,
        "changeme-changeme-changeme-changeme-changeme",
        "your-secret-key-here-please-replace-it-now-42",
        "ava-development-only-insecure-secret-key",
        "abababababababababababababababababababab",
        "short-but-random-Q7z",
    ],
)
def test_production_refuses_a_weak_secret(make_settings: SettingsFactory, weak: str) -> None:
    """Production stops on a short, repetitive or placeholder SECRET_KEY."""
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        production(make_settings, secret_key=weak).check()


@pytest.mark.parametrize("strong", [secrets.token_urlsafe(48), secrets.token_hex(32), secrets.token_urlsafe(32)])
def test_production_accepts_generated_secrets(make_settings: SettingsFactory, strong: str) -> None:
    """Keys made by the documented commands (and `openssl rand -hex 32`) pass."""
    production(make_settings, secret_key=strong).check()


def test_production_never_falls_back_to_a_file_key(make_settings: SettingsFactory, tmp_path: Path) -> None:
    """Production without SECRET_KEY is refused and writes no key file."""
    settings = production(make_settings, secret_key=None, secret_key_file=tmp_path / "k")
    with pytest.raises(Exception, match="SECRET_KEY"):
        settings.check()
    with pytest.raises(Exception, match="SECRET_KEY"):
        _ = settings.effective_secret_key
    assert not (tmp_path / "k").exists()


def test_listening_address(make_settings: SettingsFactory) -> None:
    """Development listens on loopback, production on every interface (a container), HOST overrides both."""
    assert make_settings().effective_host == "127.0.0.1"
    assert make_settings(ava_env="production").effective_host == "0.0.0.0"
    assert make_settings(host="0.0.0.0").effective_host == "0.0.0.0"
    assert make_settings(ava_env="production", host="10.1.2.3").effective_host == "10.1.2.3"


def test_trusted_proxies_must_be_networks(make_settings: SettingsFactory) -> None:
    """A malformed TRUSTED_PROXIES entry is refused when settings load."""
    assert [str(n) for n in make_settings(trusted_proxies="10.0.0.1, fd00::/8").trusted_proxy_networks] == [
        "10.0.0.1/32",
        "fd00::/8",
    ]
    with pytest.raises(ValidationError):
        make_settings(trusted_proxies="10.0.0.0/8,not-a-network")


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on `port` (Linux /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].partition(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_serve_in_development_binds_loopback_with_a_generated_key(tmp_path: Path) -> None:
    """`ava-bot serve` without SECRET_KEY or HOST listens on 127.0.0.1 only and creates data/secret_key (0600)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "AVA_", "HOST"))}
    env |= {"DATABASE_URL": f"sqlite://{tmp_path}/ava.sqlite3", "REDIS_URL": TEST_REDIS_URL, "PORT": str(port)}
    migrate = subprocess.run(
        [sys.executable, "-m", "ava_bot.cli", "migrate"], cwd=tmp_path, env=env, capture_output=True, timeout=120
    )
    assert migrate.returncode == 0, migrate.stderr
    process = subprocess.Popen(
        [sys.executable, "-m", "ava_bot.cli", "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(150):
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("serve did not answer /health")
        assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1 (little-endian hex), nothing else
        key_file = tmp_path / "data" / "secret_key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert secret_key_problem(key_file.read_text().strip()) is None
    finally:
        process.terminate()
        process.wait(timeout=15)
