"""The LLM server's parts that need no model: request validation, sensor context, chat formats, metrics,
and the HTTP API while the model is still loading."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from edge.config.llm import LlmSettings
from edge.llm.chat_format import OWN_FORMATS
from edge.llm.core import LlmCore
from edge.llm.engine import Generation, Timings
from edge.llm.http_api import LlmHttpServer
from edge.llm.metrics import LlmMetrics
from edge.llm.requests import RequestError, parse_chat_request
from edge.llm.sensors import BEGIN, END, SensorContext, with_sensor_context

SETTINGS = LlmSettings(max_tokens=64, temperature=0.5)


def test_request_defaults_and_max_tokens_ceiling() -> None:
    req = parse_chat_request({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1000}, SETTINGS)
    assert req.max_tokens == 64 and req.max_tokens_capped
    assert req.temperature == 0.5 and req.stream is False
    assert req.sensor_context is True  # the config default
    req = parse_chat_request({"prompt": "hi", "system": "be brief", "sensor_context": False}, SETTINGS)
    assert req.messages == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert req.max_tokens == 64 and not req.max_tokens_capped and req.sensor_context is False
    parts = parse_chat_request({"messages": [{"role": "developer", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}, SETTINGS)
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


def test_sensor_summary_from_retained_states() -> None:
    ctx = SensorContext("edgeteach/pi", max_age_s=60, kinds={"mic": "microphone"})
    now = time.time()
    ctx.on_state("edgeteach/pi/camera/state", json.dumps({"label": "cat", "confidence": 0.93, "ts": now - 4}).encode())
    ctx.on_state("edgeteach/pi/mic/state", json.dumps({"label": "speech", "confidence": 0.8, "ts": now - 3600}).encode())
    ctx.on_state("edgeteach/pi/desk/state", json.dumps({"label": "cup", "ts": now - 1.2}).encode())
    ctx.on_state("edgeteach/pi/door/state", b"not json")
    summary = ctx.summary(now)
    assert summary is not None
    assert summary.startswith(BEGIN) and END in summary
    assert "- The camera sees: cat (confidence 0.93, 4 s ago)" in summary
    assert '- "desk" detects: cup (1 s ago)' in summary  # kind unknown, no confidence
    assert "speech" not in summary and "door" not in summary  # too old / not a state
    ctx.on_state("edgeteach/pi/camera/state", b"")  # retained state cleared: the pipeline is gone
    ctx.on_state("edgeteach/pi/mic/state", json.dumps({"label": "speech", "confidence": 0.8, "ts": now}).encode())
    assert ctx.summary(now).splitlines()[1:3] == ['- "desk" detects: cup (1 s ago)', '- The microphone "mic" hears: speech (confidence 0.80, 0 s ago)']


def test_sensor_context_goes_into_the_system_prompt() -> None:
    user = [{"role": "user", "content": "What do you see?"}]
    added = with_sensor_context(user, "STATES")
    assert added == [{"role": "system", "content": "STATES"}, user[0]]
    merged = with_sensor_context([{"role": "system", "content": "Be brief."}, *user], "STATES")
    assert merged[0] == {"role": "system", "content": "Be brief.\n\nSTATES"}
    assert with_sensor_context(user, None) == user


def test_gemma_format_keeps_the_system_prompt() -> None:
    # llama-cpp-python's "gemma" format drops system messages, and with them the sensor context.
    prompt = OWN_FORMATS["gemma"]([{"role": "system", "content": "SENSORS"}, {"role": "user", "content": "Hi"}]).text
    assert prompt == "<start_of_turn>user\nSENSORS\n\nHi<end_of_turn>\n<start_of_turn>model\n"


def test_metrics_exposition() -> None:
    metrics = LlmMetrics()
    metrics.count_request("http", "ok")
    metrics.count_request("mqtt", "queue_full")
    timings = Timings(prompt_n=20, prompt_ms=100.0, predicted_n=11, predicted_ms=200.0, ttft_ms=300.0)
    metrics.observe_generation(Generation("x", "stop", None, 20, 11, timings), 0.5)
    text = metrics.render("tiny")
    assert 'edgeteach_llm_requests_total{api="http",outcome="ok"} 1' in text
    assert 'edgeteach_llm_requests_total{api="mqtt",outcome="queue_full"} 1' in text
    assert 'edgeteach_llm_prompt_tokens_per_second{model="tiny"} 200' in text
    assert 'edgeteach_llm_generation_tokens_per_second{model="tiny"} 50' in text
    assert 'edgeteach_llm_time_to_first_token_seconds_bucket{model="tiny",le="0.25"} 0' in text
    assert 'edgeteach_llm_time_to_first_token_seconds_bucket{model="tiny",le="0.5"} 1' in text


def test_http_answers_503_while_the_model_loads() -> None:
    core = LlmCore(LlmSettings(model="/nonexistent.gguf"))  # never loaded: the state before load() returns
    server = LlmHttpServer(core, "127.0.0.1", 0)
    server.start()
    base = f"http://127.0.0.1:{server.address[1]}"
    try:
        with pytest.raises(urllib.error.HTTPError) as health:
            urllib.request.urlopen(f"{base}/health", timeout=5)
        assert health.value.code == 503 and json.loads(health.value.read())["status"] == "loading"
        request = urllib.request.Request(f"{base}/v1/chat/completions", data=json.dumps({"prompt": "hi"}).encode(),
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as chat:
            urllib.request.urlopen(request, timeout=5)
        assert chat.value.code == 503 and chat.value.headers["Retry-After"]
        assert "still loading" in json.loads(chat.value.read())["error"]["message"]
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
            assert 'edgeteach_llm_model_loaded{model="nonexistent"} 0' in response.read().decode()
    finally:
        server.stop()
