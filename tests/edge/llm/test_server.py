"""`edge llm serve` for real: SmolLM2-135M (a real GGUF through llama.cpp), a real Mosquitto, the
official openai client, raw HTTP for the queue and disconnect cases, paho for MQTT 5 and 3.1.1."""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support.broker import Broker, free_port, mosquitto_available
from tests.support.gguf_models import SMOLLM2
from tests.support.llm_server import LlmServerProcess, require_model, start_server
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(180)

API_KEY = "test-key-123"
PREFIX = "edgeteach/testpi"
CAMERA_STATE = {"pipeline": "camera", "label": "cat", "confidence": 0.93, "scores": {"cat": 0.93, "dog": 0.07}}
LONG_ANSWER = [{"role": "user", "content": "Count from 1 to 300, one number per line, and nothing else."}]


@pytest.fixture(scope="module")
def llm_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    if not mosquitto_available():
        pytest.fail("mosquitto is not installed: run scripts/setup.sh (Debian package 'mosquitto')")
    broker = Broker(workdir=tmp_path_factory.mktemp("broker"), port=free_port()).start()
    # The camera pipeline's retained state is on the broker before the LLM starts, as on a real device.
    publish_retained(broker, f"{PREFIX}/camera/state", {**CAMERA_STATE, "ts": time.time()})
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, llm_broker: Broker) -> Iterator[LlmServerProcess]:
    model = require_model(SMOLLM2)
    config = f"""
device_id: testpi
mqtt:
  host: 127.0.0.1
  port: {llm_broker.port}
  protocol: "5"
pipelines:  # the sensor context takes states of the config's own pipelines only
  - name: camera
    kind: camera
    bundle: {model.parent}/no-bundle-needed
    source: {{uri: "0"}}
llm:
  model: {model}
  port: PORT
  api_key: {API_KEY}
  queue_size: 1
  max_tokens: 200
  context_size: 1024
  threads: 1
  temperature: 0
  sensor_context: false
"""
    srv = start_server(tmp_path_factory.mktemp("llm"), config, api_key=API_KEY)
    yield srv
    assert srv.stop() == 0, srv.log_text()


def publish_retained(broker: Broker, topic: str, payload: dict[str, Any]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.publish(topic, json.dumps(payload), qos=1, retain=True).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def openai_client(srv: LlmServerProcess, key: str = API_KEY) -> Any:
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=f"{srv.base_url}/v1", api_key=key, max_retries=0, timeout=120)


def post(srv: LlmServerProcess, body: Any, raw: bytes | None = None) -> tuple[int, http.client.HTTPMessage, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
    conn.request("POST", "/v1/chat/completions", body=raw if raw is not None else json.dumps(body),
                 headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, response.headers, json.loads(data)  # header names are case-insensitive


class Stream:
    """A raw SSE stream, read event by event, timestamps kept."""

    def __init__(self, srv: LlmServerProcess, body: dict[str, Any]) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
        self.conn.request("POST", "/v1/chat/completions", body=json.dumps({**body, "stream": True}),
                          headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
        self.sock = self.conn.sock  # http.client hands it to the response (Connection: close)
        self.response = self.conn.getresponse()
        self.events: list[Any] = []
        self.text = ""
        self.first_token_at: float | None = None
        self.done_at: float | None = None

    def next_event(self) -> Any:
        for line in self.response:
            if line.startswith(b"data: "):
                data = line[6:].strip()
                event = "[DONE]" if data == b"[DONE]" else json.loads(data)
                self.events.append(event)
                if event == "[DONE]":
                    self.done_at = time.monotonic()
                else:
                    for choice in event.get("choices", []):
                        if choice["delta"].get("content"):
                            self.first_token_at = self.first_token_at or time.monotonic()
                            self.text += choice["delta"]["content"]
                return event
        return None

    def read_all(self) -> None:
        while self.next_event() not in ("[DONE]", None):
            pass

    def final(self) -> dict[str, Any]:
        return next(e for e in self.events if e != "[DONE]" and e.get("choices") and e["choices"][0]["finish_reason"])


def metric(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name)}\{{[^}}]*{re.escape(labels)}[^}}]*\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


# -- HTTP ------------------------------------------------------------------------------------------


def test_health_models_and_api_key(server: LlmServerProcess) -> None:
    assert server.get_json("/health")["status"] == "ok"  # /health needs no key (monitoring)
    client = openai_client(server)
    models = client.models.list()
    assert [m.id for m in models.data] == ["SmolLM2-135M-Instruct.Q4_1"]
    openai = pytest.importorskip("openai")
    with pytest.raises(openai.AuthenticationError):
        openai_client(server, key="wrong").models.list()


def test_openai_client_plain_completion(server: LlmServerProcess) -> None:
    client = openai_client(server)
    response = client.chat.completions.create(
        model="SmolLM2-135M-Instruct.Q4_1",
        messages=[{"role": "user", "content": "What is 2 + 2?"}],
        max_tokens=16, temperature=0,
    )
    answer = response.choices[0].message.content
    assert answer and "4" in answer
    assert response.choices[0].finish_reason in ("stop", "length")
    assert 0 < response.usage.completion_tokens <= 16 and response.usage.prompt_tokens > 10
    timings = response.model_extra["timings"]
    assert timings["predicted_n"] == response.usage.completion_tokens
    assert timings["ttft_ms"] >= timings["prompt_ms"] > 0


def test_openai_client_streaming(server: LlmServerProcess) -> None:
    client = openai_client(server)
    chunks = list(client.chat.completions.create(
        model="any", messages=[{"role": "user", "content": "Name three colours."}],
        max_tokens=24, temperature=0, stream=True, stream_options={"include_usage": True},
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.strip()) > 3
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1
    assert chunks[-1].usage is not None and 0 < chunks[-1].usage.completion_tokens <= 24
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) >= 2  # really streamed


def test_two_streams_complete_in_turn_and_a_third_is_refused(server: LlmServerProcess) -> None:
    body = {"messages": LONG_ANSWER, "max_tokens": 40, "temperature": 0, "stream_options": {"include_usage": True}}
    first = Stream(server, body)
    assert first.next_event() is not None  # role chunk
    while first.first_token_at is None:
        first.next_event()
    second = Stream(server, body)  # headers arrive once it is queued (queue_size 1)
    assert second.response.status == 200
    status, headers, error = post(server, {**body, "stream": True})
    assert status == 429
    assert int(headers["Retry-After"]) >= 1
    assert "llm.queue_size" in error["error"]["message"] and error["error"]["code"] == "queue_full"
    first.read_all()
    second.read_all()
    for stream in (first, second):
        assert stream.events[-1] == "[DONE]"
        assert stream.final()["choices"][0]["finish_reason"] == "length"
        usage = stream.events[-2]["usage"]
        assert usage["completion_tokens"] == 40  # nothing was cut off
    assert second.text == first.text  # same prompt, temperature 0: the second ran whole, on its own
    assert first.done_at is not None and second.first_token_at is not None
    assert second.first_token_at >= first.done_at - 0.05  # one at a time, never interleaved


def test_disconnect_mid_stream_cancels_and_frees_the_worker(server: LlmServerProcess) -> None:
    before = server.metrics()
    stream = Stream(server, {"messages": LONG_ANSWER, "max_tokens": 200, "temperature": 0})
    while len(stream.text) < 6:
        stream.next_event()
    stream.sock.shutdown(socket.SHUT_RDWR)  # the client goes away mid-answer
    stream.response.close()
    stream.sock.close()
    started = time.monotonic()
    status, _, answer = post(server, {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "temperature": 0})
    assert status == 200 and answer["usage"]["completion_tokens"] <= 4
    after = server.metrics()
    assert metric(after, "edgeteach_llm_requests_total", 'outcome="cancelled"') == metric(before, "edgeteach_llm_requests_total",
                                                                                          'outcome="cancelled"') + 1
    generated = metric(after, "edgeteach_llm_generation_tokens_total") - metric(before, "edgeteach_llm_generation_tokens_total")
    assert generated < 150, f"{generated} tokens generated: the abandoned answer (200 tokens) was not stopped"
    assert answer["timings"]["queue_ms"] < (time.monotonic() - started) * 1000 + 1


def test_disconnect_during_a_non_streaming_request_cancels_the_generation(server: LlmServerProcess) -> None:
    """Nothing is written to a non-streaming client until the answer is complete, so only the handler's
    periodic check notices that it left; the generation must stop then, not run on for nobody."""
    wait_for(lambda: metric(server.metrics(), "edgeteach_llm_busy") == 0, 60, "the model to be idle")
    before = server.metrics()
    outcomes = lambda text: {o: metric(text, "edgeteach_llm_requests_total", f'outcome="{o}"') for o in ("ok", "cancelled")}  # noqa: E731
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    conn.request("POST", "/v1/chat/completions", body=json.dumps({"messages": LONG_ANSWER, "max_tokens": 200, "temperature": 0}),
                 headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
    wait_for(lambda: metric(server.metrics(), "edgeteach_llm_busy") == 1, 60, "the request to reach the model")
    conn.sock.shutdown(socket.SHUT_RDWR)  # the client goes away before its answer (none of it was sent yet)
    conn.close()
    # the request ends (one more ok or cancelled) long before 200 tokens would take
    after = wait_for(lambda: (text := server.metrics()) and sum(outcomes(text).values()) > sum(outcomes(before).values()) and text,
                     60, "the abandoned request to end")
    assert outcomes(after) == {**outcomes(before),
                               "cancelled": outcomes(before)["cancelled"] + 1}, "the abandoned request was not cancelled"
    generated = metric(after, "edgeteach_llm_generation_tokens_total") - metric(before, "edgeteach_llm_generation_tokens_total")
    assert generated < 150, f"{generated} tokens generated: the abandoned answer (200 tokens) was not stopped"
    wait_for(lambda: "client disconnected; generation cancelled" in server.log_text(), 10, "the cancellation in the log")
    status, _, answer = post(server, {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "temperature": 0})
    assert status == 200 and answer["usage"]["completion_tokens"] <= 4  # the worker is free again


def test_http_errors_are_clear(server: LlmServerProcess) -> None:
    status, _, body = post(server, None, raw=b"{not json")
    assert status == 400 and body["error"]["code"] == "invalid_json"
    status, _, body = post(server, {"messages": [{"role": "wizard", "content": "x"}]})
    assert status == 400 and "messages[0].role" in body["error"]["message"]
    status, _, body = post(server, {"messages": [{"role": "user", "content": "word " * 2000}]})
    assert status == 400 and body["error"]["code"] == "context_length_exceeded"
    assert "context holds 1024" in body["error"]["message"]
    assert server.process.poll() is None


def test_sensor_context_is_injected_and_used(server: LlmServerProcess) -> None:
    wait_for(lambda: server.get_json("/edgeteach/sensors")["states"], 15, "the retained camera state to reach the server")
    client = openai_client(server)
    response = client.chat.completions.create(
        model="any", messages=[{"role": "user", "content": "What does the camera see?"}],
        max_tokens=24, temperature=0, seed=0, extra_body={"sensor_context": True},
    )
    injected = response.model_extra["edgeteach"]["sensor_context"]
    assert injected is not None and "The camera sees: cat (confidence 0.93" in injected
    assert "The camera sees: cat (confidence 0.93" in server.log_text()  # the debug log shows what went into the prompt
    # SmolLM2-135M at temperature 0 answers e.g. "The camera sees a cat." (deterministic for this prompt).
    assert "cat" in response.choices[0].message.content.lower()
    plain = client.chat.completions.create(model="any", messages=[{"role": "user", "content": "What does the camera see?"}],
                                           max_tokens=8, temperature=0)
    assert plain.model_extra["edgeteach"]["sensor_context"] is None  # not asked for, config default off


def test_chat_command_streams_from_the_server(server: LlmServerProcess) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "edge.cli", "llm", "chat", "--url", server.base_url, "--api-key", API_KEY,
         "--max-tokens", "12", "--temperature", "0", "--stats"],
        input="What is 2 + 2?\n", capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("model> ") and "4" in run.stdout
    assert "tok/s" in run.stderr


# -- MQTT ------------------------------------------------------------------------------------------


class Requester:
    """A plain paho client in the role of a student's script."""

    def __init__(self, broker: Broker, protocol: int) -> None:
        self.messages: list[tuple[str, Any, bytes | None]] = []
        self.arrived = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"req-{uuid.uuid4().hex[:6]}", protocol=protocol)
        self.client.on_message = self._on_message
        self.subacks: set[int] = set()
        self.client.on_subscribe = lambda client, userdata, mid, *rest: self.subacks.add(mid)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        props = getattr(message, "properties", None)
        correlation = getattr(props, "CorrelationData", None) if props is not None else None
        with self.arrived:
            self.messages.append((message.topic, json.loads(message.payload), correlation))
            self.arrived.notify_all()

    def subscribe(self, topic: str) -> None:
        _, mid = self.client.subscribe(topic, qos=1)
        wait_for(lambda: mid in self.subacks, 10, f"the SUBACK for {topic}")  # before the request goes out

    def wait_for(self, kind: str, count: int = 1, timeout: float = 60) -> list[tuple[str, Any, bytes | None]]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while sum(1 for m in self.messages if m[1].get("type") == kind) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"no {kind!r} reply within {timeout}s; got {self.messages}"
                self.arrived.wait(left)
            return list(self.messages)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture()
def mqtt5(llm_broker: Broker) -> Iterator[Requester]:
    requester = Requester(llm_broker, mqtt.MQTTv5)
    yield requester
    requester.close()


def _request_v5(requester: Requester, payload: bytes, response_topic: str, correlation: bytes) -> None:
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = response_topic
    props.CorrelationData = correlation
    requester.client.publish(f"{PREFIX}/llm/request", payload, qos=1, properties=props)


def test_mqtt5_request_streams_to_the_response_topic(server: LlmServerProcess, mqtt5: Requester) -> None:
    topic = f"{PREFIX}/replies/{uuid.uuid4().hex}/answer"
    mqtt5.subscribe(topic)
    _request_v5(mqtt5, json.dumps({"prompt": "Say hello.", "max_tokens": 24, "temperature": 0, "stream": True,
                                   "sensor_context": True, "id": 7}).encode(), topic, b"corr-42")
    messages = mqtt5.wait_for("final")
    assert all(t == topic and corr == b"corr-42" for t, _, corr in messages)
    chunks = [m for _, m, _ in messages if m["type"] == "chunk"]
    final = next(m for _, m, _ in messages if m["type"] == "final")
    assert chunks and [c["index"] for c in chunks] == list(range(len(chunks)))
    assert "".join(c["delta"] for c in chunks) == final["content"]
    assert chunks[0]["tokens"] == 1  # the first piece goes out at once; later ones are batched
    assert sum(c["tokens"] for c in chunks) <= final["usage"]["completion_tokens"]
    assert final["id"] == 7 and 0 < final["usage"]["completion_tokens"] <= 24
    assert final["timings"]["predicted_n"] == final["usage"]["completion_tokens"]
    assert "The camera sees: cat (confidence 0.93" in final["sensor_context"]


def test_mqtt311_request_answered_on_reply_to(server: LlmServerProcess, llm_broker: Broker) -> None:
    requester = Requester(llm_broker, mqtt.MQTTv311)
    try:
        topic = f"{PREFIX}/replies/{uuid.uuid4().hex}/reply"
        requester.subscribe(topic)
        requester.client.publish(f"{PREFIX}/llm/request", json.dumps(
            {"messages": [{"role": "user", "content": "What is 2 + 2?"}], "max_tokens": 8, "temperature": 0,
             "reply_to": topic, "id": "abc"}), qos=1)
        messages = requester.wait_for("final")
        assert [m["type"] for _, m, _ in messages] == ["final"]  # not streamed: one answer
        final = messages[0][1]
        assert messages[0][0] == topic and final["id"] == "abc" and final["content"]
        assert final["sensor_context"] is None  # not asked for; the config default is off
    finally:
        requester.close()


def test_mqtt_malformed_requests_get_error_replies(server: LlmServerProcess, mqtt5: Requester) -> None:
    topic = f"{PREFIX}/replies/{uuid.uuid4().hex}/errors"
    mqtt5.subscribe(topic)
    cases = [
        (b"{this is not json", "invalid_json"),
        (json.dumps({"max_tokens": 5}).encode(), "invalid_request"),
        (json.dumps({"prompt": "word " * 2000}).encode(), "context_length_exceeded"),
        (b"[" * 60_000, "invalid_json"),  # deep enough for a RecursionError in the parser (issue 12 item 8)
        (json.dumps({"prompt": "Hi", "max_tokens": 10**400}).encode(), "invalid_request"),  # OverflowError as a float
    ]
    for i, (payload, _) in enumerate(cases):
        _request_v5(mqtt5, payload, topic, f"bad-{i}".encode())
    messages = mqtt5.wait_for("error", count=len(cases))
    by_correlation = {corr: body for _, body, corr in messages}
    for i, (_, code) in enumerate(cases):
        assert by_correlation[f"bad-{i}".encode()]["error"]["code"] == code
    assert "nested too deeply" in by_correlation[b"bad-3"]["error"]["message"]
    assert "'messages'" in by_correlation[b"bad-1"]["error"]["message"]  # a refused reply_to: tests/e2e/test_security_mqtt.py
    assert server.process.poll() is None  # still serving
    assert server.get_json("/health")["status"] == "ok"
