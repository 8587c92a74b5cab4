"""A fake OpenAI-compatible Chat Completions server that validates requests the way OpenAI does.

It rejects (HTTP 400, OpenAI's error shape) message sequences OpenAI rejects: an assistant `tool_calls`
message not followed by a tool message for every call id, a tool message answering no pending call,
unknown roles, and non-string content. Answers are scripted (`say`, `call_tool`, `fail`, `answer_raw` for what a
broken or non-conforming provider sends) or, by default, an echo of the last user message.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.server import FakeServer

PATH = "/v1/chat/completions"


@dataclass
class Planned:
    text: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    #: Sent as the whole 200 answer instead of a completion (`answer_raw`): JSON unless it is `bytes`.
    raw: object = None


def invalid_sequence(messages: Any) -> str | None:
    """OpenAI's validation of a `messages` array; the error message, or None when valid."""
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array"
    pending: set[str] = set()
    for index, message in enumerate(messages):
        role = message.get("role")
        if role not in {"system", "developer", "user", "assistant", "tool"}:
            return f"Invalid value for 'messages[{index}].role': {role!r}"
        if pending and role != "tool":
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {sorted(pending)}"
            )
        content = message.get("content")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in pending:
                return (
                    f"Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                    f"with 'tool_calls' (messages[{index}])"
                )
            pending.discard(call_id)
        if role == "assistant" and message.get("tool_calls"):
            pending = {call["id"] for call in message["tool_calls"]}
        elif not isinstance(content, str):
            return f"Invalid type for 'messages[{index}].content': expected a string"
    if pending:
        return f"tool_call_ids without response messages: {sorted(pending)}"
    return None


class FakeOpenAI(FakeServer):
    """Speaks `POST /v1/chat/completions`."""

    def __init__(self) -> None:
        super().__init__()
        self.plan: deque[Planned] = deque()
        self.slow: dict[str, float] = {}
        #: Requests being answered right now, and the most seen at once.
        self.in_flight = 0
        self.peak_in_flight = 0
        self.handle("POST", PATH, self._complete)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def say(self, text: str, *, delay: float = 0.0) -> None:
        """Next answer: plain text."""
        self.plan.append(Planned(text=text, delay=delay))

    def call_tool(self, name: str, arguments: dict[str, Any], *, text: str | None = None) -> None:
        """Next answer: a tool call (optionally with text content)."""
        call = {
            "id": f"call_{uuid.uuid4().hex[:12]}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)},
        }
        self.plan.append(Planned(text=text, tool_calls=[call]))

    def fail(self, status: int = 500, *, delay: float = 0.0) -> None:
        """Next answer: an HTTP error."""
        self.plan.append(Planned(status=status, delay=delay))

    def answer_raw(self, body: object) -> None:
        """Next answer: `body` as the whole 200 answer (JSON, or `bytes` sent as they are), as a broken or
        non-conforming OpenAI-compatible server might answer."""
        self.plan.append(Planned(raw=body))

    def slow_when(self, marker: str, seconds: float) -> None:
        """Delay every answer whose last user message contains `marker`."""
        self.slow[marker] = seconds

    def completions(self) -> list[dict[str, Any]]:
        """Bodies of the valid completion requests received, in order."""
        return [r.json for r in self.requests_to(PATH, "POST")]

    async def _complete(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return _error(401, "Missing API key", "invalid_request_error")
        problem = invalid_sequence(body.get("messages"))
        if problem:
            return _error(400, problem, "invalid_request_error")
        last_user = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        for marker, seconds in self.slow.items():
            if marker in last_user:
                await asyncio.sleep(seconds)
        planned = self.plan.popleft() if self.plan else None
        if planned and planned.delay:
            await asyncio.sleep(planned.delay)
        if planned and planned.status != 200:
            return _error(planned.status, "The server had an error while processing your request.", "server_error")
        if planned is not None and planned.raw is not None:
            if isinstance(planned.raw, bytes):
                return web.Response(body=planned.raw, content_type="application/json")
            return web.json_response(planned.raw)
        if planned is None:
            planned = Planned(text=f"echo: {last_user}")
        message: dict[str, Any] = {"role": "assistant", "content": planned.text, "refusal": None}
        if planned.tool_calls:
            message["tool_calls"] = planned.tool_calls
        return web.json_response(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": "tool_calls" if planned.tool_calls else "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )


def _error(status: int, message: str, kind: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": kind, "param": "messages", "code": None}}, status=status
    )
