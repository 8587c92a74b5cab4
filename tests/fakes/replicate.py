"""A fake Replicate HTTP API, as the real `replicate` client (1.0.x) calls it.

    POST /v1/models/{owner}/{name}/predictions   -> 201, prediction with status "starting"
    GET  /v1/predictions/{id}                    -> "processing", then "succeeded" (output on this fake)
    POST /v1/predictions/{id}/cancel             -> the prediction, now "canceled"
    GET  /files/{name}                           -> a small real JPEG

An `input_image` given as an http(s) URL is fetched when the prediction is created, as Replicate fetches input
files (`fetched` records what came back); a URL that does not answer 200 with the file fails the prediction with
an error quoting the URL, as Replicate's does.

Errors use Replicate's problem-details bodies (`title`, `detail`, `status`). Programmable per test:
`fail_next`, `rate_limit_next`, `policy_fail_next`, `fail_prediction_next`, `hang_next`.
"""

from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from PIL import Image

from tests.fakes.server import MATCH, FakeServer

CREATE = "/v1/models/{owner}/{name}/predictions"
GET = "/v1/predictions/{id}"
CANCEL = "/v1/predictions/{id}/cancel"
FILES = "/files/{name}"

#: Wording Replicate's FLUX models use when their safety filter refuses a request.
POLICY_ERROR = "The input or output was flagged as sensitive. Please try again with different inputs. (E005)"
NSFW_ERROR = "NSFW content detected. Try running it again, or try a different prompt."
VERSION = "d" * 64
_TITLES = {500: "Internal server error", 502: "Bad gateway", 503: "Service unavailable", 422: "Invalid input"}


@dataclass
class FakePrediction:
    """Server-side state of one prediction."""

    id: str
    model: str
    input: dict[str, Any]
    plan: str = "succeed"  # succeed | fail | hang
    error: str | None = None
    status: str = "starting"
    polls: int = 0
    created_at: str = field(default_factory=lambda: _now())


@dataclass
class CreatedPrediction:
    """What a test can assert about a create call."""

    model: str
    input: dict[str, Any]


class FakeReplicate(FakeServer):
    """Fake Replicate API; predictions succeed after `polls_to_finish` polls unless programmed otherwise."""

    def __init__(self, token: str = "r8_fake_test_token", polls_to_finish: int = 2) -> None:
        super().__init__()
        self.token = token
        self.polls_to_finish = polls_to_finish
        self.predictions: dict[str, FakePrediction] = {}
        self.created: list[CreatedPrediction] = []
        self._plans: list[tuple[str, str | None]] = []
        self.jpeg = _small_jpeg()
        #: (url, HTTP status or 0 when unreachable, body) of every input_image URL fetched.
        self.fetched: list[tuple[str, int, bytes]] = []
        self.handle("POST", CREATE, self._create)
        self.handle("GET", GET, self._get)
        self.handle("POST", CANCEL, self._cancel)
        self.handle("GET", FILES, self._file)

    # -- programming -----------------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """The next `n` create calls answer HTTP `status` with a problem-details body."""
        for _ in range(n):
            self.queue("POST", CREATE, status=status, json=_problem(status, _TITLES.get(status, "Error")))

    def rate_limit_next(self, retry_after: int = 1) -> None:
        """The next create call answers 429 with `Retry-After`, as Replicate throttles."""
        detail = f"Request was throttled. Expected available in {retry_after} second."
        self.queue(
            "POST",
            CREATE,
            status=429,
            json=_problem(429, detail, "Request was throttled"),
            headers={"Retry-After": str(retry_after)},
        )

    def policy_fail_next(self, error: str = POLICY_ERROR) -> None:
        """The next prediction ends `failed` with a safety-filter error."""
        self._plans.append(("fail", error))

    def fail_prediction_next(self, error: str = "CUDA error: an illegal memory access was encountered") -> None:
        """The next prediction ends `failed` with an ordinary model error."""
        self._plans.append(("fail", error))

    def hang_next(self) -> None:
        """The next prediction stays `processing` forever."""
        self._plans.append(("hang", None))

    # -- handlers --------------------------------------------------------------------------------

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    async def _create(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _unauthenticated()
        body = await request.json()
        model = f"{request[MATCH]['owner']}/{request[MATCH]['name']}"
        plan, error = self._plans.pop(0) if self._plans else ("succeed", None)
        image = body.get("input", {}).get("input_image")
        if isinstance(image, str) and image.startswith(("http://", "https://")):
            status = await self._fetch(image)
            if status != 200:
                plan, error = "fail", f"Failed to download input file {image}: HTTP status {status or 'unreachable'}"
        prediction = FakePrediction(
            id=_prediction_id(), model=model, input=body.get("input", {}), plan=plan, error=error
        )
        self.predictions[prediction.id] = prediction
        self.created.append(CreatedPrediction(model=model, input=prediction.input))
        return web.json_response(self._json(prediction), status=201)

    async def _fetch(self, url: str) -> int:
        try:
            async with aiohttp.ClientSession() as http, http.get(url) as answer:
                body = await answer.read()
                self.fetched.append((url, answer.status, body))
                return answer.status
        except aiohttp.ClientError:
            self.fetched.append((url, 0, b""))
            return 0

    async def _get(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _unauthenticated()
        prediction = self.predictions.get(request[MATCH]["id"])
        if prediction is None:
            return web.json_response(_problem(404, "Not found"), status=404)
        if prediction.status in ("starting", "processing"):
            prediction.polls += 1
            prediction.status = "processing"
            if prediction.plan != "hang" and prediction.polls >= self.polls_to_finish:
                prediction.status = "failed" if prediction.plan == "fail" else "succeeded"
        return web.json_response(self._json(prediction))

    async def _cancel(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _unauthenticated()
        prediction = self.predictions.get(request[MATCH]["id"])
        if prediction is None:
            return web.json_response(_problem(404, "Not found"), status=404)
        if prediction.status in ("starting", "processing"):
            prediction.status = "canceled"
        return web.json_response(self._json(prediction))

    async def _file(self, request: web.Request) -> web.Response:
        return web.Response(body=self.jpeg, content_type="image/jpeg")

    def _json(self, p: FakePrediction) -> dict[str, Any]:
        done = p.status in ("succeeded", "failed", "canceled")
        seed = p.input.get("seed", 1234)
        return {
            "id": p.id,
            "model": p.model,
            "version": VERSION,
            "input": p.input,
            "output": f"{self.url}/files/{p.id}.jpg" if p.status == "succeeded" else None,
            "error": p.error if p.status == "failed" else None,
            "logs": f"Using seed: {seed}\nRunning prediction..." if p.status != "starting" else "",
            "status": p.status,
            "source": "api",
            "data_removed": False,
            "metrics": {"predict_time": 1.5} if p.status == "succeeded" else {},
            "created_at": p.created_at,
            "started_at": p.created_at if p.status != "starting" else None,
            "completed_at": _now() if done else None,
            "urls": {
                "get": f"{self.url}/v1/predictions/{p.id}",
                "cancel": f"{self.url}/v1/predictions/{p.id}/cancel",
                "web": f"https://replicate.com/p/{p.id}",
            },
        }


def _problem(status: int, detail: str, title: str | None = None) -> dict[str, Any]:
    return {"title": title or detail, "detail": detail, "status": status}


def _unauthenticated() -> web.Response:
    body = _problem(401, "You did not pass a valid authentication token", "Unauthenticated")
    return web.json_response(body, status=401)


def _prediction_id() -> str:
    return base64.b32encode(os.urandom(16)).decode().rstrip("=").lower()[:26]


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _small_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 96), (200, 120, 90)).save(out, format="JPEG")
    return out.getvalue()
