"""The model-based second safety layer: adapters of the core's `Moderation` port.

Every text that can reach an image prompt passes two layers, and BOTH must allow it: the rules
(`imaging.safety`) and one of these classifiers, chosen by settings (`ava_bot.wiring.build_moderation`):

- `OpenAIModeration`: an OpenAI-compatible `POST /v1/moderations` endpoint. It refuses when the
  `sexual/minors` category is flagged or its score reaches the configured threshold. Adult sexual content
  is this service's purpose, so the other categories (and the overall `flagged`) are ignored here.
- `LlamaGuardModeration`: a Llama Guard 3 classifier served on an OpenAI-compatible Chat Completions
  endpoint (vLLM, Ollama, DeepInfra...). It refuses when the answer lists S4 (Child Sexual Exploitation).

Fail closed: an answer we cannot trust is never read as "allowed". A timeout, an unreachable server, a
429, any HTTP error status and any answer that is not in the documented shape raise
`core.errors.ModerationUnavailable`; the caller then leaves the photo waiting and retries it (and finally
dead-letters it and tells the user). Nothing is generated unchecked. The checked text is never logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import openai
from openai import AsyncOpenAI, BaseModel

from core.errors import ModerationUnavailable
from core.ports import ModerationVerdict

logger = logging.getLogger(__name__)

#: The OpenAI moderation category this service refuses on.
SEXUAL_MINORS = "sexual/minors"
#: The Llama Guard 3 category this service refuses on (S4: Child Sexual Exploitation; S4 in Llama Guard 2 too).
CHILD_EXPLOITATION = "S4"

DEFAULT_OPENAI_MODEL = "omni-moderation-latest"
DEFAULT_LLAMA_GUARD_MODEL = "meta-llama/Llama-Guard-3-8B"

# Llama Guard answers "safe", or "unsafe" and on the next line the violated categories ("S1,S4").
_CATEGORY = re.compile(r"S\d{1,2}")


@contextmanager
def _unavailable_on_api_errors(layer: str) -> Iterator[None]:
    """Turn every openai client failure into `ModerationUnavailable` (order matters: subclasses first)."""
    try:
        yield
    except openai.APITimeoutError as exc:  # before APIConnectionError: it is a subclass
        raise ModerationUnavailable(f"{layer}: request timed out") from exc
    except openai.APIConnectionError as exc:
        raise ModerationUnavailable(f"{layer}: server unreachable") from exc
    except openai.RateLimitError as exc:  # before APIStatusError: it is a subclass
        raise ModerationUnavailable(f"{layer}: rate limited") from exc
    except openai.APIStatusError as exc:
        raise ModerationUnavailable(f"{layer}: error {exc.status_code}") from exc
    except (openai.APIError, ValueError) as exc:  # e.g. a response that is not JSON or not the documented model
        raise ModerationUnavailable(f"{layer}: unreadable answer") from exc


class OpenAIModeration:
    """Moderation through an OpenAI-compatible `POST /v1/moderations`; refuses on `sexual/minors`."""

    name = "openai-moderation"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str = DEFAULT_OPENAI_MODEL,
        threshold: float = 0.5,
        timeout: float = 10.0,
        max_retries: int = 2,
        client: AsyncOpenAI | None = None,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be within 0..1, not {threshold}")
        self._client = client or AsyncOpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries
        )
        self._model = model
        self._threshold = threshold

    async def check(self, text: str) -> ModerationVerdict:
        """Classify `text`; `ModerationUnavailable` when the endpoint cannot give a well-formed answer."""
        with _unavailable_on_api_errors(self.name):
            response = await self._client.moderations.create(model=self._model, input=text)
        flagged, score = _sexual_minors(_as_dict(response, self.name), self.name)
        if flagged or score >= self._threshold:
            logger.info("%s refused a text (%s score %.3f)", self.name, SEXUAL_MINORS, score)
            return ModerationVerdict(allowed=False, reason=SEXUAL_MINORS, layer=self.name)
        return ModerationVerdict(allowed=True, reason=None, layer=self.name)

    async def aclose(self) -> None:
        """Release the HTTP client."""
        await self._client.close()


def _as_dict(response: object, layer: str) -> dict[str, Any]:
    """The answer as the JSON object the server sent.

    The SDK does not validate answers: a non-JSON body comes back as a `str`, and a JSON body of the wrong
    shape as a model with missing or mistyped attributes. So we read plain dicts and check every step.
    """
    if not isinstance(response, BaseModel):
        raise ModerationUnavailable(f"{layer}: answer is not a JSON object")
    return response.to_dict(use_api_names=True, warnings=False)


def _sexual_minors(body: dict[str, Any], layer: str) -> tuple[bool, float]:
    """(flagged, score) of `sexual/minors` in a moderation response; anything else is unreadable."""
    results = body.get("results")
    if not isinstance(results, list) or not results or not isinstance(results[0], dict):
        raise ModerationUnavailable(f"{layer}: answer without results")
    categories, scores = results[0].get("categories"), results[0].get("category_scores")
    if not isinstance(categories, dict) or not isinstance(scores, dict):
        raise ModerationUnavailable(f"{layer}: answer without categories or scores")
    flagged, score = categories.get(SEXUAL_MINORS), scores.get(SEXUAL_MINORS)
    # bool is an int: refuse True/False as a score, and anything but a bool as a flag.
    if not isinstance(flagged, bool) or isinstance(score, bool) or not isinstance(score, int | float):
        raise ModerationUnavailable(f"{layer}: answer without a {SEXUAL_MINORS} verdict")
    return flagged, float(score)


class LlamaGuardModeration:
    """Llama Guard 3 on an OpenAI-compatible Chat Completions endpoint; refuses on S4 (child exploitation).

    The text is sent as the single user turn of the conversation to classify. The server's chat template
    (vLLM, Ollama and hosted providers all ship Llama Guard's own) wraps it into the Llama Guard 3 task
    prompt with the S1..S14 category list; wrapping it here as well would make the model classify our
    instructions instead of the text.
    """

    name = "llama-guard"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str = DEFAULT_LLAMA_GUARD_MODEL,
        timeout: float = 10.0,
        max_retries: int = 2,
        client: AsyncOpenAI | None = None,
    ) -> None:
        self._client = client or AsyncOpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries
        )
        self._model = model

    async def check(self, text: str) -> ModerationVerdict:
        """Classify `text`; `ModerationUnavailable` when the answer is neither "safe" nor "unsafe\\nS<n>[,S<n>...]"."""
        with _unavailable_on_api_errors(self.name):
            completion = await self._client.chat.completions.create(
                model=self._model,
                messages=[{"role": "user", "content": text}],
                temperature=0,
                max_tokens=20,
            )
        answer = _completion_text(_as_dict(completion, self.name))
        if answer is None:
            raise ModerationUnavailable(f"{self.name}: answer without text")
        categories = parse_llama_guard(answer)
        if categories is None:
            raise ModerationUnavailable(f"{self.name}: answer is neither 'safe' nor 'unsafe' with categories")
        if CHILD_EXPLOITATION in categories:
            logger.info("%s refused a text (%s)", self.name, ",".join(categories))
            return ModerationVerdict(allowed=False, reason=CHILD_EXPLOITATION, layer=self.name)
        return ModerationVerdict(allowed=True, reason=None, layer=self.name)

    async def aclose(self) -> None:
        """Release the HTTP client."""
        await self._client.close()


def _completion_text(body: dict[str, Any]) -> str | None:
    """`choices[0].message.content` of a chat completion, or None when absent or not text."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    return content if isinstance(content, str) else None


def parse_llama_guard(answer: str) -> tuple[str, ...] | None:
    """Categories of a Llama Guard answer: () for "safe", ("S4", ...) for "unsafe\\nS4,..."; None if malformed.

    "unsafe" without a category line is malformed too: we cannot tell whether S4 applies (fail closed).
    """
    lines = [line.strip() for line in answer.strip().splitlines() if line.strip()]
    if not lines:
        return None
    verdict = lines[0].lower()
    if verdict == "safe" and len(lines) == 1:
        return ()
    if verdict != "unsafe" or len(lines) != 2:
        return None
    categories = tuple(part.strip().upper() for part in lines[1].split(","))
    if not all(_CATEGORY.fullmatch(category) for category in categories):
        return None
    return categories
