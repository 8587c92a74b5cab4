"""Image providers: the Replicate adapter against a fake Replicate API, the offline placeholder, the factory."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import threading
import time
from collections.abc import AsyncIterator

import pytest
from PIL import Image
from replicate.client import Client as ReplicateClient

from core.errors import ConfigError
from imaging.providers import (
    ContentPolicyError,
    ImageProvider,
    ImageRequest,
    PermanentProviderError,
    TransientProviderError,
)
from imaging.providers.factory import ProviderConfig, create_image_provider
from imaging.providers.placeholder import PlaceholderImageProvider
from imaging.providers.replicate import ReplicateImageProvider
from tests.fakes.replicate import NSFW_ERROR, POLICY_ERROR, FakeReplicate
from tests.fakes.server import FakeServer

TOKEN = "r8_fake_test_token"
REFERENCE_MODEL = "black-forest-labs/flux-1.1-pro"
EDIT_MODEL = "black-forest-labs/flux-kontext-pro"


def _jpeg(colour: tuple[int, int, int] = (10, 20, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (80, 120), colour).save(out, format="JPEG")
    return out.getvalue()


@pytest.fixture
async def fake() -> AsyncIterator[FakeReplicate]:
    """A running fake Replicate API."""
    async with FakeReplicate(token=TOKEN) as server:
        assert isinstance(server, FakeReplicate)
        yield server


def _provider(base_url: str, *, token: str = TOKEN, timeout: float = 5.0) -> ReplicateImageProvider:
    return ReplicateImageProvider(
        token,
        base_url=base_url,
        reference_model=REFERENCE_MODEL,
        edit_model=EDIT_MODEL,
        poll_interval=0.01,
        timeout=timeout,
    )


@pytest.fixture
async def provider(fake: FakeReplicate) -> AsyncIterator[ReplicateImageProvider]:
    """A Replicate provider pointed at the fake, polling fast."""
    built = _provider(fake.url)
    yield built
    await built.aclose()


async def test_every_provider_satisfies_the_port() -> None:
    """Both adapters pass `isinstance(..., ImageProvider)` (ARCH-03)."""
    replicate = _provider("http://127.0.0.1:9")
    assert isinstance(replicate, ImageProvider)
    assert isinstance(PlaceholderImageProvider(), ImageProvider)
    await replicate.aclose()


async def test_reference_then_kontext_photo(fake: FakeReplicate, provider: ReplicateImageProvider) -> None:
    """No reference goes to FLUX 1.1 pro without input_image; a reference goes to Kontext as a data URI."""
    portrait = await provider.generate(ImageRequest(prompt="portrait of a 27-year-old adult woman", seed=7))
    reference = _jpeg()
    photo = await provider.generate(ImageRequest(prompt="the same woman at a cafe", reference_image=reference))

    assert [c.model for c in fake.created] == [REFERENCE_MODEL, EDIT_MODEL]
    first, second = fake.created
    assert "input_image" not in first.input
    assert first.input == {
        "prompt": "portrait of a 27-year-old adult woman",
        "aspect_ratio": "2:3",
        "output_format": "jpg",
        "safety_tolerance": 2,
        "seed": 7,
    }
    assert second.input["input_image"] == "data:image/jpeg;base64," + base64.b64encode(reference).decode()
    assert second.input["prompt"] == "the same woman at a cafe"

    assert portrait.model == REFERENCE_MODEL and photo.model == EDIT_MODEL
    assert portrait.provider == "replicate" and portrait.data is None
    assert portrait.url == f"{fake.url}/files/{portrait.job_id}.jpg"
    assert portrait.content_type == "image/jpeg"
    assert portrait.seed == 7
    assert photo.job_id in fake.predictions and photo.job_id != portrait.job_id
    assert len(fake.requests_to(f"/v1/predictions/{photo.job_id}", "GET")) == fake.polls_to_finish


async def test_reference_url_is_passed_as_is(fake: FakeReplicate, provider: ReplicateImageProvider) -> None:
    """A reference given only by URL reaches Kontext unchanged, and Replicate fetches it from there."""
    url = f"{fake.url}/files/ref.jpg"  # served by the fake itself (no network here)
    await provider.generate(ImageRequest(prompt="p", reference_image_url=url))
    assert fake.created[0].model == EDIT_MODEL
    assert fake.created[0].input["input_image"] == url
    assert fake.fetched == [(url, 200, fake.jpeg)]


async def test_seed_reported_in_logs_is_returned(provider: ReplicateImageProvider) -> None:
    """Without a requested seed, the seed the model reports in its logs is returned."""
    image = await provider.generate(ImageRequest(prompt="p"))
    assert image.seed == 1234


async def test_server_error_is_transient(fake: FakeReplicate, provider: ReplicateImageProvider) -> None:
    """HTTP 500 on create raises TransientProviderError, and the provider itself does not retry."""
    fake.fail_next(1, status=500)
    with pytest.raises(TransientProviderError) as caught:
        await provider.generate(ImageRequest(prompt="p"))
    assert caught.value.retryable
    assert len(fake.requests_to(f"/v1/models/{REFERENCE_MODEL}/predictions")) == 1


async def test_rate_limit_is_transient_with_retry_after(fake: FakeReplicate, provider: ReplicateImageProvider) -> None:
    """HTTP 429 raises TransientProviderError carrying the server's Retry-After."""
    fake.rate_limit_next(retry_after=7)
    with pytest.raises(TransientProviderError) as caught:
        await provider.generate(ImageRequest(prompt="p"))
    assert caught.value.retry_after == 7.0


async def test_shared_client_reads_retry_after_from_the_error(fake: FakeReplicate) -> None:
    """With a caller-supplied replicate.Client, a 429's wait time comes from Replicate's error detail."""
    fake.rate_limit_next(retry_after=3)
    client = ReplicateClient(api_token=TOKEN, base_url=fake.url)
    provider = ReplicateImageProvider("", reference_model=REFERENCE_MODEL, edit_model=EDIT_MODEL, client=client)
    with pytest.raises(TransientProviderError) as caught:
        await provider.generate(ImageRequest(prompt="p"))
    assert caught.value.retry_after == 3.0


@pytest.mark.parametrize("error", [POLICY_ERROR, NSFW_ERROR])
async def test_safety_refusal_is_content_policy(
    fake: FakeReplicate, provider: ReplicateImageProvider, error: str
) -> None:
    """A prediction failed by the safety filter raises ContentPolicyError (not retryable)."""
    fake.policy_fail_next(error)
    with pytest.raises(ContentPolicyError) as caught:
        await provider.generate(ImageRequest(prompt="p"))
    assert not caught.value.retryable
    assert caught.value.job_id in fake.predictions


async def test_ordinary_model_failure_is_transient(fake: FakeReplicate, provider: ReplicateImageProvider) -> None:
    """A prediction failed for another reason raises TransientProviderError."""
    fake.fail_prediction_next()
    with pytest.raises(TransientProviderError):
        await provider.generate(ImageRequest(prompt="p"))


async def test_hang_times_out_and_cancels(fake: FakeReplicate) -> None:
    """A prediction that never finishes raises TransientProviderError after the timeout and is cancelled."""
    fake.hang_next()
    provider = _provider(fake.url, timeout=0.3)
    try:
        with pytest.raises(TransientProviderError) as caught:
            await provider.generate(ImageRequest(prompt="p"))
    finally:
        await provider.aclose()
    job_id = caught.value.job_id
    assert job_id is not None
    assert fake.requests_to(f"/v1/predictions/{job_id}/cancel", "POST")
    assert fake.predictions[job_id].status == "canceled"


async def test_bad_token_is_permanent(fake: FakeReplicate) -> None:
    """HTTP 401 raises PermanentProviderError."""
    provider = _provider(fake.url, token="r8_wrong")
    try:
        with pytest.raises(PermanentProviderError) as caught:
            await provider.generate(ImageRequest(prompt="p"))
    finally:
        await provider.aclose()
    assert "401" in str(caught.value)


async def test_invalid_input_is_permanent(fake: FakeReplicate, provider: ReplicateImageProvider) -> None:
    """HTTP 422 on create raises PermanentProviderError."""
    fake.fail_next(1, status=422)
    with pytest.raises(PermanentProviderError):
        await provider.generate(ImageRequest(prompt="p"))


async def test_unreachable_api_is_transient() -> None:
    """A connection error raises TransientProviderError."""
    async with FakeServer() as closed:
        url = closed.url
    provider = _provider(url)
    try:
        with pytest.raises(TransientProviderError):
            await provider.generate(ImageRequest(prompt="p"))
    finally:
        await provider.aclose()


async def test_token_is_never_logged(provider: ReplicateImageProvider, caplog: pytest.LogCaptureFixture) -> None:
    """Even at DEBUG level no log record contains the API token."""
    with caplog.at_level(logging.DEBUG):
        await provider.generate(ImageRequest(prompt="p"))
    assert caplog.records
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(provider)


async def test_placeholder_draws_a_jpeg() -> None:
    """The placeholder returns real 2:3 JPEG bytes that differ for different prompts."""
    placeholder = PlaceholderImageProvider()
    first = await placeholder.generate(ImageRequest(prompt="a woman on a beach", seed=1))
    second = await placeholder.generate(ImageRequest(prompt="a woman in a library", seed=1))
    assert first.data is not None and second.data is not None
    with Image.open(io.BytesIO(first.data)) as decoded:
        assert decoded.format == "JPEG"
        assert decoded.size == (832, 1248)
    assert first.data != second.data
    assert first.content_type == "image/jpeg" and first.model == "placeholder-v1" and first.url is None
    assert first.job_id and first.job_id != second.job_id


async def test_placeholder_shows_the_reference() -> None:
    """With a reference image the placeholder differs from the same request without one."""
    placeholder = PlaceholderImageProvider()
    plain = await placeholder.generate(ImageRequest(prompt="p", seed=3))
    conditioned = await placeholder.generate(ImageRequest(prompt="p", seed=3, reference_image=_jpeg((250, 0, 0))))
    assert plain.data is not None and conditioned.data is not None
    assert plain.data != conditioned.data
    with pytest.raises(PermanentProviderError):
        await placeholder.generate(ImageRequest(prompt="p", reference_image=b"not an image"))


async def test_factory_selection() -> None:
    """Explicit kind wins; otherwise Replicate with a token, else the placeholder in development."""
    assert isinstance(create_image_provider(ProviderConfig()), PlaceholderImageProvider)
    assert isinstance(
        create_image_provider(ProviderConfig(kind="placeholder", replicate_api_token=TOKEN)), PlaceholderImageProvider
    )
    chosen = create_image_provider(ProviderConfig(replicate_api_token=TOKEN, environment="production"))
    assert isinstance(chosen, ReplicateImageProvider)
    await chosen.aclose()


def test_factory_refusals() -> None:
    """Production refuses the placeholder (explicit or by default) and Replicate needs a token."""
    with pytest.raises(ConfigError, match="development-only"):
        create_image_provider(ProviderConfig(kind="placeholder", environment="production", replicate_api_token=TOKEN))
    with pytest.raises(ConfigError, match="REPLICATE_API_TOKEN"):
        create_image_provider(ProviderConfig(environment="production"))
    with pytest.raises(ConfigError, match="REPLICATE_API_TOKEN"):
        create_image_provider(ProviderConfig(kind="replicate", replicate_api_token="  "))


def test_config_repr_hides_token() -> None:
    """The provider config never shows the token in its repr."""
    assert TOKEN not in repr(ProviderConfig(replicate_api_token=TOKEN))


class OverlapPlaceholder(PlaceholderImageProvider):
    """The real placeholder, recording how many images it was drawing at the same time (at most)."""

    def __init__(self, *, max_drawing: int) -> None:
        super().__init__(max_drawing=max_drawing)
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0

    def draw(self, request: ImageRequest, size: tuple[int, int]) -> bytes:
        """Draw as the real placeholder does, slowly enough (in its thread) for overlaps to show."""
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(0.15)
            return super().draw(request, size)
        finally:
            with self.lock:
                self.active -= 1


async def test_placeholder_draws_at_most_max_drawing_at_once() -> None:
    """Requests beyond `max_drawing` wait their turn (each drawing holds a ~1 MP canvas in a thread); all are drawn."""
    one = OverlapPlaceholder(max_drawing=1)
    results = await asyncio.gather(*(one.generate(ImageRequest(prompt=f"p{n}", seed=n)) for n in range(3)))
    assert one.peak == 1
    assert all(result.data for result in results)
    three = OverlapPlaceholder(max_drawing=3)
    await asyncio.gather(*(three.generate(ImageRequest(prompt=f"p{n}", seed=n)) for n in range(3)))
    assert three.peak > 1  # the limit, not the event loop, is what serialised the first three
