"""LlmCore.admit (issue 12 item 8): cheap refusals come before any tokenizing. A real model in this
process; its `prepare` (the tokenizer) is counted to prove that a full queue and an over-long prompt are
refused without it. Also the config and start-up checks of item 11 that need no server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from edge.config.llm import LlmSettings, exposure_problem
from edge.core.hosts import is_loopback
from edge.llm.core import LlmCore, NotReadyError, max_prompt_chars
from edge.llm.engine import Engine
from edge.llm.requests import RequestError, parse_chat_request, parse_json
from edge.llm.worker import QueueFullError, Worker
from tests.support.gguf_models import SMOLLM2
from tests.support.llm_server import require_model

SETTINGS = LlmSettings(queue_size=1, context_size=512, max_tokens=8, sensor_context=False)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load(LlmSettings(model=str(require_model(SMOLLM2)), threads=1, context_size=512))


@pytest.fixture()
def core(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LlmCore, list[int]]]:
    """A core whose worker is never started, so submitted jobs stay queued; `calls` counts tokenizations."""
    calls: list[int] = []
    real_prepare = engine.prepare

    def counting_prepare(messages: Any) -> Any:
        calls.append(1)
        return real_prepare(messages)

    monkeypatch.setattr(engine, "prepare", counting_prepare)
    core = LlmCore(SETTINGS)
    core.engine = engine
    core.worker = Worker(engine, SETTINGS.queue_size, core.metrics)
    yield core, calls


def _request(text: str) -> Any:
    return parse_chat_request({"prompt": text}, SETTINGS)


@pytest.mark.native_llm
def test_a_full_queue_answers_429_without_tokenizing(core: tuple[LlmCore, list[int]]) -> None:
    llm, calls = core
    llm.admit(_request("Hello"), "http", lambda event: None)  # fills the one place in the queue
    assert calls == [1]
    for _ in range(3):
        with pytest.raises(QueueFullError) as full:
            llm.admit(_request("word " * 2000), "http", lambda event: None)
        assert full.value.status == 429 and full.value.retry_after_s >= 1
    assert calls == [1], "a request was tokenized although the queue was full"
    assert llm.metrics.requests[("http", "queue_full")] == 3


@pytest.mark.native_llm
def test_a_prompt_too_long_by_characters_is_refused_without_tokenizing(core: tuple[LlmCore, list[int]]) -> None:
    llm, calls = core
    limit = max_prompt_chars(512)
    with pytest.raises(RequestError) as long:
        llm.admit(_request("a" * (limit + 1)), "mqtt", lambda event: None)
    assert long.value.status == 400 and long.value.code == "context_length_exceeded"
    assert f"{limit + 1} characters" in str(long.value)
    assert calls == []
    # At the bound it is tokenized (and then refused by its token count: 'a' * 16384 is thousands of tokens).
    with pytest.raises(RequestError) as tokenized:
        llm.admit(_request("a" * limit), "mqtt", lambda event: None)
    assert tokenized.value.code == "context_length_exceeded" and "tokens" in str(tokenized.value)
    assert calls == [1]


def test_a_failed_load_is_not_echoed_to_clients() -> None:
    core = LlmCore(SETTINGS)
    core.load_error = "cannot read /home/teacher/secret-models/x.gguf: bad magic"
    with pytest.raises(NotReadyError) as refused:
        core.admit(_request("Hi"), "http", lambda event: None)
    assert "/home/teacher" not in str(refused.value) and "log" in str(refused.value)


# -- item 8: JSON that breaks parsers ---------------------------------------------------------------


def test_deep_json_and_huge_numbers_are_request_errors() -> None:
    for raw in (b"[" * 100_000, b'{"a": ' * 50_000, b"\xff\xfe", b"{"):
        with pytest.raises(RequestError) as bad:
            parse_json(raw)
        assert bad.value.code == "invalid_json" and bad.value.status == 400
    for key in ("max_tokens", "seed", "temperature", "top_p"):
        with pytest.raises(RequestError) as huge:
            parse_chat_request({"prompt": "Hi", key: 10**400}, SETTINGS)
        assert huge.value.param == key and len(str(huge.value)) < 200


def test_errors_quote_at_most_a_little_of_a_bad_value() -> None:
    with pytest.raises(RequestError) as bad:
        parse_chat_request({"messages": [{"role": "x" * 100_000, "content": "hi"}]}, SETTINGS)
    assert len(str(bad.value)) < 200


# -- item 11: keys and exposure -----------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "   ", "two words", "tab\tkey", "line\nbreak"])
def test_an_empty_or_unusable_api_key_is_a_config_error(key: str) -> None:
    with pytest.raises(ValidationError, match="api_key"):
        LlmSettings(api_key=key)


def test_a_real_api_key_and_no_key_are_accepted() -> None:
    assert LlmSettings(api_key="0123456789abcdef").api_key == "0123456789abcdef"
    assert LlmSettings().api_key is None


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("localhost", True),
                                            ("0.0.0.0", False), ("::", False), ("192.168.1.20", False),
                                            ("raspberrypi", False)])
def test_only_loopback_hosts_may_go_without_a_key(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    problem = exposure_problem(host, None, insecure_no_key=False)
    assert (problem is None) is loopback
    if problem:
        assert "--insecure-no-key" in problem and "llm.api_key" in problem
    assert exposure_problem(host, None, insecure_no_key=True) is None
    assert exposure_problem(host, "k3y-long-enough", insecure_no_key=False) is None
