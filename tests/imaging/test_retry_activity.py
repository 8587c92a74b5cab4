"""The photo pipeline tells the request's chat when an attempt failed and the photo is tried again (the web chat's
"still trying…"), best effort: the fake Replicate behind the real client, the real worker and database."""

from __future__ import annotations

from core.messages import ChatRef
from core.ports import ActivityKind
from imaging.models import Photo, PhotoStatus
from tests.imaging.pipeline_env import CHAT, Env, _avatar, _request


class Announcements:
    """Records `announce` calls; can fail like a chat platform that is down."""

    def __init__(self, *, broken: bool = False) -> None:
        self.calls: list[tuple[ChatRef, ActivityKind]] = []
        self.broken = broken

    async def __call__(self, ref: ChatRef, kind: ActivityKind) -> None:
        self.calls.append((ref, kind))
        if self.broken:
            raise ConnectionError("channel down")


async def test_each_retry_is_announced_in_the_request_chat(env: Env) -> None:
    """Two transient failures announce `photo_retry` twice in the request's chat; the third attempt succeeds."""
    avatar = await _avatar()
    env.fake.fail_next(2, status=503)
    photo_id = await _request(env, avatar, kind="reference")
    announced = Announcements()
    await env.work(env.pipeline(announce=announced))
    assert (await Photo.get(id=photo_id)).status == PhotoStatus.READY
    assert announced.calls == [(CHAT, "photo_retry"), (CHAT, "photo_retry")]


async def test_final_failure_and_success_are_not_announced_as_retries(env: Env) -> None:
    """A photo that succeeds at once, or whose last attempt fails, announces no retry for that attempt."""
    avatar = await _avatar()
    env.fake.fail_next(3, status=503)
    failed = await _request(env, avatar, kind="reference", key="k-fail")
    announced = Announcements()
    await env.work(env.pipeline(announce=announced))
    assert (await Photo.get(id=failed)).status == PhotoStatus.FAILED
    assert len(announced.calls) == 2  # attempts 1 and 2 are retried; the third is the end (the notice says so)
    announced.calls.clear()
    made = await _request(env, avatar, kind="reference", key="k-ok")
    await env.work(env.pipeline(announce=announced))
    assert (await Photo.get(id=made)).status == PhotoStatus.READY and announced.calls == []


async def test_a_failing_announcement_does_not_stop_the_retry(env: Env) -> None:
    """An announcement that raises is ignored: the photo is still retried and made."""
    avatar = await _avatar()
    env.fake.fail_next(1, status=500)
    photo_id = await _request(env, avatar, kind="reference")
    announced = Announcements(broken=True)
    await env.work(env.pipeline(announce=announced))
    photo = await Photo.get(id=photo_id)
    assert (photo.status, photo.attempts, len(announced.calls)) == (PhotoStatus.READY, 2, 1)


async def test_photo_without_a_chat_announces_nothing(env: Env) -> None:
    """A photo with no recorded chat retries silently."""
    avatar = await _avatar()
    env.fake.fail_next(1, status=500)
    photo_id = await _request(env, avatar, kind="reference")
    await Photo.filter(id=photo_id).update(chat_channel=None, chat_id=None)
    announced = Announcements()
    await env.work(env.pipeline(announce=announced))
    assert (await Photo.get(id=photo_id)).status == PhotoStatus.READY and announced.calls == []
