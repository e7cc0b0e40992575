"""Issue 12, safe on a shared classroom network: the real daemon and `edge llm serve` against a real
Mosquitto. A command or LLM request left retained on the broker is never executed; reply topics with
wildcards or outside `mqtt.reply_prefix` get no reply at all; request ids are at most 128 characters."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support.broker import Broker, free_port, mosquitto_available
from tests.support.daemon import DaemonCommands, DaemonProcess, camera_pipeline, write_color_video, write_config
from tests.support.gguf_models import SMOLLM2
from tests.support.llm_server import LlmServerProcess, require_model, start_server
from tests.support.mqtt_listener import Listener, retained
from tests.support.onnx_models import make_color_bundle

pytestmark = pytest.mark.timeout(180)

PREFIX = "edgeteach/testdev"


def _client(broker: Broker, protocol: int = mqtt.MQTTv5) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sec-{uuid.uuid4().hex[:8]}", protocol=protocol)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def _publish(broker: Broker, topic: str, payload: Any, retain: bool = False, response_topic: str | None = None,
             correlation: bytes | None = None) -> None:
    client = _client(broker)
    props = None
    if response_topic is not None:
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = response_topic
        if correlation is not None:
            props.CorrelationData = correlation
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    client.publish(topic, body, qos=1, retain=retain, properties=props).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


@pytest.fixture()
def broker(tmp_path: Path) -> Iterator[Broker]:
    if not mosquitto_available():
        pytest.fail("mosquitto is not installed: run scripts/setup.sh")
    b = Broker(workdir=tmp_path, port=free_port()).start()
    yield b
    b.stop()


def _start_daemon(root: Path, broker: Broker, protocol: str = "5") -> DaemonProcess:
    bundle = make_color_bundle(root / "colors")
    video = write_color_video(root / "colors.avi", ["red", "green"], seconds_each=1.0, fps=10)
    pipeline = camera_pipeline("cam", bundle, str(video), source={"uri": str(video), "loop": True})
    config = write_config(root / "edge.yaml", broker.host, broker.port, [pipeline], mqtt={"protocol": protocol})
    return DaemonProcess(config)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_retained_commands_are_never_executed(tmp_path: Path, broker: Broker, protocol: str) -> None:
    # Someone left a retained pause on the broker: it must not pause the pipeline on every start.
    _publish(broker, f"{PREFIX}/cmd/pause", {"pipeline": "cam", "id": "retained-pause"}, retain=True)
    listener = Listener(broker.host, broker.port)
    daemon = _start_daemon(tmp_path, broker, protocol)

    def command(name: str, payload: dict[str, Any]) -> Any:  # answered on cmd/<name>/reply whatever the protocol
        marker = uuid.uuid4().hex
        _publish(broker, f"{PREFIX}/cmd/{name}", {**payload, "id": marker})
        return listener.wait_for(lambda m: m.topic == f"{PREFIX}/cmd/{name}/reply" and m.json().get("id") == marker, 15,
                                 what=f"the reply to {name}")[0].json()

    try:
        listener.wait_topic(f"{PREFIX}/cam/state", timeout=60)
        reply = command("ping", {})  # the positive marker: live commands still work
        assert reply["ok"] and reply["pong"]
        listener.sync()
        assert not listener.on(f"{PREFIX}/cmd/pause/reply"), "the retained pause was answered"
        assert all(not m.json().get("paused") for m in listener.on(f"{PREFIX}/cam/state")), "a state says paused"
        status = retained(broker.host, broker.port, f"{PREFIX}/cam/status")
        assert status is not None and status.json()["paused"] is False
        assert command("status", {})["pipelines"]["cam"]["paused"] is False
        if protocol == "3.1.1":  # MQTT 5: retain handling 2, the broker never sends it; 3.1.1: dropped on arrival
            assert "ignoring retained message on edgeteach/testdev/cmd/pause" in daemon.log()
    finally:
        daemon.stop()
        listener.close()


def test_refused_reply_topics_and_long_ids_get_no_command_reply(tmp_path: Path, broker: Broker) -> None:
    listener = Listener(broker.host, broker.port)
    daemon = _start_daemon(tmp_path, broker)
    commands = None
    try:
        listener.wait_topic(f"{PREFIX}/cam/state", timeout=60)
        commands = DaemonCommands(broker.host, broker.port, PREFIX)
        bad_topics = ["other/replies/x", f"{PREFIX}/cam/state", f"{PREFIX}/replies/+", f"{PREFIX}/replies/#",
                      "homeassistant/sensor/x/config", f"{PREFIX}/replies"]
        for i, topic in enumerate(bad_topics):
            _publish(broker, f"{PREFIX}/cmd/pause", {"pipeline": "cam", "id": f"bad-{i}"}, response_topic=topic, correlation=b"c")
        long_id = commands("ping", {"id": "x" * 129})
        assert long_id["ok"] is False and "128" in long_id["error"] and "id" not in long_id
        assert commands("ping", {"id": "y" * 128})["id"] == "y" * 128
        reply = commands("status")  # the positive marker, published after everything the daemon did before
        assert reply["pipelines"]["cam"]["paused"] is False, "a pause with a refused reply topic was executed"
        listener.sync()
        for topic in ("other/replies/x", "homeassistant/sensor/x/config", f"{PREFIX}/replies"):
            assert not listener.on(topic), f"a reply went to {topic}"
        assert not [m for m in listener.on(f"{PREFIX}/cam/state") if m.payload.startswith(b'{"ok"')]
        assert not listener.on(f"{PREFIX}/cmd/pause/reply"), "a refused request was answered on cmd/pause/reply"
        log = daemon.log()
        assert log.count("ignoring command pause") == len(bad_topics), log[-3000:]
    finally:
        if commands is not None:
            commands.close()
        daemon.stop()
        listener.close()


# -- the LLM's MQTT API ------------------------------------------------------------------------------


@pytest.fixture()
def llm(tmp_path: Path, broker: Broker) -> Iterator[LlmServerProcess]:
    model = require_model(SMOLLM2)
    # A request someone left retained before the server starts: it must never run.
    _publish(broker, f"{PREFIX}/llm/request", {"prompt": "hi", "max_tokens": 2, "id": "retained", "reply_to": f"{PREFIX}/replies/ret"},
             retain=True)
    config = f"""
device_id: testdev
mqtt:
  host: 127.0.0.1
  port: {broker.port}
llm:
  model: {model}
  port: PORT
  max_tokens: 16
  context_size: 512
  threads: 1
  temperature: 0
"""
    srv = start_server(tmp_path, config)
    yield srv
    assert srv.stop() == 0, srv.log_text()


def test_llm_refuses_retained_requests_bad_reply_topics_and_long_ids(llm: LlmServerProcess, broker: Broker) -> None:
    listener = Listener(broker.host, broker.port)
    try:
        listener.sync()
        request = f"{PREFIX}/llm/request"
        body = {"prompt": "Say hi.", "max_tokens": 2}
        _publish(broker, request, {**body, "id": "v5-bad"}, response_topic="other/answers", correlation=b"v5-bad")
        _publish(broker, request, {**body, "id": "v5-wild"}, response_topic=f"{PREFIX}/replies/#", correlation=b"v5-wild")
        for i, reply_to in enumerate(["my/answers", f"{PREFIX}/replies/+", "", f"{PREFIX}/status", 7]):
            _publish(broker, request, {**body, "id": f"311-bad-{i}", "reply_to": reply_to})
        _publish(broker, request, {**body, "id": "z" * 129, "reply_to": f"{PREFIX}/replies/long"})
        good = f"{PREFIX}/replies/{uuid.uuid4().hex}"
        _publish(broker, request, {**body, "id": "good", "reply_to": good})  # the positive marker, handled after the others
        final = listener.wait_for(lambda m: m.topic == good and m.json().get("type") == "final", 60, what="the good request's answer")
        assert final[0].json()["id"] == "good"
        long_id = listener.wait_topic(f"{PREFIX}/replies/long", timeout=10)[0].json()
        assert long_id["type"] == "error" and long_id["id"] is None and "128" in long_id["error"]["message"]
        listener.sync()
        replies = [m for m in listener.messages if m.topic != request and not m.topic.endswith("/status")
                   and not m.topic.startswith("edgeteach-test-sync/") and m.topic not in (good, f"{PREFIX}/replies/long")]
        assert replies == [], [(m.topic, m.payload[:100]) for m in replies]
        assert not listener.on(f"{PREFIX}/replies/ret"), "the retained request was run"
        log = llm.log_text()
        assert log.count("ignoring LLM request") == 7, log[-3000:]
    finally:
        listener.close()
