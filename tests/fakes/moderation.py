"""Fake moderation services: OpenAI's `POST /v1/moderations` and a Llama Guard 3 model on Chat Completions.

Tests queue verdicts (`allow`, `refuse`, `answer`; `safe`, `unsafe`), HTTP errors (`fail`), slow answers
(`delay=`) and malformed bodies (`malformed`); with nothing queued both fakes answer "all clear". Requests
are recorded (`checks()` gives the bodies), and a request without a bearer key gets OpenAI's 401.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from aiohttp import web

from tests.fakes.openai import PATH as CHAT_PATH
from tests.fakes.openai import FakeOpenAI, Planned
from tests.fakes.server import FakeServer

MODERATIONS_PATH = "/v1/moderations"

#: Every category of OpenAI's omni-moderation models, with the input types each score applies to.
CATEGORIES: dict[str, list[str]] = {
    "harassment": ["text"],
    "harassment/threatening": ["text"],
    "hate": ["text"],
    "hate/threatening": ["text"],
    "illicit": ["text"],
    "illicit/violent": ["text"],
    "self-harm": ["text"],
    "self-harm/intent": ["text"],
    "self-harm/instructions": ["text"],
    "sexual": ["text"],
    "sexual/minors": ["text"],
    "violence": ["text"],
    "violence/graphic": ["text"],
}


def moderation_result(scores: dict[str, float] | None = None, flagged: dict[str, bool] | None = None) -> dict[str, Any]:
    """One `results[]` entry: every category scored (default near zero), flagged at OpenAI's own cut-off."""
    all_scores = dict.fromkeys(CATEGORIES, 1e-6) | (scores or {})
    categories = {name: score >= 0.5 for name, score in all_scores.items()} | (flagged or {})
    return {
        "flagged": any(categories.values()),
        "categories": categories,
        "category_scores": all_scores,
        "category_applied_input_types": CATEGORIES,
    }


class FakeModerations(FakeServer):
    """Speaks `POST /v1/moderations` with OpenAI's response shape."""

    def __init__(self) -> None:
        super().__init__()
        self.handle("POST", MODERATIONS_PATH, self._moderate)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def answer(
        self, scores: dict[str, float] | None = None, *, flagged: dict[str, bool] | None = None, delay: float = 0.0
    ) -> None:
        """Next answer: these category scores (others near zero); `flagged` overrides the 0.5 cut-off."""
        self.queue("POST", MODERATIONS_PATH, json=self._body(moderation_result(scores, flagged)), delay=delay)

    def allow(self, *, delay: float = 0.0) -> None:
        """Next answer: adult sexual content, nothing about minors."""
        self.answer({"sexual": 0.93, "sexual/minors": 0.002}, delay=delay)

    def refuse(self, *, delay: float = 0.0) -> None:
        """Next answer: `sexual/minors` flagged with a high score."""
        self.answer({"sexual": 0.97, "sexual/minors": 0.91}, delay=delay)

    def fail(self, status: int = 500, *, delay: float = 0.0) -> None:
        """Next answer: an HTTP error in OpenAI's error shape."""
        self.queue("POST", MODERATIONS_PATH, status=status, json=_error_body(status), delay=delay)

    def malformed(self, *, json: Any = None, body: bytes | None = None, content_type: str = "application/json") -> None:
        """Next answer: a 200 whose body is `json` (any shape) or raw `body` bytes."""
        if json is not None:
            self.queue("POST", MODERATIONS_PATH, json=json)
        else:
            self.queue("POST", MODERATIONS_PATH, body=body or b"", headers={"Content-Type": content_type})

    def checks(self) -> list[dict[str, Any]]:
        """Bodies of the moderation requests received, in order."""
        return [r.json for r in self.requests_to(MODERATIONS_PATH, "POST")]

    async def _moderate(self, request: web.Request) -> web.Response:
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return web.json_response(_error_body(401), status=401)
        body = await request.json()
        if not isinstance(body.get("input"), str | list):
            return web.json_response(_error_body(400), status=400)
        return web.json_response(self._body(moderation_result()))

    @staticmethod
    def _body(result: dict[str, Any]) -> dict[str, Any]:
        return {"id": f"modr-{uuid.uuid4().hex}", "model": "omni-moderation-latest", "results": [result]}


class FakeLlamaGuard(FakeOpenAI):
    """A Llama Guard 3 model behind `POST /v1/chat/completions`: answers "safe" unless told otherwise."""

    def safe(self, *, delay: float = 0.0) -> None:
        """Next answer: safe."""
        self.say("safe", delay=delay)

    def unsafe(self, *categories: str, delay: float = 0.0) -> None:
        """Next answer: unsafe with these categories (e.g. "S4", "S12")."""
        self.say("unsafe\n" + ",".join(categories), delay=delay)

    def malformed(self, *, json: Any = None, body: bytes | None = None, content_type: str = "application/json") -> None:
        """Next answer: a 200 whose body is `json` (any shape) or raw `body` bytes."""
        if json is not None:
            self.queue("POST", CHAT_PATH, json=json)
        else:
            self.queue("POST", CHAT_PATH, body=body or b"", headers={"Content-Type": content_type})

    def checks(self) -> list[dict[str, Any]]:
        """Bodies of the classification requests received, in order."""
        return self.completions()

    async def _answer(self, request: web.Request) -> web.Response:
        if not self.plan:
            self.plan.append(Planned(text="safe"))
        return await super()._answer(request)


def _error_body(status: int) -> dict[str, Any]:
    kind = {400: "invalid_request_error", 401: "invalid_request_error", 429: "rate_limit_exceeded"}
    return {
        "error": {
            "message": f"fake moderation error {status} at {int(time.time())}",
            "type": kind.get(status, "server_error"),
            "param": None,
            "code": None,
        }
    }
