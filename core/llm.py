"""OpenAI-compatible LLM provider (OpenAI, OpenRouter, Ollama, vLLM...) through the `openai` SDK.

The request goes through the client's generic `post` (the SDK's documented way to call an endpoint with a body
it does not reshape), not `chat.completions.create`: `create` first walks the whole request against its
TypedDict annotations (`maybe_transform`), which for a 40-message history costs ~4-5 ms of CPU per call and
changes nothing in our plain string/dict payload. Everything else is the SDK's own: base URL, auth header,
timeout, retries with backoff and the error classes. The answer is read as the plain JSON the SDK decoded
(`parse_completion`): every field is checked for the shape Chat Completions promises, and an answer that is not a
usable completion is the provider failing (`LLMUnavailable`), never a crash of the turn.

The SDK's HTTP client runs on its aiohttp transport (`DefaultAioHttpClient`, the SDK's `aiohttp` extra: aiohttp is
a dependency of ours anyway): the same requests and SDK behaviour for about a fifth less CPU per call than its
default httpx2 transport (measured against the local fake server).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import openai
from openai import AsyncOpenAI, DefaultAioHttpClient

from core.errors import LLMUnavailable
from core.ports import ChatMessage, LLMResult, ToolCall, ToolSpec

logger = logging.getLogger(__name__)

#: The Chat Completions endpoint, relative to the client's base URL (as `chat.completions.create` posts it).
COMPLETIONS_PATH = "/chat/completions"


class OpenAICompatibleLLM:
    """Chat Completions over any OpenAI-compatible server, with a bounded timeout and few retries."""

    name = "openai-compatible"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str,
        timeout: float = 30.0,
        max_retries: int = 2,
        max_tokens: int = 600,
        client: AsyncOpenAI | None = None,
    ) -> None:
        self._client = client or AsyncOpenAI(
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            http_client=DefaultAioHttpClient(timeout=timeout),
        )
        self._model = model
        self._max_tokens = max_tokens

    async def complete(self, messages: Sequence[ChatMessage], *, tools: Sequence[ToolSpec] = ()) -> LLMResult:
        """One completion; provider failures become `LLMUnavailable`."""
        request: dict[str, Any] = {
            "model": self._model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": self._max_tokens,
        }
        if tools:
            request["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in tools
            ]
        try:
            # `cast_to=object`: the answer as the SDK decoded it, a plain dict, read by `parse_completion` below;
            # building the typed `ChatCompletion` model cost about a fifth of the call's CPU and validated nothing.
            answer = await self._client.post(
                COMPLETIONS_PATH, body=request, cast_to=object, options={"security": {"bearer_auth": True}}
            )
        except openai.APITimeoutError as exc:  # before APIConnectionError: it is a subclass
            raise LLMUnavailable("LLM request timed out") from exc
        except openai.APIConnectionError as exc:
            raise LLMUnavailable("LLM server unreachable") from exc
        except openai.RateLimitError as exc:  # before APIStatusError: it is a subclass
            raise LLMUnavailable("LLM rate limited") from exc
        except openai.APIStatusError as exc:
            raise LLMUnavailable(f"LLM error {exc.status_code}") from exc
        except json.JSONDecodeError as exc:  # a 200 saying it is JSON that is not
            raise LLMUnavailable("LLM returned a malformed answer (not JSON)") from exc
        return parse_completion(answer)

    async def aclose(self) -> None:
        """Release the HTTP client."""
        await self._client.close()


class OfflineDemoLLM:
    """OFFLINE DEMO provider for development without an LLM key. Never used in production.

    It answers simply and, when tools are offered and the user asks for a photo, calls `send_photo`.
    """

    name = "offline-demo"
    PHOTO_WORDS = ("photo", "picture", "pic", "selfie", "foto")

    async def complete(self, messages: Sequence[ChatMessage], *, tools: Sequence[ToolSpec] = ()) -> LLMResult:
        """A canned answer (demo only)."""
        last = next((m.content for m in reversed(messages) if m.role == "user"), "")
        wants_photo = any(word in last.lower() for word in self.PHOTO_WORDS)
        if wants_photo and any(t.name == "send_photo" for t in tools):
            call = ToolCall(id="demo-call", name="send_photo", arguments={"scene_description": last[:300]})
            return LLMResult(text="One moment, taking one for you 📸", tool_calls=(call,))
        return LLMResult(text=f"(offline demo: no LLM configured) You said: {last[:200]}")


def parse_completion(answer: object) -> LLMResult:
    """The text and tool calls of a Chat Completions answer (decoded JSON). An answer without a usable first choice
    (no choices, no message, content that is not text...) is `LLMUnavailable`; a tool call that is not a named
    function call with a JSON object of arguments is skipped with a warning (the text still answers)."""
    choices = answer.get("choices") if isinstance(answer, dict) else None
    if not isinstance(choices, list) or not choices:
        raise LLMUnavailable("LLM returned a malformed answer (no choices)")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise LLMUnavailable("LLM returned a malformed answer (no message)")
    text, raw_calls = _text(message.get("content")), message.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise LLMUnavailable("LLM returned a malformed answer (tool_calls is not a list)")
    return LLMResult(text=text, tool_calls=tuple(call for raw in raw_calls if (call := _tool_call(raw)) is not None))


def _text(content: object) -> str | None:
    """The message's text: a string, or (as some OpenAI-compatible servers answer) a list of content parts whose
    text parts are joined; None when there is none."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        texts = [part for part in parts if isinstance(part, str)]
        if len(texts) == len(parts):
            return "".join(texts) if texts else None
    raise LLMUnavailable("LLM returned a malformed answer (content is not text)")


def _tool_call(raw: object) -> ToolCall | None:
    """One tool call of the answer, or None (logged) when it is not a function call we can run."""
    function = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or raw.get("type") != "function" or not isinstance(function, dict):
        logger.warning("ignoring a tool call that is not a function call")
        return None
    name, arguments = function.get("name"), function.get("arguments") or "{}"
    if not isinstance(name, str) or not name or not isinstance(arguments, str):
        logger.warning("ignoring a function call without a name or with non-text arguments")
        return None
    try:
        parsed = json.loads(arguments)
    except json.JSONDecodeError:
        logger.warning("ignoring tool call %s with invalid JSON arguments", name)
        return None
    if not isinstance(parsed, dict):
        logger.warning("ignoring tool call %s whose arguments are not a JSON object", name)
        return None
    return ToolCall(id=str(raw.get("id") or ""), name=name, arguments=parsed)
