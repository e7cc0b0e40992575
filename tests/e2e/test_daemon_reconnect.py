"""A broker that restarts WITHOUT persistence forgets every retained message. The daemon must put back what
a new subscriber relies on once it reconnects: its `online` status (the birth message, even with the
QoS 1 queue filled by the outage), each pipeline's retained state and source status, and the Home
Assistant discovery configs. Real daemon, real Mosquitto restarted on the same port, fresh subscribers.

The "steady" pipeline watches a single-colour video with a one-hour heartbeat: its state is published
once, so after the restart only the re-publishing on reconnect can bring it back. The "busy" pipeline's
label changes every second, and its QoS 1 events fill the queue (queue_limit 3) during the outage."""

from __future__ import annotations

import urllib.error
from pathlib import Path

from tests.support.broker import Broker, free_port
from tests.support.daemon import DaemonProcess, camera_pipeline, health_metrics, metric_value, write_color_video, write_config
from tests.support.mqtt_listener import Listener, Seen, retained
from tests.support.onnx_models import make_color_bundle
from tests.support.waiting import wait_for

PREFIX = "edgeteach/testdev"
HA = "homeassistant/sensor"


def _metric(port: int, name: str, **labels: str) -> float | None:
    try:
        return metric_value(health_metrics(port), name, **labels)
    except (OSError, urllib.error.URLError):
        return None


def _reading(port: int, name: str) -> tuple[float] | None:
    """(value,) once /metrics answers with `name` (a tuple, so that 0.0 counts as an answer for wait_for)."""
    value = _metric(port, name)
    return None if value is None else (value,)


def test_after_a_broker_restart_without_persistence_status_state_and_discovery_are_retained_again(tmp_path: Path) -> None:
    broker = Broker(workdir=tmp_path, port=free_port()).start()  # persistence false (tests/support/broker.py)
    bundle = make_color_bundle(tmp_path / "colors")
    steady_video = write_color_video(tmp_path / "red.avi", ["red"], seconds_each=1.0, fps=10)
    busy_video = write_color_video(tmp_path / "cycle.avi", ["red", "green", "blue"], seconds_each=1.0, fps=10)
    health_port = free_port()
    config = write_config(
        tmp_path / "edge.yaml", broker.host, broker.port,
        [
            camera_pipeline("steady", bundle, str(steady_video), publish={"heartbeat_s": 3600, "max_rate_hz": 5}),
            camera_pipeline("busy", bundle, str(busy_video)),
        ],
        health_port=health_port, mqtt={"queue_limit": 3},
    )
    must_come_back = {
        f"{PREFIX}/status": lambda m: m.payload == b"online",
        f"{PREFIX}/steady/state": lambda m: m.json()["label"] == "red" and m.json()["model_sha256"],
        f"{PREFIX}/steady/status": lambda m: m.json()["state"] == "running",
        f"{HA}/testdev_steady/config": lambda m: m.json()["state_topic"] == f"{PREFIX}/steady/state",
        f"{HA}/testdev_steady_confidence/config": lambda m: m.json()["unit_of_measurement"] == "%",
        f"{HA}/testdev_busy/config": lambda m: m.json()["state_topic"] == f"{PREFIX}/busy/state",
    }
    listener = Listener(broker.host, broker.port, (f"{PREFIX}/#", "homeassistant/#"))
    daemon = DaemonProcess(config)
    try:
        for topic, good in must_come_back.items():
            listener.wait_topic(topic, timeout=30, where=good)
        listener.close()

        # the health server starts after the MQTT connection and the pipelines (its Starlette is imported late),
        # so it may not answer yet: wait for it (0.0 is a reading too)
        overflowed = wait_for(lambda: _reading(health_port, "mqtt_queue_overflow_total"), 20, "the health server to answer")[0]
        broker.stop()
        # the daemon notices, and its QoS 1 queue fills with "busy" events until one is refused
        wait_for(lambda: _metric(health_port, "mqtt_connected") == 0, 15, "the daemon to notice the outage")
        wait_for(lambda: (_metric(health_port, "mqtt_queue_overflow_total") or 0) > overflowed, 20, "the outage to fill the QoS 1 queue")
        assert (_metric(health_port, "mqtt_queue_pending") or 0) >= 3  # full: the birth message needs the reserve

        broker.start()  # same port, nothing retained any more
        wait_for(lambda: _metric(health_port, "mqtt_connected") == 1, 20, lambda: f"the daemon to reconnect\n{daemon.log()[-2000:]}")

        def back(topic: str) -> Seen | None:
            found = retained(broker.host, broker.port, topic)
            return found if found is not None and must_come_back[topic](found) else None

        for topic in must_come_back:
            wait_for(lambda topic=topic: back(topic), 15,
                     lambda topic=topic: f"a new subscriber to get the retained {topic} again\n{daemon.log()[-2000:]}")
        assert daemon.alive()
    finally:
        daemon.stop()
        broker.stop()
