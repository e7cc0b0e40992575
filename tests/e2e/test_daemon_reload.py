"""SIGHUP with pipelines removed or changed, against a real daemon, a real Mosquitto and a separate MQTT
subscriber: a removed pipeline is stopped and leaves nothing behind (no retained state or source status,
no Home Assistant sensor); a changed one runs with its new settings; a bad new bundle keeps the old
pipeline running and publishing.

"Nothing more from the removed pipeline" is checked after a positive marker from the daemon itself: the
reply to a `status` command sent after several label changes of the pipeline that stayed (both pipelines
play the same video, so a removed pipeline still running would have changed its label too)."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import Broker
from tests.support.daemon import DaemonCommands, DaemonProcess, camera_pipeline, write_color_video, write_config
from tests.support.mqtt_listener import Listener, Seen, retained
from tests.support.onnx_models import make_color_bundle
from tests.support.waiting import wait_for

PREFIX = "edgeteach/testdev"
HA = "homeassistant/sensor"


@pytest.fixture()
def video(tmp_path: Path) -> Path:
    return write_color_video(tmp_path / "colors.avi", ["red", "green", "blue"], seconds_each=1.0, fps=10)


@pytest.fixture()
def listener(broker: Broker) -> Iterator[Listener]:
    listener = Listener(broker.host, broker.port)  # subscribed before the daemon starts: sees everything
    yield listener
    listener.close()


def _since(listener: Listener, mark: int, topic: str) -> list[tuple[int, Seen]]:
    """(index, message) on `topic` among the messages the listener got after its first `mark` ones."""
    messages = list(listener.messages)
    return [(i, m) for i, m in enumerate(messages) if i >= mark and m.topic == topic]


def test_sighup_stops_a_removed_pipeline_clears_its_retained_topics_and_restarts_a_changed_one(
        tmp_path: Path, broker: Broker, video: Path, listener: Listener) -> None:
    colors = make_color_bundle(tmp_path / "colors")
    red_green = make_color_bundle(tmp_path / "red-green", labels=("red", "green"))
    config = write_config(tmp_path / "edge.yaml", broker.host, broker.port,
                          [camera_pipeline("cam", colors, str(video)), camera_pipeline("gone", colors, str(video))])
    daemon = DaemonProcess(config)
    commands = DaemonCommands(broker.host, broker.port, PREFIX)
    gone_topics = [f"{PREFIX}/gone/state", f"{PREFIX}/gone/status", f"{HA}/testdev_gone/config", f"{HA}/testdev_gone_confidence/config"]
    try:
        for topic in [*gone_topics, f"{PREFIX}/gone/event", f"{PREFIX}/cam/state", f"{HA}/testdev_cam/config"]:
            listener.wait_topic(topic, timeout=30, where=lambda m: m.payload != b"")
        old_sha = listener.wait_topic(f"{PREFIX}/cam/state")[-1].json()["model_sha256"]

        # "gone" is deleted from the file and "cam" gets a new bundle (other labels)
        write_config(config, broker.host, broker.port, [camera_pipeline("cam", red_green, str(video))])
        mark = len(listener.messages)
        daemon.signal(signal.SIGHUP)

        # every retained topic of the removed pipeline is cleared with an empty retained payload
        cleared: dict[str, int] = {}  # topic -> index of its clearing message
        for topic in gone_topics:
            found = wait_for(lambda topic=topic: [i for i, m in _since(listener, mark, topic) if m.payload == b""], 15,
                             f"an empty retained payload on {topic}")
            cleared[topic] = found[0]

        # the changed pipeline runs its new bundle
        new = listener.wait_topic(f"{PREFIX}/cam/state", timeout=15, where=lambda m: set(m.json()["scores"]) == {"red", "green"})[-1].json()
        assert new["model_sha256"] != old_sha and new["model"] == str(red_green)

        # Marker: three more label changes of "cam" (two colour switches, >= 1 s of the same video the
        # removed pipeline played), then a command reply, published by the daemon after anything else.
        events_before = len(listener.on(f"{PREFIX}/cam/event"))
        listener.wait_topic(f"{PREFIX}/cam/event", timeout=15, count=events_before + 3)
        status = commands("status")
        assert status["ok"] and set(status["pipelines"]) == {"cam"}, status  # "gone" is no longer running
        assert status["failed_pipelines"] == {} and status["pipelines"]["cam"]["model"] == str(red_green)
        for topic in [*gone_topics, f"{PREFIX}/gone/event"]:
            after = [m.text[:80] for _, m in _since(listener, cleared.get(topic, mark) + 1, topic)]
            assert after == [], f"{topic} got messages after the reload cleared it: {after}"
        later = len(listener.messages)
        stats = wait_for(lambda: _since(listener, later, f"{PREFIX}/stats"), 10, "a stats message after the reload")[0][1].json()
        assert set(stats["pipelines"]) == {"cam"}

        # what a new subscriber (Home Assistant after a restart, a dashboard) sees: no ghost of "gone"
        for topic in gone_topics:
            assert retained(broker.host, broker.port, topic) is None, topic
        kept = retained(broker.host, broker.port, f"{HA}/testdev_cam/config")
        assert kept is not None and kept.json()["state_topic"] == f"{PREFIX}/cam/state"
        state = retained(broker.host, broker.port, f"{PREFIX}/cam/state")
        assert state is not None and set(state.json()["scores"]) == {"red", "green"}
        assert daemon.alive() and "config reloaded" in daemon.log()
    finally:
        commands.close()
        daemon.stop()


def test_sighup_with_a_bad_new_bundle_keeps_the_old_pipeline_running_and_publishing(
        tmp_path: Path, broker: Broker, video: Path, listener: Listener) -> None:
    colors = make_color_bundle(tmp_path / "colors")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(colors, corrupt)
    with open(corrupt / "model.onnx", "ab") as handle:
        handle.write(b"garbage")  # the manifest's SHA-256 no longer matches
    config = write_config(tmp_path / "edge.yaml", broker.host, broker.port, [camera_pipeline("cam", colors, str(video))])
    daemon = DaemonProcess(config)
    commands = DaemonCommands(broker.host, broker.port, PREFIX)
    try:
        old_sha = listener.wait_topic(f"{PREFIX}/cam/state", timeout=30)[-1].json()["model_sha256"]
        write_config(config, broker.host, broker.port, [camera_pipeline("cam", corrupt, str(video))])
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: "keeps its old settings" in daemon.log(), 15, lambda: f"the refused bundle in the log:\n{daemon.log()[-2000:]}")
        assert "SHA-256" in daemon.log()
        refused_at = time.time()

        # the old pipeline still classifies and publishes, with the old model and the old settings
        events = listener.wait_topic(f"{PREFIX}/cam/event", timeout=15, count=2, where=lambda m: m.at > refused_at)
        assert {e.json()["model_sha256"] for e in events} == {old_sha}
        state = listener.wait_topic(f"{PREFIX}/cam/state", timeout=15, where=lambda m: m.at > refused_at)[-1].json()
        assert state["model_sha256"] == old_sha and state["model"] == str(colors)
        status = commands("status")
        assert set(status["pipelines"]) == {"cam"} and status["failed_pipelines"] == {}
        assert status["pipelines"]["cam"]["model"] == str(colors) and status["pipelines"]["cam"]["source_state"] == "running"
        assert daemon.alive()
    finally:
        commands.close()
        daemon.stop()
