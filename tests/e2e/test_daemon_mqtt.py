"""`edge run` as a real process against a real Mosquitto, read by a separate MQTT client: state, event,
status, stats and discovery messages; commands (incl. MQTT 5 request/response, reload refusals and a
thousand random payloads); a failing camera URL; /healthz and /metrics.

One daemon serves the whole module (starting one costs seconds on a shared 2-core machine); the tests
that stop or kill a daemon start their own (test_daemon_lifecycle.py)."""

from __future__ import annotations

import base64
import json
import random
import re
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support.alsa import AlsaFileMicrophone
from tests.support.broker import Broker, free_port, mosquitto_available
from tests.support.daemon import DaemonProcess, camera_pipeline, microphone_pipeline, wait_until, write_color_video, write_config
from tests.support.mqtt_listener import Listener, retained
from tests.support.onnx_models import make_audio_bundle, make_color_bundle
from tests.support.waiting import wait_for

PREFIX = "edgeteach/testdev"
REPLIES = f"{PREFIX}/replies/test"  # under the default mqtt.reply_prefix
STATE_FIELDS = {"label", "confidence", "scores", "ts", "seq", "model", "model_sha256", "latency_ms"}


class Setup:
    def __init__(self, root: Path, broker: Broker, daemon: DaemonProcess, listener: Listener, health_port: int, bundle: Path) -> None:
        self.root = root
        self.broker = broker
        self.daemon = daemon
        self.listener = listener
        self.health_port = health_port
        self.bundle = bundle
        self._requester: mqtt.Client | None = None
        self._lock = threading.Lock()

    def command(self, name: str, payload: Any, timeout: float = 10.0) -> dict[str, Any]:
        """Sends an MQTT 5 request with a response topic and correlation data; returns the JSON reply."""
        corr = f"{name}-{time.monotonic_ns()}".encode()
        if self._requester is None:
            self._requester = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
            self._requester.connect(self.broker.host, self.broker.port)
            self._requester.loop_start()
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = REPLIES
        props.CorrelationData = corr
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self._requester.publish(f"{PREFIX}/cmd/{name}", body, qos=1, properties=props)
        found = self.listener.wait_for(lambda m: m.topic == REPLIES and m.correlation_data == corr, timeout, what=f"reply to {name}")
        return found[0].json()

    def close(self) -> None:
        if self._requester is not None:
            self._requester.loop_stop()
            self._requester.disconnect()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    if not mosquitto_available():
        pytest.fail("mosquitto is not installed: run scripts/setup.sh")
    root = tmp_path_factory.mktemp("daemon")
    broker = Broker(workdir=root, port=free_port()).start()
    bundle = make_color_bundle(root / "colors")
    video = write_color_video(root / "colors.avi", ["red", "green", "blue"], seconds_each=1.0, fps=10)
    short = write_color_video(root / "short.avi", ["green"], seconds_each=0.5, fps=10)
    flicker = write_color_video(root / "flicker.avi", ["red", "blue"] * 5, seconds_each=0.1, fps=10)  # a new colour every frame
    audio_bundle = make_audio_bundle(root / "loudness")
    # A real microphone through sounddevice/PortAudio: ALSA's file plugin fed with quiet/loud seconds.
    mic = AlsaFileMicrophone(root, rate=16000).start()
    t = np.arange(16000) / 16000
    mic.loop(np.concatenate([0.001 * np.sin(2 * np.pi * 50 * t), 0.5 * np.sin(2 * np.pi * 440 * t)]).astype(np.float32))
    mic_cfg = microphone_pipeline("mic", audio_bundle, root / "unused.wav")
    mic_cfg["source"] = {"device": "default"}
    health_port = free_port()
    pipelines = [
        camera_pipeline("cam", bundle, str(video)),
        camera_pipeline("broken", bundle, "rtsp://127.0.0.1:9/no-camera-here"),  # port 9: connection refused at once
        camera_pipeline("once", bundle, str(short), source={"uri": str(short), "loop": False, "realtime": True, "backoff_initial_s": 0.5,
                                                            "backoff_max_s": 1}),
        mic_cfg,
        camera_pipeline("nobundle", root / "not-trained-yet", str(video)),  # fails at start; the rest runs
        # the label changes 10 times a second, 5 times the state rate allowed: the limiter must bite
        camera_pipeline("flicker", bundle, str(flicker), publish={"heartbeat_s": 30, "max_rate_hz": 2}),
    ]
    config = write_config(root / "edge.yaml", broker.host, broker.port, pipelines, health_port=health_port)
    listener = Listener(broker.host, broker.port)  # subscribed before the daemon starts: sees everything
    daemon = DaemonProcess(config, env=mic.env())
    s = Setup(root, broker, daemon, listener, health_port, bundle)
    try:
        listener.wait_topic(f"{PREFIX}/cam/state", timeout=30)
        # the health server starts beside the pipelines, not before them: wait for it too
        wait_for(lambda: _answers(f"http://127.0.0.1:{health_port}/healthz"), 30, "the health server never answered")
        yield s
    finally:
        if not hasattr(s, "passed"):
            print(daemon.log()[-4000:])
        s.close()
        daemon.stop()
        mic.stop()
        listener.close()
        broker.stop()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True   # it answered, with an error status: the server is up
    except OSError:
        return False


def _json_on(s: Setup, topic: str, **kw: Any) -> list[Any]:
    return [m.json() for m in s.listener.wait_topic(topic, **kw)]


def test_status_state_and_event_messages(setup: Setup) -> None:
    s = setup
    status = s.listener.wait_topic(f"{PREFIX}/status", where=lambda m: m.payload == b"online")[0]
    assert status.retain or retained(s.broker.host, s.broker.port, f"{PREFIX}/status").payload == b"online"  # type: ignore[union-attr]
    # The video cycles red -> green -> blue each second: the decided label changes, events follow.
    events = s.listener.wait_topic(f"{PREFIX}/cam/event", timeout=15, count=3)
    labels = [e.json()["label"] for e in events]
    assert set(labels) <= {"red", "green", "blue"} and len(set(labels)) >= 2
    for event in events:
        assert not event.retain and event.qos == 1
        data = event.json()
        assert set(data) >= STATE_FIELDS, data
        assert "previous" in data and data["previous"] != data["label"]
    second = events[1].json()
    assert second["previous"] == events[0].json()["label"]
    state = s.listener.wait_topic(f"{PREFIX}/cam/state")[-1].json()
    assert set(state) >= STATE_FIELDS
    assert set(state["scores"]) == {"red", "green", "blue"}
    assert abs(sum(state["scores"].values()) - 1.0) < 1e-3
    assert state["confidence"] == max(state["scores"].values())
    assert len(state["model_sha256"]) == 64
    assert isinstance(state["seq"], int) and state["ts"] > time.time() - 60
    kept = retained(s.broker.host, s.broker.port, f"{PREFIX}/cam/state")
    assert kept is not None and set(kept.json()) >= STATE_FIELDS
    assert retained(s.broker.host, s.broker.port, f"{PREFIX}/cam/event") is None


def test_microphone_through_sounddevice_publishes_loudness_states(setup: Setup) -> None:
    s = setup
    events = s.listener.wait_topic(f"{PREFIX}/mic/event", timeout=15, count=2)
    assert {e.json()["label"] for e in events} <= {"quiet", "loud"}
    assert len({e.json()["label"] for e in events}) == 2
    state = s.listener.wait_topic(f"{PREFIX}/mic/state")[-1].json()
    assert set(state["scores"]) == {"quiet", "loud"}


def _stats_window(s: Setup, seconds: float) -> tuple[dict[str, Any], dict[str, Any], float]:
    """Two stats messages `seconds` apart (or more) and the time between them on the daemon's own clock
    (uptime_s is monotonic), so broker and network delays cannot blur counts taken from them."""
    topic = f"{PREFIX}/stats"
    first = s.listener.wait_topic(topic)[-1].json()
    last = s.listener.wait_topic(topic, timeout=seconds + 10, where=lambda m: m.json()["uptime_s"] >= first["uptime_s"] + seconds)[0].json()
    return first, last, last["uptime_s"] - first["uptime_s"]


def test_state_rate_never_exceeds_max_rate_hz_while_the_label_changes_on_every_frame(setup: Setup) -> None:
    s = setup
    first, last, span = _stats_window(s, 4.0)
    delta = {key: last["pipelines"]["flicker"][key] - first["pipelines"]["flicker"][key] for key in ("states_published", "events_published",
                                                                                                     "frames_classified")}
    states, changes = delta["states_published"], delta["events_published"]
    # "flicker" changes its label on (nearly) every frame: far more often than its 2 states a second ...
    assert changes > 2 * 2 * span, (delta, span)
    # ... and the limiter holds the states to 2 a second (spaced >= 0.5 s on the daemon's clock; +2 for the
    # 0.1 s rounding of uptime_s and the window's edges) ...
    assert states <= 2 * span + 2, (delta, span)
    # ... while a change held back is flushed as soon as the limit allows: the rate is reached, not avoided
    assert states >= min(changes, 2 * span) / 2 - 1, (delta, span)
    seqs = [m.json()["seq"] for m in s.listener.on(f"{PREFIX}/flicker/state")]
    assert seqs == sorted(seqs) and seqs[-1] - seqs[0] > 2 * (len(seqs) - 1), "every classification was published"
    # "cam" (one change a second, heartbeat 2 s) publishes only on changes and heartbeats, not per frame
    cam = {key: last["pipelines"]["cam"][key] - first["pipelines"]["cam"][key] for key in ("states_published", "events_published",
                                                                                           "frames_classified")}
    assert cam["states_published"] <= cam["events_published"] + span / 2 + 2, (cam, span)
    assert cam["frames_classified"] >= 3 * cam["states_published"], (cam, span)


def test_stats_message_fields(setup: Setup) -> None:
    s = setup
    stats = s.listener.wait_topic(f"{PREFIX}/stats", count=2)[-1].json()
    cam = stats["pipelines"]["cam"]
    for key in ("frames_in", "frames_classified", "frames_dropped", "fps", "latency_p50_ms", "latency_p95_ms", "queue_size",
                "source_state"):
        assert key in cam, (key, cam)
    assert cam["frames_classified"] > 0 and cam["source_state"] == "running"
    assert stats["pipelines"]["broken"]["source_state"] != "running"
    assert stats["mqtt"]["connected"] is True and "overflowed" in stats["mqtt"]
    process = stats["process"]
    assert process["rss_bytes"] > 10_000_000 and "cpu_percent" in process and "soc_temperature_c" in process


def test_failing_camera_url_restarts_with_backoff_while_others_carry_on(setup: Setup) -> None:
    s = setup
    topic = f"{PREFIX}/broken/status"

    def restarts() -> tuple[dict[int, tuple[float, float]], dict[int, float]]:
        """restart n -> (announced wait, when announced) and restart n -> when it started, from the payloads'
        own timestamps (a reconnect may re-publish the latest status: the first copy counts)."""
        announced: dict[int, tuple[float, float]] = {}
        started: dict[int, float] = {}
        for m in s.listener.on(topic):
            data = m.json()
            if data["state"] == "restarting" and (found := re.fullmatch(r"in ([\d.]+) s \(restart (\d+)\)", data["detail"])):
                announced.setdefault(int(found[2]), (float(found[1]), data["ts"]))
            elif data["state"] == "starting" and (found := re.fullmatch(r"restart (\d+)", data["detail"])):
                started.setdefault(int(found[1]), data["ts"])
        return announced, started

    wait_for(lambda: {1, 2, 3, 4} <= set(restarts()[1]), 20, lambda: f"four restarts of the broken camera: {restarts()}")
    announced, started = restarts()
    # backoff_initial_s 0.5 doubles up to backoff_max_s 2 and stays there ...
    assert [announced[n][0] for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 2.0], announced
    # ... and the supervisor really waits that long before each new attempt
    for n in (1, 2, 3, 4):
        assert started[n] - announced[n][1] >= announced[n][0] - 0.01, (n, announced[n], started[n])
    failed = [m.json() for m in s.listener.on(topic) if m.json()["state"] == "failed"]
    assert failed and "rtsp://127.0.0.1:9" in failed[0]["detail"]
    # meanwhile the healthy camera keeps classifying and publishing
    before = len(s.listener.on(f"{PREFIX}/cam/event"))
    s.listener.wait_topic(f"{PREFIX}/cam/event", count=before + 2, timeout=10)
    kept = retained(s.broker.host, s.broker.port, topic)
    assert kept is not None and kept.json()["state"] in {"failed", "restarting", "starting"}


def test_a_pipeline_whose_bundle_is_missing_reports_failed_and_the_others_run(setup: Setup) -> None:
    s = setup
    status = s.listener.wait_topic(f"{PREFIX}/nobundle/status", where=lambda m: m.json()["state"] == "failed")[0].json()
    assert "no such bundle folder" in status["detail"] and "trainer train" in status["detail"]
    with urllib.request.urlopen(f"http://127.0.0.1:{s.health_port}/healthz", timeout=5) as response:
        body = json.loads(response.read())
    assert "nobundle" in body["failed_pipelines"] and body["pipelines"]["cam"] == "running"


def test_a_video_that_ends_is_restarted_and_says_so(setup: Setup) -> None:
    s = setup
    topic = f"{PREFIX}/once/status"
    s.listener.wait_topic(topic, count=2, timeout=20, where=lambda m: m.json()["state"] == "ended")
    states = [m.json()["state"] for m in s.listener.on(topic)]
    first_end = states.index("ended")
    assert "restarting" in states[first_end:] and "running" in states[first_end:]
    assert s.listener.wait_topic(f"{PREFIX}/once/state")  # it classified before it ended


def test_home_assistant_discovery(setup: Setup) -> None:
    s = setup
    topic = "homeassistant/sensor/testdev_cam/config"
    s.listener.wait_topic(topic)
    config = retained(s.broker.host, s.broker.port, topic)  # what Home Assistant gets when it subscribes
    assert config is not None
    data = config.json()
    assert data["state_topic"] == f"{PREFIX}/cam/state"
    assert data["availability_topic"] == f"{PREFIX}/status"
    assert data["value_template"] == "{{ value_json.label }}"
    assert data["device"]["identifiers"] == ["edgeteach_testdev"]
    confidence = s.listener.wait_topic("homeassistant/sensor/testdev_cam_confidence/config")[0].json()
    assert confidence["unit_of_measurement"] == "%"
    mic = s.listener.wait_topic("homeassistant/sensor/testdev_mic/config")[0].json()
    assert mic["icon"] == "mdi:microphone"
    # Home Assistant restarting announces itself: the configs go out again
    count = len(s.listener.on(topic))
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2)
    publisher.connect(s.broker.host, s.broker.port)
    publisher.loop_start()
    publisher.publish("homeassistant/status", b"online", qos=1).wait_for_publish(5)
    publisher.loop_stop()
    publisher.disconnect()
    s.listener.wait_topic(topic, count=count + 1, timeout=10)


def test_healthz_and_prometheus_metrics(setup: Setup) -> None:
    s = setup
    with urllib.request.urlopen(f"http://127.0.0.1:{s.health_port}/healthz", timeout=5) as response:
        assert response.status == 200
        body = json.loads(response.read())
    assert body["status"] == "ok" and body["mqtt_connected"] is True
    with urllib.request.urlopen(f"http://127.0.0.1:{s.health_port}/metrics", timeout=5) as response:
        assert "text/plain" in response.headers["Content-Type"]
        text = response.read().decode()
    assert "# TYPE edgeteach_frames_classified_total counter" in text
    assert 'edgeteach_frames_classified_total{pipeline="cam"}' in text
    assert "edgeteach_mqtt_connected 1" in text
    assert "edgeteach_mqtt_queue_overflow_total 0" in text
    assert 'edgeteach_source_up{pipeline="broken"} 0' in text
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{s.health_port}/nope", timeout=5)
    assert err.value.code == 404


def test_ping_status_set_pause_resume_and_snapshot_commands(setup: Setup) -> None:
    s = setup
    pong = s.command("ping", {"id": 7})
    assert pong["ok"] is True and pong["pong"] is True and pong["id"] == 7 and pong["command"] == "ping"
    status = s.command("status", {})
    assert status["ok"] and set(status["pipelines"]) == {"cam", "broken", "once", "mic", "nobundle", "flicker"}
    assert "no such bundle folder" in status["failed_pipelines"]["nobundle"]
    # the plain reply topic gets the same answers
    assert s.listener.wait_topic(f"{PREFIX}/cmd/ping/reply")[0].json()["pong"] is True

    bad = s.command("set", {"pipeline": "cam", "threshold": 7})
    assert not bad["ok"] and "threshold" in bad["error"]
    good = s.command("set", {"pipeline": "cam", "threshold": 0.55})
    assert good["ok"] and good["settings"]["threshold"] == 0.55
    assert not s.command("set", {"threshold": 0.5})["ok"]  # several pipelines: which one?

    cam = lambda: s.command("status", {})["pipelines"]["cam"]  # noqa: E731
    skipped = cam()["frames_skipped_paused"]
    paused = s.command("pause", {"pipeline": "cam"})
    assert paused["ok"] and paused["pipelines"] == ["cam"]
    # Once cam has skipped a frame its inference thread has seen the pause, and the frame it was
    # classifying before (if any) is counted; ten more skipped frames are the marker after which
    # "nothing more was classified" means something.
    first = wait_for(lambda: (c := cam())["frames_skipped_paused"] > skipped and c, 10, "a frame skipped while paused")
    after = wait_for(lambda: (c := cam())["frames_skipped_paused"] >= first["frames_skipped_paused"] + 10 and c, 10,
                     "ten more frames skipped while paused")
    frames = first["frames_classified"]
    assert after["paused"] is True and after["frames_classified"] == frames
    assert s.listener.wait_topic(f"{PREFIX}/cam/status", where=lambda m: m.json().get("paused") is True)
    assert s.command("resume", {"pipeline": "cam"})["ok"]
    wait_until(lambda: s.command("status", {})["pipelines"]["cam"]["frames_classified"] > frames, 10, "classification to resume")

    snap = s.command("snapshot", {"pipeline": "cam"})
    assert snap["ok"] and snap["content_type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(base64.b64decode(snap["jpeg_base64"]), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[:2] == (48, 64)
    # "raw": the JPEG bytes are the reply itself, on the requester's topic only (here an MQTT 3.1.1-style
    # "reply_to"); the broadcast reply says a snapshot was taken. At most one snapshot a second per device.
    time.sleep(1.2)
    assert s._requester is not None
    s._requester.publish(f"{PREFIX}/cmd/snapshot", json.dumps({"pipeline": "cam", "raw": True, "reply_to": f"{PREFIX}/replies/raw"}), qos=1)
    jpeg = s.listener.wait_topic(f"{PREFIX}/replies/raw")[0].payload
    raw = s.listener.wait_topic(f"{PREFIX}/cmd/snapshot/reply", where=lambda m: m.json().get("raw") is True)[0].json()
    assert raw["ok"] and jpeg[:2] == b"\xff\xd8" and len(jpeg) == raw["bytes"]
    assert "microphone" in s.command("snapshot", {"pipeline": "mic"})["error"]


def test_malformed_unknown_and_oversized_commands_get_error_replies(setup: Setup) -> None:
    s = setup
    assert "not valid JSON" in s.command("ping", b"{nope")["error"]
    assert "JSON object" in s.command("ping", b"[1,2]")["error"]
    assert "unknown command 'explode'" in s.command("explode", {})["error"]
    assert "max_payload_bytes" in s.command("status", b'{"x":"' + b"a" * 70000 + b'"}')["error"]
    assert "no pipeline named 'ghost'" in s.command("pause", {"pipeline": "ghost"})["error"]
    assert "must be a string" in s.command("pause", {"pipeline": 5})["error"]
    assert "does not take" in s.command("ping", {"extra": 1})["error"]


def test_reload_with_corrupt_or_mismatched_bundle_is_refused_and_old_model_keeps_publishing(setup: Setup) -> None:
    s = setup
    old_sha = s.listener.wait_topic(f"{PREFIX}/cam/state")[-1].json()["model_sha256"]

    corrupt = s.root / "corrupt"
    shutil.copytree(s.bundle, corrupt)
    with open(corrupt / "model.onnx", "ab") as handle:
        handle.write(b"garbage")
    reply = s.command("reload", {"pipeline": "cam", "bundle": str(corrupt)})
    assert not reply["ok"] and "SHA-256" in reply["error"] and "old model keeps running" in reply["error"]

    audio = make_audio_bundle(s.root / "audio-for-camera")
    reply = s.command("reload", {"pipeline": "cam", "bundle": str(audio)})
    assert not reply["ok"] and "audio" in reply["error"]

    assert "no such bundle" in s.command("reload", {"pipeline": "cam", "bundle": str(s.root / "missing")})["error"]
    assert "needs \"bundle\"" in s.command("reload", {"pipeline": "cam"})["error"]

    # the old model is still the one publishing
    n = len(s.listener.on(f"{PREFIX}/cam/state"))
    later = s.listener.wait_topic(f"{PREFIX}/cam/state", count=n + 2, timeout=10)[-1].json()
    assert later["model_sha256"] == old_sha

    # a good bundle is accepted and swapped in
    two = make_color_bundle(s.root / "red-green", labels=("red", "green"))
    reply = s.command("reload", {"pipeline": "cam", "bundle": str(two)})
    assert reply["ok"], reply
    new = s.listener.wait_topic(f"{PREFIX}/cam/state", timeout=10, where=lambda m: set(m.json()["scores"]) == {"red", "green"})[-1].json()
    assert new["model_sha256"] != old_sha


def _random_payload(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
    if kind == 1:
        return rng.choice([b"", b"null", b"42", b'"text"', b"[]", b"{", b"}", b'{"a":', b"\xff\xfe", b"[" * 5000 + b"]" * 5000])
    keys = ["pipeline", "threshold", "smoothing", "min_hold_s", "bundle", "raw", "id", "unknown_label", "x", ""]
    values: list[Any] = [None, True, -1, 0, 0.5, 1e308, "cam", "mic", "broken", "ghost", "", [], {}, {"method": "n_of_m", "n": 5, "m": 2},
                         {"method": "bogus"}, "/nonexistent/bundle", "x" * 300, [1, [2, [3]]], -0.0, 2**70]
    obj = {rng.choice(keys): rng.choice(values) for _ in range(rng.randrange(0, 5))}
    return json.dumps(obj).encode()


def test_a_thousand_random_command_payloads_leave_the_daemon_running(setup: Setup) -> None:
    s = setup
    rng = random.Random(1234)
    names = ["ping", "status", "set", "pause", "resume", "reload", "snapshot", "bogus", "SET", "reply"]
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect(s.broker.host, s.broker.port)
    client.loop_start()
    is_reply = lambda m: m.topic.startswith(f"{PREFIX}/cmd/") and m.topic.count("/") == PREFIX.count("/") + 3 and m.topic.endswith("/reply")  # noqa: E731
    reply_count = lambda: len([m for m in list(s.listener.messages) if is_reply(m)])  # noqa: E731
    start = reply_count()
    sent = 0
    try:
        for _batch in range(20):  # paced in batches so the bounded handler queue is never the limit
            for _ in range(50):
                client.publish(f"{PREFIX}/cmd/{rng.choice(names)}", _random_payload(rng), qos=1)
                sent += 1
            wait_until(lambda sent=sent: reply_count() - start >= sent, 30, f"replies to {sent} commands")
    finally:
        client.loop_stop()
        client.disconnect()
    assert s.daemon.alive(), s.daemon.log()[-3000:]
    assert reply_count() - start == 1000  # one reply each, none lost, none duplicated
    # undo whatever the random commands changed, then check the daemon still works normally
    assert s.command("resume", {})["ok"]
    assert s.command("set", {"pipeline": "cam", "threshold": 0.5, "smoothing": {"method": "none"}, "min_hold_s": 0})["ok"]
    assert s.command("ping", {})["pong"] is True
    n = len(s.listener.on(f"{PREFIX}/cam/state"))
    s.listener.wait_topic(f"{PREFIX}/cam/state", count=n + 1, timeout=10)
    replies = [m.json() for m in list(s.listener.messages) if is_reply(m)]
    internal = [r for r in replies if "internal error" in r.get("error", "")]
    assert not internal, internal[:5]  # every bad request is recognised as such, none trips a bug
    setup.passed = True  # type: ignore[attr-defined]
