"""`ReplicateImageProvider`: FLUX models on Replicate, driven explicitly (create, then poll).

Without a reference image the text-to-image model (`reference_model`, FLUX 1.1 pro) makes the
reference portrait; with one, the edit model (`edit_model`, FLUX Kontext pro) gets it as
`input_image` so every later photo keeps the same face.

We call `POST /v1/models/{owner}/{name}/predictions` without `Prefer: wait` and poll
`GET /v1/predictions/{id}` ourselves instead of `replicate.run`, which gives us the status, our own
overall timeout (the prediction is cancelled when it runs out) and typed errors (LIBRARY-NOTES).
The output is returned as a URL: downloading it, with limits, is the pipeline's job.

The API token only ever lives in the client's Authorization header; it is never logged.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from typing import Any

import httpx
from replicate.client import Client as ReplicateClient
from replicate.exceptions import ReplicateError
from replicate.prediction import Prediction

from core.errors import ConfigError
from imaging.providers.base import GeneratedImage, ImageRequest
from imaging.providers.errors import (
    ContentPolicyError,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.replicate.com"
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "canceled"})
#: Replicate recommends data URIs only below this size; larger references should be passed by URL.
DATA_URI_RECOMMENDED_MAX = 1024 * 1024
#: FLUX Kontext refuses a safety tolerance above 2 when an input image is given.
KONTEXT_MAX_SAFETY_TOLERANCE = 2

# Wording of safety refusals seen from FLUX models on Replicate ("NSFW content detected...",
# "The input or output was flagged as sensitive... (E005)"). Bare "content" is not enough: it also
# appears in ordinary failures ("could not download content").
_POLICY_ERROR = re.compile(
    r"nsfw|flagged|sensitive|safety|moderat|content[ _-]?(policy|filter|violation)|inappropriate|\bE005\b",
    re.IGNORECASE,
)
_URL = re.compile(r"(\bhttps?://[^\s/?#\"'<>]+)[^\s\"'<>]*", re.IGNORECASE)
_SEED_IN_LOGS = re.compile(r"\bseed\b\s*[:=]?\s*(\d+)", re.IGNORECASE)
_THROTTLE_DETAIL = re.compile(r"(\d+(?:\.\d+)?)\s*(?:second|sec|s\b)", re.IGNORECASE)
_PERMANENT_STATUSES = frozenset({400, 401, 402, 403, 404, 413, 422})  # 402: out of credit
_CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}


class ReplicateImageProvider:
    """FLUX 1.1 pro for reference portraits and FLUX Kontext pro for photos of the same face, on Replicate."""

    name: str = "replicate"

    def __init__(
        self,
        api_token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        reference_model: str,
        edit_model: str,
        poll_interval: float = 1.0,
        timeout: float = 120.0,
        safety_tolerance: int = 2,
        client: ReplicateClient | None = None,
    ) -> None:
        self._reference_model = _parse_model(reference_model)
        self._edit_model = _parse_model(edit_model)
        self._poll_interval = poll_interval
        self._timeout = timeout
        self._safety_tolerance = safety_tolerance
        self._transport: httpx.AsyncHTTPTransport | None = None
        if client is not None:
            self._client = client  # shared client: Retry-After of a 429 is then read from the error text only
            return
        if not api_token.strip():
            raise ConfigError("the Replicate image provider needs REPLICATE_API_TOKEN")
        # Our own transport so `aclose` can release the connections; the response hook turns a 429
        # into an error carrying Retry-After, which `ReplicateError` would drop.
        self._transport = httpx.AsyncHTTPTransport()
        self._client = ReplicateClient(
            api_token=api_token,
            base_url=base_url,
            transport=self._transport,
            event_hooks={"response": [_raise_rate_limited]},
        )

    def __repr__(self) -> str:
        return f"ReplicateImageProvider(reference_model={'/'.join(self._reference_model)!r})"

    async def generate(self, request: ImageRequest) -> GeneratedImage:
        """Run one prediction to completion and return its output URL (`data` stays None)."""
        owner, name = self._edit_model if request.has_reference else self._reference_model
        model = f"{owner}/{name}"
        model_input = self._build_input(request)
        prediction: Prediction | None = None
        try:
            async with asyncio.timeout(self._timeout):
                prediction = await self._client.models.predictions.async_create(model=(owner, name), input=model_input)
                logger.info("replicate prediction %s created on %s", prediction.id, model)
                while prediction.status not in TERMINAL_STATUSES:
                    await asyncio.sleep(self._poll_interval)
                    prediction = await self._client.predictions.async_get(prediction.id)
        except TimeoutError:
            job_id = prediction.id if prediction is not None else None
            if job_id is not None:
                await self._cancel(job_id)
            raise TransientProviderError(
                f"Replicate prediction on {model} did not finish within {self._timeout:g} s", job_id=job_id
            ) from None
        except ReplicateError as exc:
            raise _from_http_error(exc, model, prediction.id if prediction is not None else None) from exc
        except httpx.HTTPError as exc:  # connection refused/reset, read timeout, protocol errors
            raise TransientProviderError(f"network error talking to Replicate: {type(exc).__name__}") from exc
        except ValueError as exc:  # malformed JSON or a prediction that does not validate
            raise TransientProviderError(f"unexpected answer from Replicate: {exc}") from exc
        return self._result(prediction, model, request)

    async def aclose(self) -> None:
        """Release the HTTP connections (only when this provider built its own client)."""
        if self._transport is not None:
            await self._transport.aclose()

    def _build_input(self, request: ImageRequest) -> dict[str, Any]:
        model_input: dict[str, Any] = {
            "prompt": request.prompt,
            "aspect_ratio": request.aspect_ratio,
            "output_format": "jpg",
            "safety_tolerance": self._safety_tolerance,
        }
        if request.reference_image is not None:
            if len(request.reference_image) > DATA_URI_RECOMMENDED_MAX and request.reference_image_url:
                model_input["input_image"] = request.reference_image_url
            else:
                model_input["input_image"] = _data_uri(request.reference_image)
        elif request.reference_image_url is not None:
            model_input["input_image"] = request.reference_image_url
        if "input_image" in model_input:
            model_input["safety_tolerance"] = min(self._safety_tolerance, KONTEXT_MAX_SAFETY_TOLERANCE)
        if request.seed is not None:
            model_input["seed"] = request.seed
        return model_input

    def _result(self, prediction: Prediction, model: str, request: ImageRequest) -> GeneratedImage:
        if prediction.status == "failed":
            error = without_urls(str(prediction.error or "no error message"))
            if _POLICY_ERROR.search(error):
                logger.info("replicate prediction %s refused by the safety filter", prediction.id)
                raise ContentPolicyError(f"{model} refused the request: {error}", job_id=prediction.id)
            raise TransientProviderError(f"Replicate prediction failed on {model}: {error}", job_id=prediction.id)
        if prediction.status == "canceled":
            raise TransientProviderError(f"Replicate prediction on {model} was canceled", job_id=prediction.id)
        url = _output_url(prediction.output)
        if url is None:
            raise TransientProviderError(f"Replicate prediction on {model} succeeded without an image URL")
        return GeneratedImage(
            data=None,
            url=url,
            content_type=_content_type(url),
            provider=self.name,
            model=model,
            seed=request.seed if request.seed is not None else _seed_from_logs(prediction.logs),
            job_id=prediction.id,
        )

    async def _cancel(self, prediction_id: str) -> None:
        """Best effort: stop paying for a prediction we gave up on."""
        try:
            async with asyncio.timeout(5):
                await self._client.predictions.async_cancel(prediction_id)
        except (ReplicateError, ProviderError, httpx.HTTPError, TimeoutError, ValueError) as exc:
            logger.warning("could not cancel replicate prediction %s: %s", prediction_id, type(exc).__name__)


def without_urls(text: str) -> str:
    """`text` with every URL cut to its scheme and host: Replicate's errors may quote the reference's presigned
    URL, whose query is its signature (a capability) and whose path holds the object's unguessable key, and the
    text goes to logs, `Photo.error` and dead letters."""
    return _URL.sub(lambda found: f"{found.group(1)}/…", text)


def _parse_model(ref: str) -> tuple[str, str]:
    owner, _, name = ref.strip().partition("/")
    if not owner or not name or "/" in name or ":" in name:
        raise ConfigError(f"Replicate model must be 'owner/name' (no version), got {ref!r}")
    return owner, name


def _data_uri(image: bytes) -> str:
    if image.startswith(b"\x89PNG"):
        mime = "image/png"
    elif image[:4] == b"RIFF" and image[8:12] == b"WEBP":
        mime = "image/webp"
    else:
        mime = "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"


def _output_url(output: object) -> str | None:
    if isinstance(output, list | tuple):
        output = output[0] if output else None
    return output if isinstance(output, str) and output else None


def _content_type(url: str) -> str | None:
    path = url.split("?", 1)[0].lower()
    return next((mime for ext, mime in _CONTENT_TYPES.items() if path.endswith(ext)), None)


def _seed_from_logs(logs: str | None) -> int | None:
    found = _SEED_IN_LOGS.search(logs or "")
    return int(found.group(1)) if found else None


def _retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (HTTP dates are rare here and ignored)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


async def _raise_rate_limited(response: httpx.Response) -> None:
    """httpx response hook: a 429 becomes a `TransientProviderError` with the server's Retry-After."""
    if response.status_code == 429:
        raise TransientProviderError(
            f"Replicate rate limit hit ({response.request.method} {response.request.url.path})",
            retry_after=_retry_after(response.headers.get("retry-after")),
        )


def _from_http_error(exc: ReplicateError, model: str, job_id: str | None) -> ProviderError:
    status = exc.status or 0
    detail = without_urls(exc.detail or exc.title or "no detail")
    if status == 429:  # only reached with a caller-supplied client (no response hook)
        found = _THROTTLE_DETAIL.search(detail)
        return TransientProviderError(
            f"Replicate rate limit hit: {detail}", job_id=job_id, retry_after=float(found.group(1)) if found else None
        )
    if status in _PERMANENT_STATUSES:
        return PermanentProviderError(f"Replicate refused the request for {model} ({status}): {detail}", job_id=job_id)
    return TransientProviderError(f"Replicate error for {model} ({status}): {detail}", job_id=job_id)
