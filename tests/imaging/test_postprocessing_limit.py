"""Photo post-processing (watermark + C2PA signing, in threads) runs for at most `max_postprocessing` photos at
once: more would only raise the worker's peak memory. Real pipeline, arq worker, fake Replicate."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from imaging.models import Photo, PhotoStatus
from imaging.provenance import ProvenanceSigner
from tests.imaging.pipeline_env import Env, _avatar, _request


class OverlapSigner(ProvenanceSigner):
    """The real signer, recording how many photos it was signing at the same time (at most)."""

    lock = threading.Lock()
    active = 0
    peak = 0

    def sign(self, manifest: Mapping[str, Any], jpeg: bytes) -> bytes:
        """Sign as the real signer does, slowly enough (in its worker thread) for overlaps to show."""
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(0.15)  # stands for the CPU work of a large photo; runs in the pipeline's thread
            return super().sign(manifest, jpeg)
        finally:
            with self.lock:
                self.active -= 1


async def _three_photos(env: Env, limit: int) -> tuple[OverlapSigner, list[int]]:
    signer = OverlapSigner.from_files(env.certs.chain, env.certs.signer_key)
    assert isinstance(signer, OverlapSigner)
    photo_ids = []
    for n in range(3):
        avatar = await _avatar()
        photo_ids.append(await _request(env, avatar, kind="reference", key=f"ref{n}"))
    await env.work(env.pipeline(signer=signer, max_postprocessing=limit))
    return signer, photo_ids


async def test_one_photo_post_processed_at_a_time_when_limited_to_one(env: Env) -> None:
    """With a limit of one, three photo jobs running together never sign two photos at once; all end ready."""
    signer, photo_ids = await _three_photos(env, limit=1)
    assert signer.peak == 1
    assert [(await Photo.get(id=i)).status for i in photo_ids] == [PhotoStatus.READY] * 3


async def test_photos_post_processed_together_up_to_the_limit(env: Env) -> None:
    """With a limit of three the same jobs do overlap (the limit, not the worker, is what serialised them)."""
    signer, photo_ids = await _three_photos(env, limit=3)
    assert signer.peak > 1
    assert [(await Photo.get(id=i)).status for i in photo_ids] == [PhotoStatus.READY] * 3
