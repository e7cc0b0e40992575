"""Issue 12, safe on a shared classroom network: the real daemon and `edge llm serve` against a real
Mosquitto. A command or LLM request left retained on the broker is never executed; reply topics with
wildcards or outside `mqtt.reply_prefix` get no reply at all; request ids are at most 128 characters. A 10 MB
command never reaches the daemon's memory (MQTT 5 Maximum Packet Size); a flood of snapshot requests over a slow
link drops no event and puts no image on the broadcast reply topic."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import psutil
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support.broker import Broker, free_port, mosquitto_available
from tests.support.daemon import (
    DaemonCommands,
    DaemonProcess,
    camera_pipeline,
    health_metrics,
    metric_value,
    write_color_video,
    write_config,
)
from tests.support.gguf_models import SMOLLM2
from tests.support.llm_server import LlmServerProcess, require_model, start_server
from tests.support.mqtt_listener import Listener, retained
from tests.support.onnx_models import make_color_bundle
from tests.support.waiting import wait_for

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


def _start_daemon(root: Path, broker: Broker, protocol: str = "5", **mqtt_settings: Any) -> DaemonProcess:
    bundle = make_color_bundle(root / "colors")
    video = write_color_video(root / "colors.avi", ["red", "green"], seconds_each=1.0, fps=10)
    pipeline = camera_pipeline("cam", bundle, str(video), source={"uri": str(video), "loop": True})
    config = write_config(root / "edge.yaml", broker.host, broker.port, [pipeline], mqtt={"protocol": protocol, **mqtt_settings})
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


def test_on_an_anonymous_broker_reload_and_snapshot_are_off_by_default(tmp_path: Path, broker: Broker) -> None:
    # The config names no broker account, so the broker is most likely open to the whole class: the default
    # allow list leaves out the commands that swap the model and show the camera (issue 12 item 2).
    listener = Listener(broker.host, broker.port)
    daemon = _start_daemon(tmp_path, broker, commands={})  # {}: the default, not the tests' explicit allow list
    commands = None
    try:
        listener.wait_topic(f"{PREFIX}/cam/state", timeout=60)
        commands = DaemonCommands(broker.host, broker.port, PREFIX)
        assert commands("ping")["pong"] is True
        for name, payload in (("snapshot", {"pipeline": "cam"}), ("reload", {"pipeline": "cam", "bundle": str(tmp_path / "colors")})):
            reply = commands(name, payload)
            assert reply["ok"] is False and reply["error"].startswith(f"{name} is turned off on this device"), reply
            assert "jpeg_base64" not in reply
        paused = commands("pause", {"pipeline": "cam"})  # the harmless ones still work
        assert paused["ok"] is True and paused["paused"] is True
        assert commands("resume", {"pipeline": "cam"})["paused"] is False
        assert "Traceback" not in daemon.log()
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


# -- items 3 and 4: no oversized message reaches memory; snapshots do not leak, floods drop no event ---------


def _peak_rss_reset(pid: int) -> None:
    """Resets the kernel's peak-RSS mark (VmHWM) of `pid` to its current RSS (Linux: clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def _peak_rss(pid: int) -> int:
    """The peak resident set size of `pid` since the last reset (VmHWM), in bytes: a message read into memory
    and freed again still shows here, where a later RSS reading would miss it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def test_a_10_mb_command_gets_no_reply_and_does_not_grow_the_daemon(tmp_path: Path, broker: Broker) -> None:
    # planted bug: no Maximum Packet Size at CONNECT -> the broker sends the 10 MB; the daemon's peak RSS grows by > 10 MB
    listener = Listener(broker.host, broker.port, (f"{PREFIX}/replies/#", f"{PREFIX}/cmd/ping/reply"))
    daemon = _start_daemon(tmp_path, broker)
    commands = None
    try:
        commands = DaemonCommands(broker.host, broker.port, PREFIX)
        wait_for(lambda: _answers(commands), 60, "the daemon to answer a ping")
        for _ in range(3):  # settle: the first requests allocate what every request needs
            assert commands("ping")["pong"] is True
        process = psutil.Process(daemon.pid)
        _peak_rss_reset(daemon.pid)
        before = process.memory_info().rss
        big = f"{PREFIX}/replies/big"
        _publish(broker, f"{PREFIX}/cmd/ping", b"{" + b" " * (10 * 1024 * 1024) + b"}", response_topic=big, correlation=b"big")
        assert commands("ping")["pong"] is True  # a normal ping after it still answers (and marks the end of the big one)
        peak, after = _peak_rss(daemon.pid), process.memory_info().rss
        listener.sync()
        assert not listener.on(big), "the 10 MB ping was answered"
        assert not [m for m in listener.on(f"{PREFIX}/cmd/ping/reply") if b"max_payload_bytes" in m.payload]
        assert peak - before < 5 * 1024 * 1024, f"peak RSS grew by {(peak - before) / 1e6:.1f} MB"
        assert after - before < 5 * 1024 * 1024, f"RSS grew by {(after - before) / 1e6:.1f} MB"
    finally:
        if commands is not None:
            commands.close()
        daemon.stop()
        listener.close()


def _answers(commands: DaemonCommands) -> bool:
    try:
        return bool(commands("ping", timeout=2)["pong"])
    except AssertionError:
        return False


class SlowLink:
    """A TCP relay between the daemon and the broker that carries at most `rate` bytes a second from the
    daemon to the broker (the other way at full speed): a Pi on a poor classroom Wi-Fi, where what the
    daemon publishes waits in its QoS 1 queue until the broker acknowledges it."""

    def __init__(self, broker: Broker, rate: int) -> None:
        self._broker, self._rate = broker, rate
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection((self._broker.host, self._broker.port))
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, self._rate), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, 0), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket, rate: int) -> None:
        try:
            while data := source.recv(1024 if rate else 65536):
                if rate:
                    time.sleep(len(data) / rate)
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._server.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()


def test_a_snapshot_flood_over_a_poor_link_drops_no_event_and_leaks_no_image(tmp_path: Path, broker: Broker) -> None:
    # planted bugs: command replies at normal priority -> with the link backed up the replies fill the queue and
    # events are refused (events_dropped_total > 0); the image in the broadcast reply -> jpeg_base64 on
    # cmd/snapshot/reply; no rate limit -> hundreds of images
    link = SlowLink(broker, rate=12 * 1024)
    health_port = free_port()
    bundle = make_color_bundle(tmp_path / "colors")
    video = write_color_video(tmp_path / "colors.avi", ["red", "green"], seconds_each=0.2, fps=10, size=(320, 240))
    pipeline = camera_pipeline("cam", bundle, str(video), source={"uri": str(video), "loop": True})
    config = write_config(tmp_path / "edge.yaml", broker.host, link.port, [pipeline], health_port=health_port,
                          mqtt={"queue_limit": 400, "snapshot": {"max_side": 160}})
    listener = Listener(broker.host, broker.port)
    daemon = DaemonProcess(config)
    flood = f"{PREFIX}/replies/flood"
    requester = _client(broker)
    commands = None
    try:
        listener.wait_topic(f"{PREFIX}/cam/event", timeout=60)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = flood
        started = time.monotonic()
        for i in range(500):  # 500 requests in 1 s, QoS 0 as mosquitto_pub sends them: no flow control slows them
            requester.publish(f"{PREFIX}/cmd/snapshot", json.dumps({"pipeline": "cam", "id": i}), qos=0, properties=props)
            time.sleep(max(0.0, started + (i + 1) / 500 - time.monotonic()))
        flood_ended = time.time()
        # the pipeline's events still arrive: three label changes (one a second) published after the flood
        listener.wait_for(lambda m: m.topic == f"{PREFIX}/cam/event" and m.json()["ts"] > flood_ended, 60, count=3,
                          what="events after the flood")
        wait_for(lambda: metric_value(health_metrics(health_port), "mqtt_queue_pending") == 0, 60, "the queue to drain")
        commands = DaemonCommands(broker.host, broker.port, PREFIX)
        assert commands("ping", timeout=30)["pong"] is True  # published after every reply to the flood
        metrics = health_metrics(health_port)
        assert metric_value(metrics, "events_dropped_total", pipeline="cam") == 0, metrics
        assert (metric_value(metrics, "events_published_total", pipeline="cam") or 0) >= 3
        listener.sync()
        broadcast = listener.on(f"{PREFIX}/cmd/snapshot/reply")
        assert broadcast, "no broadcast reply at all"
        leaks = [m for m in broadcast if b"jpeg_base64" in m.payload or b"\xff\xd8" in m.payload]
        assert not leaks, f"{len(leaks)} broadcast replies carry image bytes"
        private = [m.json() for m in listener.on(flood)]
        images = [reply for reply in private if reply.get("jpeg_base64")]
        refused = [reply for reply in private if "too many snapshots" in reply.get("error", "")]
        assert 1 <= len(images) <= 3 and refused, (len(images), len(refused))
        image = cv2.imdecode(np.frombuffer(base64.b64decode(images[0]["jpeg_base64"]), np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[:2] == (120, 160)  # 320x240 downscaled to mqtt.snapshot.max_side
        assert all("jpeg_base64" not in reply for reply in private if not reply["ok"])
    finally:
        if commands is not None:
            commands.close()
        requester.loop_stop()
        requester.disconnect()
        daemon.stop()
        listener.close()
        link.close()
