"""Request validation (no model): defaults, the max_tokens ceiling, and errors that say what is wrong."""

from __future__ import annotations

import pytest

from edge.config.llm import LlmSettings
from edge.llm.requests import RequestError, parse_chat_request

SETTINGS = LlmSettings(max_tokens=64, temperature=0.5)


def test_request_defaults_and_max_tokens_ceiling() -> None:
    req = parse_chat_request({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1000}, SETTINGS)
    assert req.max_tokens == 64 and req.max_tokens_capped
    assert req.temperature == 0.5 and req.stream is False
    assert req.sensor_context is True  # the config default
    req = parse_chat_request({"prompt": "hi", "system": "be brief", "sensor_context": False}, SETTINGS)
    assert req.messages == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert req.max_tokens == 64 and not req.max_tokens_capped and req.sensor_context is False
    parts = parse_chat_request({"messages": [{"role": "developer", "content": [{"type": "text", "text": "a"}, {"type": "text",
                                                                                                               "text": "b"}]}]}, SETTINGS)
    assert parts.messages == [{"role": "system", "content": "ab"}]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([1, 2], "JSON object"),
        ({}, "'messages'"),
        ({"messages": []}, "non-empty list"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user"}]}, "no 'content'"),
        ({"messages": [{"role": "user", "content": 5}]}, "must be a string"),
        ({"prompt": "x", "max_tokens": 0}, "'max_tokens'"),
        ({"prompt": "x", "max_tokens": "ten"}, "'max_tokens'"),
        ({"prompt": "x", "temperature": 9}, "'temperature'"),
        ({"prompt": "x", "stream": "yes"}, "'stream'"),
        ({"prompt": "x", "stop": [""]}, "'stop'"),
        ({"prompt": "x", "sensor_context": "on"}, "'sensor_context'"),
    ],
)
def test_bad_requests_say_what_is_wrong(body: object, fragment: str) -> None:
    with pytest.raises(RequestError) as info:
        parse_chat_request(body, SETTINGS)
    assert fragment in str(info.value)
    assert info.value.status == 400
