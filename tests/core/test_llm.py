"""The OpenAI-compatible provider, driven by the real `openai` client against a fake server."""

from __future__ import annotations

import openai
import pytest

from core.errors import LLMUnavailable
from core.llm import OfflineDemoLLM, OpenAICompatibleLLM
from core.persona import SEND_PHOTO_TOOL
from core.ports import ChatMessage, LLMProvider
from tests.fakes.openai import FakeOpenAI


def provider(fake: FakeOpenAI, *, timeout: float = 5.0) -> OpenAICompatibleLLM:
    return OpenAICompatibleLLM(
        base_url=fake.base_url, api_key="sk-test", model="test-model", timeout=timeout, max_retries=0
    )


CONVERSATION = [ChatMessage("system", "You are Ava."), ChatMessage("user", "hello")]


async def test_text_answer_and_request_shape(fake_llm: FakeOpenAI) -> None:
    """Plain answers come back as text; the request carries model, messages and the tool schema."""
    fake_llm.say("hi there")
    result = await provider(fake_llm).complete(CONVERSATION, tools=[SEND_PHOTO_TOOL])
    assert result.text == "hi there" and result.tool_calls == ()
    body = fake_llm.completions()[0]
    assert body["model"] == "test-model"
    assert body["messages"] == [{"role": "system", "content": "You are Ava."}, {"role": "user", "content": "hello"}]
    assert body["tools"][0]["function"]["name"] == "send_photo"


async def test_tool_call_is_parsed(fake_llm: FakeOpenAI) -> None:
    """A `send_photo` call comes back with its JSON arguments parsed."""
    fake_llm.call_tool("send_photo", {"scene_description": "on a beach at sunset"}, text="Wait for it…")
    result = await provider(fake_llm).complete(CONVERSATION, tools=[SEND_PHOTO_TOOL])
    assert result.text == "Wait for it…"
    assert [(c.name, dict(c.arguments)) for c in result.tool_calls] == [
        ("send_photo", {"scene_description": "on a beach at sunset"})
    ]


async def test_server_error_becomes_llm_unavailable(fake_llm: FakeOpenAI) -> None:
    """A 500 from the provider surfaces as LLMUnavailable, not as a crash."""
    fake_llm.fail(500)
    with pytest.raises(LLMUnavailable):
        await provider(fake_llm).complete(CONVERSATION)


async def test_timeout_becomes_llm_unavailable(fake_llm: FakeOpenAI) -> None:
    """A slow provider is cut off by the configured timeout."""
    fake_llm.say("too late", delay=2.0)
    with pytest.raises(LLMUnavailable, match="timed out"):
        await provider(fake_llm, timeout=0.3).complete(CONVERSATION)


async def test_fake_rejects_dangling_tool_calls_like_openai(fake_llm: FakeOpenAI) -> None:
    """The fake refuses an assistant tool_calls message without tool responses (as OpenAI does)."""
    client = openai.AsyncOpenAI(base_url=fake_llm.base_url, api_key="sk-test", max_retries=0)
    dangling = [
        {"role": "user", "content": "photo please"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "send_photo", "arguments": "{}"}}],
        },
        {"role": "user", "content": "well?"},
    ]
    with pytest.raises(openai.BadRequestError, match="tool_call_id"):
        await client.chat.completions.create(model="m", messages=dangling)  # type: ignore[arg-type]
    await client.close()


async def test_offline_demo_calls_send_photo_when_asked() -> None:
    """The development demo provider answers and calls send_photo when asked for a photo."""
    demo = OfflineDemoLLM()
    assert isinstance(demo, LLMProvider)
    asked = await demo.complete([ChatMessage("user", "send me a selfie")], tools=[SEND_PHOTO_TOOL])
    assert asked.tool_calls and asked.tool_calls[0].name == "send_photo"
    plain = await demo.complete([ChatMessage("user", "hello")], tools=[])
    assert plain.tool_calls == () and "offline demo" in (plain.text or "")


async def test_request_is_what_the_sdk_create_sends(fake_llm: FakeOpenAI) -> None:
    """The provider's request (path, body, auth) is byte for byte what `chat.completions.create` sends."""
    await provider(fake_llm).complete(CONVERSATION, tools=[SEND_PHOTO_TOOL])
    client = openai.AsyncOpenAI(base_url=fake_llm.base_url, api_key="sk-test", max_retries=0)
    tool = {
        "type": "function",
        "function": {
            "name": SEND_PHOTO_TOOL.name,
            "description": SEND_PHOTO_TOOL.description,
            "parameters": SEND_PHOTO_TOOL.parameters,
        },
    }
    await client.chat.completions.create(
        model="test-model",
        messages=[{"role": m.role, "content": m.content} for m in CONVERSATION],  # type: ignore[misc]
        max_tokens=600,
        tools=[tool],  # type: ignore[list-item]
    )
    ours, sdk = fake_llm.requests
    assert (ours.method, ours.path, ours.body) == (sdk.method, sdk.path, sdk.body)
    assert ours.headers["Authorization"] == sdk.headers["Authorization"] == "Bearer sk-test"
    assert ours.headers["Content-Type"] == sdk.headers["Content-Type"]


async def test_client_retries_still_apply(fake_llm: FakeOpenAI) -> None:
    """A transient 500 is retried by the client (max_retries) and the answer still comes back."""
    fake_llm.fail(500)
    fake_llm.say("second time lucky")
    llm = OpenAICompatibleLLM(base_url=fake_llm.base_url, api_key="sk-test", model="test-model", max_retries=1)
    result = await llm.complete(CONVERSATION)
    assert result.text == "second time lucky"
    assert len(fake_llm.requests) == 2


@pytest.mark.parametrize(
    "answer",
    [
        {"choices": []},
        {"choices": None},
        {"object": "chat.completion"},
        {"choices": [{"index": 0, "message": None, "finish_reason": "stop"}]},
        {"choices": [{"index": 0, "finish_reason": "stop"}]},
        {"choices": ["hello"]},
        {"choices": [{"message": {"role": "assistant", "content": 42}}]},
        {"choices": [{"message": {"role": "assistant", "content": [{"type": "text", "text": 7}]}}]},
        {"choices": [{"message": {"role": "assistant", "content": [{"type": "text"}]}}]},
        {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": "send_photo"}}]},
        ["not", "an", "object"],
        b"not json at all",
    ],
    ids=[
        "no-choices",
        "null-choices",
        "missing-choices",
        "null-message",
        "missing-message",
        "choice-not-object",
        "content-not-text",
        "content-part-not-text",
        "content-part-without-text",
        "tool-calls-not-list",
        "json-list",
        "not-json",
    ],
)
async def test_malformed_answer_becomes_llm_unavailable(fake_llm: FakeOpenAI, answer: object) -> None:
    """A 200 whose body is not a usable completion is the provider failing (LLMUnavailable: the turn runner retries
    it, then dead-letters it and tells the user), never a crash of the turn on a missing attribute."""
    fake_llm.answer_raw(answer)
    with pytest.raises(LLMUnavailable, match="malformed"):
        await provider(fake_llm).complete(CONVERSATION, tools=[SEND_PHOTO_TOOL])


async def test_odd_tool_calls_are_skipped_and_the_text_kept(fake_llm: FakeOpenAI) -> None:
    """Tool calls of another type, without a name, or with arguments that are not a JSON object are ignored (the
    text still answers the user); a well-formed call next to them still counts."""
    arguments = '{"scene_description": "x"}'
    good = {"id": "c3", "type": "function", "function": {"name": "send_photo", "arguments": arguments}}
    fake_llm.answer_raw(
        {
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": "Here you go",
                        "tool_calls": [
                            {"id": "c0", "type": "code_interpreter", "function": {"name": "send_photo"}},
                            {"id": "c1", "type": "function", "function": {"arguments": "{}"}},
                            {"id": "c2", "type": "function", "function": {"name": "send_photo", "arguments": "[1]"}},
                            {"id": "c4", "type": "function", "function": {"name": "send_photo", "arguments": "{oops"}},
                            "junk",
                            good,
                        ],
                    },
                }
            ]
        }
    )
    result = await provider(fake_llm).complete(CONVERSATION, tools=[SEND_PHOTO_TOOL])
    assert result.text == "Here you go"
    assert [(c.id, c.name, dict(c.arguments)) for c in result.tool_calls] == [
        ("c3", "send_photo", {"scene_description": "x"})
    ]


async def test_content_given_as_parts_is_joined(fake_llm: FakeOpenAI) -> None:
    """Some OpenAI-compatible servers answer the content as a list of parts: the text parts are the answer (other
    parts, e.g. the model's reasoning, are not shown to the user); no text part at all is no text."""
    parts = [{"type": "reasoning", "text": "hidden"}, {"type": "text", "text": "Hi "}, {"type": "text", "text": "you"}]
    fake_llm.answer_raw({"choices": [{"message": {"role": "assistant", "content": parts}}]})
    assert (await provider(fake_llm).complete(CONVERSATION)).text == "Hi you"
    fake_llm.answer_raw({"choices": [{"message": {"role": "assistant", "content": [{"type": "image_url"}]}}]})
    assert (await provider(fake_llm).complete(CONVERSATION)).text is None
