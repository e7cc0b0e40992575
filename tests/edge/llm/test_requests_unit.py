"""edge/llm/requests.py: every validation rule of a chat request (OpenAI's shape, and the MQTT `prompt`
form), each boundary on both sides, and the response objects built from a generation."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from edge.config.llm import LlmSettings
from edge.llm.engine import Generation, Timings
from edge.llm.requests import (
    ROLES,
    ChatRequest,
    RequestError,
    chunk_object,
    completion_object,
    edgeteach_meta,
    new_completion_id,
    parse_chat_request,
    parse_messages,
    usage,
)

SETTINGS = LlmSettings(max_tokens=100, temperature=0.5, sensor_context=True)
HELLO = [{"role": "user", "content": "hi"}]


def parse(settings: LlmSettings = SETTINGS, **body: Any) -> ChatRequest:
    body.setdefault("messages", HELLO)
    return parse_chat_request(body, settings)


def refused(body: Any, message: str, param: str | None, settings: LlmSettings = SETTINGS) -> RequestError:
    with pytest.raises(RequestError) as info:
        parse_chat_request(body, settings)
    assert str(info.value) == message
    assert info.value.param == param and info.value.status == 400 and info.value.code == "invalid_request"
    return info.value


# -- defaults -------------------------------------------------------------------------------------------


def test_a_minimal_request_takes_the_server_defaults() -> None:
    r = parse()
    assert r == ChatRequest(
        messages=[{"role": "user", "content": "hi"}], max_tokens=100, max_tokens_capped=False, temperature=0.5,
        top_p=0.95, seed=None, stop=[], stream=False, include_usage=False, sensor_context=True, extra={},
    )
    assert type(r.temperature) is float and type(r.top_p) is float


def test_sensor_context_default_follows_the_settings() -> None:
    assert parse(LlmSettings(sensor_context=False)).sensor_context is False


# -- body and messages ----------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [None, [], "hi", 3])
def test_the_body_must_be_an_object(body: Any) -> None:
    refused(body, "the request body must be a JSON object", None)


@pytest.mark.parametrize("messages", [[], None, "hi", {"role": "user"}])
def test_messages_must_be_a_non_empty_list(messages: Any) -> None:
    refused({"messages": messages}, "'messages' must be a non-empty list of {\"role\": \"user\", \"content\": \"...\"} objects", "messages")


def test_each_message_is_checked() -> None:
    refused({"messages": [HELLO[0], "hi"]}, "messages[1] must be an object with 'role' and 'content'", "messages")
    refused({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role must be one of system, user, assistant, got 'tool'",
            "messages")
    refused({"messages": [{"content": "x"}]}, "messages[0].role must be one of system, user, assistant, got None", "messages")
    refused({"messages": [{"role": "user"}]}, "messages[0] has no 'content'", "messages")
    refused({"messages": [{"role": "user", "content": None}]}, "messages[0].content must be a string, got NoneType", "messages")
    refused({"messages": [{"role": "user", "content": 5}]}, "messages[0].content must be a string, got int", "messages")
    assert ROLES == ("system", "user", "assistant")


def test_roles_and_developer_as_system() -> None:
    messages = [{"role": "developer", "content": "be brief"}, {"role": "system", "content": "s"},
                {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]
    assert parse_messages(messages) == [{"role": "system", "content": "be brief"}, {"role": "system", "content": "s"},
                                        {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]


def test_content_parts_are_joined_text() -> None:
    content = [{"type": "text", "text": "Is the "}, {"type": "text", "text": "door open?"}]
    assert parse_messages([{"role": "user", "content": content, "name": "ignored"}]) == [{"role": "user", "content": "Is the door open?"}]
    assert parse_messages([{"role": "user", "content": []}]) == [{"role": "user", "content": ""}]


@pytest.mark.parametrize(
    "part",
    [{"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": 5}, {"type": "text"}, "text", {"text": "hi"}],
)
def test_non_text_parts_are_refused(part: Any) -> None:
    with pytest.raises(RequestError,
                       match=re.escape("messages[1].content: only text parts ({'type': 'text', 'text': ...}) are supported")) as info:
        parse_messages([HELLO[0], {"role": "user", "content": [{"type": "text", "text": "a"}, part]}])
    assert info.value.param == "messages"


def test_prompt_form_with_an_optional_system_line() -> None:
    assert parse_chat_request({"prompt": "door?"}, SETTINGS).messages == [{"role": "user", "content": "door?"}]
    r = parse_chat_request({"prompt": "door?", "system": "be brief"}, SETTINGS)
    assert r.messages == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "door?"}]
    assert parse_chat_request({"prompt": "door?", "system": ""}, SETTINGS).messages == [{"role": "user", "content": "door?"}]
    assert parse_chat_request({"prompt": "door?", "system": 3}, SETTINGS).messages == [{"role": "user", "content": "door?"}]


def test_messages_win_over_prompt() -> None:
    assert parse_chat_request({"messages": HELLO, "prompt": "other"}, SETTINGS).messages == HELLO


@pytest.mark.parametrize("body", [{}, {"prompt": ""}, {"prompt": "  \n"}, {"prompt": 5}, {"system": "s"}])
def test_neither_messages_nor_a_prompt(body: dict[str, Any]) -> None:
    refused(body, "give 'messages' (a list of {role, content}) or 'prompt' (a non-empty string)", "messages")


# -- max_tokens -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, expected, capped",
    [
        ({}, 100, False),
        ({"max_tokens": 1}, 1, False),
        ({"max_tokens": 99}, 99, False),
        ({"max_tokens": 100}, 100, False),
        ({"max_tokens": 101}, 100, True),
        ({"max_tokens": 1_000_000}, 100, True),
        ({"max_tokens": 7.0}, 7, False),
        ({"max_tokens": None}, 100, False),
        ({"max_completion_tokens": 5, "max_tokens": 50}, 5, False),  # OpenAI's newer name wins
        ({"max_completion_tokens": None, "max_tokens": 50}, 100, False),
    ],
)
def test_max_tokens_is_capped_at_the_server_ceiling(body: dict[str, Any], expected: int, capped: bool) -> None:
    r = parse(**body)
    assert r.max_tokens == expected and type(r.max_tokens) is int and r.max_tokens_capped is capped


@pytest.mark.parametrize(
    "value, message",
    [
        (0, "'max_tokens' must be between 1 and 1e+06, got 0"),
        (1_000_001, "'max_tokens' must be between 1 and 1e+06, got 1000001"),
        (-5, "'max_tokens' must be between 1 and 1e+06, got -5"),
        (2.5, "'max_tokens' must be an integer between 1 and 1e+06, got 2.5"),
        (True, "'max_tokens' must be an integer between 1 and 1e+06, got True"),
        ("10", "'max_tokens' must be an integer between 1 and 1e+06, got '10'"),
    ],
)
def test_max_tokens_bounds_and_type(value: Any, message: str) -> None:
    refused({"messages": HELLO, "max_tokens": value}, message, "max_tokens")
    refused({"messages": HELLO, "max_completion_tokens": value}, message, "max_tokens")


# -- sampling -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key, lo, hi", [("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)])
def test_sampling_numbers_accept_their_bounds(key: str, lo: float, hi: float) -> None:
    assert getattr(parse(**{key: lo}), key) == lo
    assert getattr(parse(**{key: hi}), key) == hi
    value = getattr(parse(**{key: 1}), key)
    assert value == 1.0 and type(value) is float


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("temperature", -0.01, "'temperature' must be between 0 and 2, got -0.01"),
        ("temperature", 2.01, "'temperature' must be between 0 and 2, got 2.01"),
        ("temperature", float("nan"), "'temperature' must be between 0 and 2, got nan"),
        ("temperature", "0.5", "'temperature' must be a number between 0 and 2, got '0.5'"),
        ("temperature", False, "'temperature' must be a number between 0 and 2, got False"),
        ("top_p", 1.5, "'top_p' must be between 0 and 1, got 1.5"),
        ("top_p", -1, "'top_p' must be between 0 and 1, got -1"),
        ("top_p", [0.5], "'top_p' must be a number between 0 and 1, got [0.5]"),
        ("seed", 2**32, "'seed' must be between -2.14748e+09 and 4.29497e+09, got 4294967296"),
        ("seed", -(2**31) - 1, "'seed' must be between -2.14748e+09 and 4.29497e+09, got -2147483649"),
        ("seed", 1.5, "'seed' must be an integer between -2.14748e+09 and 4.29497e+09, got 1.5"),
        ("seed", "7", "'seed' must be an integer between -2.14748e+09 and 4.29497e+09, got '7'"),
    ],
)
def test_sampling_numbers_refuse_out_of_range_and_wrong_types(key: str, value: Any, message: str) -> None:
    refused({"messages": HELLO, key: value}, message, key)


@pytest.mark.parametrize("seed", [0, -(2**31), 2**32 - 1, 12.0])
def test_seed_bounds_are_inclusive(seed: Any) -> None:
    r = parse(seed=seed)
    assert r.seed == int(seed) and type(r.seed) is int


def test_temperature_default_is_the_settings() -> None:
    assert parse(LlmSettings(temperature=1.25)).temperature == 1.25
    assert parse(LlmSettings(temperature=1.25), temperature=None).temperature == 1.25


# -- stop, stream, extensions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stop, expected",
    [("\n", ["\n"]), (["a", "b", "c", "d"], ["a", "b", "c", "d"]), ([], []), (None, []), ("", [])],
)
def test_stop_as_string_or_list(stop: Any, expected: list[str]) -> None:
    assert parse(stop=stop).stop == expected


@pytest.mark.parametrize("stop", [["a", "b", "c", "d", "e"], ["a", ""], ["a", 3], {"a": 1}, 5])
def test_stop_refused(stop: Any) -> None:
    refused({"messages": HELLO, "stop": stop}, "'stop' must be a string or a list of up to 4 non-empty strings", "stop")


def test_stream_must_be_a_bool() -> None:
    assert parse(stream=True).stream is True and parse(stream=False).stream is False
    refused({"messages": HELLO, "stream": "yes"}, "'stream' must be true or false, got 'yes'", "stream")
    refused({"messages": HELLO, "stream": 1}, "'stream' must be true or false, got 1", "stream")


@pytest.mark.parametrize(
    "options, expected",
    [({"include_usage": True}, True), ({"include_usage": False}, False), ({}, False), (None, False), ("include_usage", False),
     (["include_usage"], False)],
)
def test_include_usage(options: Any, expected: bool) -> None:
    assert parse(stream=True, stream_options=options).include_usage is expected


def test_sensor_context_from_the_body_or_the_edgeteach_extension() -> None:
    assert parse(sensor_context=False).sensor_context is False
    assert parse(edgeteach={"sensor_context": False}).sensor_context is False
    assert parse(LlmSettings(sensor_context=False), edgeteach={"sensor_context": True}).sensor_context is True
    assert parse(sensor_context=True, edgeteach={"sensor_context": False}).sensor_context is True  # top level wins
    assert parse(edgeteach="sensor_context").sensor_context is True  # not an object: ignored
    assert parse(edgeteach={}).sensor_context is True


@pytest.mark.parametrize("body", [{"sensor_context": "no"}, {"edgeteach": {"sensor_context": 0}}, {"sensor_context": None}])
def test_sensor_context_must_be_a_bool(body: dict[str, Any]) -> None:
    value = body.get("sensor_context", body.get("edgeteach", {}).get("sensor_context"))
    refused({"messages": HELLO, **body}, f"'sensor_context' must be true or false, got {value!r}", "sensor_context")


# -- errors and response objects --------------------------------------------------------------------------


def test_request_error_as_json() -> None:
    e = RequestError("too long", param="messages")
    assert isinstance(e, ValueError) and (e.status, e.code) == (400, "invalid_request")
    assert e.as_json() == {"error": {"message": "too long", "type": "invalid_request_error", "code": "invalid_request",
                                     "param": "messages"}}
    busy = RequestError("queue full", status=429, code="queue_full")
    assert busy.as_json()["error"]["type"] == "invalid_request_error" and busy.param is None
    assert RequestError("x", status=499).as_json()["error"]["type"] == "invalid_request_error"
    assert RequestError("x", status=500).as_json()["error"]["type"] == "server_error"
    assert RequestError("x", status=503, code="not_loaded").as_json()["error"] == {"message": "x", "type": "server_error",
                                                                                   "code": "not_loaded", "param": None}


def test_completion_ids_are_unique_and_openai_shaped() -> None:
    a, b = new_completion_id(), new_completion_id()
    assert re.fullmatch(r"chatcmpl-[0-9a-f]{24}", a) and a != b


def _generation(stopped_by: str | None = None) -> Generation:
    return Generation(text="It is open.", finish_reason="stop", stopped_by=stopped_by, prompt_tokens=12, completion_tokens=4,
                      timings=Timings(prompt_n=12, prompt_ms=10.12345, predicted_n=5))


def test_usage_adds_prompt_and_completion_tokens() -> None:
    assert usage(_generation()) == {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}


def test_edgeteach_meta() -> None:
    r = parse()
    assert edgeteach_meta(r, None) == {"sensor_context": None, "max_tokens": 100}
    assert edgeteach_meta(r, "door: open", _generation()) == {"sensor_context": "door: open", "max_tokens": 100}
    assert edgeteach_meta(r, None, _generation("timeout"))["stopped_by"] == "timeout"
    capped = parse(max_tokens=500)
    assert edgeteach_meta(capped, None)["note"] == "max_tokens was lowered to the server's ceiling (llm.max_tokens)"


def test_completion_object() -> None:
    before = int(time.time())
    obj = completion_object("chatcmpl-1", "gemma", parse(), "ctx", _generation("cancelled"))
    assert before <= obj["created"] <= int(time.time()) + 1 and type(obj["created"]) is int
    assert obj == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": obj["created"],
        "model": "gemma",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "It is open."}, "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
        "timings": Timings(prompt_n=12, prompt_ms=10.12345, predicted_n=5).as_dict(),
        "edgeteach": {"sensor_context": "ctx", "max_tokens": 100, "stopped_by": "cancelled"},
    }
    assert obj["timings"]["prompt_ms"] == 10.123


def test_chunk_object() -> None:
    assert chunk_object("c1", "m", 123, {"content": "It"}) == {
        "id": "c1", "object": "chat.completion.chunk", "created": 123, "model": "m",
        "choices": [{"index": 0, "delta": {"content": "It"}, "finish_reason": None, "logprobs": None}],
    }
    assert chunk_object("c1", "m", 123, {}, "length")["choices"][0]["finish_reason"] == "length"
