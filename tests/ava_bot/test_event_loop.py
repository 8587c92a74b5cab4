"""The event loop of the long-running processes (`EVENT_LOOP`): uvloop by default, Python's own loop on request,
and a setting that is not valid refused by name before anything starts."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from ava_bot.cli import main
from ava_bot.runtime import new_event_loop, run, running_loop_name
from ava_bot.settings import Settings, load_settings
from core.errors import ConfigError


async def _where() -> tuple[str, type[asyncio.AbstractEventLoop]]:
    await asyncio.sleep(0)  # a real round through the loop
    return running_loop_name(), type(asyncio.get_running_loop())


def test_uvloop_is_the_default() -> None:
    assert Settings.model_fields["event_loop"].default == "uvloop"


@pytest.mark.parametrize(("kind", "loop_class"), [("uvloop", uvloop.Loop), ("asyncio", asyncio.BaseEventLoop)])
def test_run_uses_the_loop_asked_for(kind: str, loop_class: type) -> None:
    name, used = run(_where(), kind)  # type: ignore[arg-type]
    assert name == kind
    assert issubclass(used, loop_class)
    assert kind == "uvloop" or not issubclass(used, uvloop.Loop)


def test_run_shuts_down_as_asyncio_run_does() -> None:
    """Tasks still running when `main` returns are cancelled, and the loop is closed."""
    cancelled = []
    loops: list[asyncio.AbstractEventLoop] = []

    async def straggler() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main_coro() -> int:
        loops.append(asyncio.get_running_loop())
        asyncio.get_running_loop().create_task(straggler())
        await asyncio.sleep(0)
        return 7

    assert run(main_coro(), "uvloop") == 7
    assert cancelled == [True]
    assert loops[0].is_closed()


def test_new_event_loop_gives_a_fresh_loop_each_time() -> None:
    first, second = new_event_loop("uvloop"), new_event_loop("uvloop")
    try:
        assert first is not second and isinstance(first, uvloop.Loop)
    finally:
        first.close()
        second.close()


def test_a_bad_event_loop_value_is_refused_by_name(make_settings: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_LOOP", "trio")
    with pytest.raises(ConfigError, match=r"EVENT_LOOP: Input should be 'uvloop' or 'asyncio'"):
        load_settings()


def test_a_refused_value_is_never_echoed(make_settings: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each refused variable is named, what it should be is said, and the value itself (it may be a secret pasted
    into the wrong variable) is not repeated."""
    monkeypatch.setenv("SHUTDOWN_GRACE_SECONDS", "sk-live-very-secret-value")
    monkeypatch.setenv("EVENT_LOOP", "sk-live-another-secret")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    text = str(refused.value)
    assert "SHUTDOWN_GRACE_SECONDS: Input should be a valid integer" in text
    assert "EVENT_LOOP: Input should be 'uvloop' or 'asyncio'" in text
    assert "secret" not in text


def test_the_cli_exits_2_with_the_reason(
    make_settings: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ava-bot worker` with EVENT_LOOP=trio: exit status 2 and one line saying why, no traceback."""
    monkeypatch.setenv("EVENT_LOOP", "trio")
    assert main(["worker"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ava-bot: invalid settings: EVENT_LOOP:")
    assert "Traceback" not in err
