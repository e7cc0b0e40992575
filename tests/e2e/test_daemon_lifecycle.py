"""`edge run` as a real process through the bad moments: a broker outage, SIGTERM, SIGHUP with a good and
a bad config, kill -9 (Last Will), and systemd's notify socket with the watchdog and a hung main loop.

The outage lasts until the daemon's own /metrics (its HTTP server works without the broker) show a QoS 1
event refused for the full queue and 50 more frames classified (about 6 s), not 30 s: mosquitto stopping
closes the TCP connection, so the daemon sees the outage at once whatever its length, and the test config
caps the reconnect backoff at 1 s. What a longer outage would add is only more queued events, which
`queue_limit` bounds the same way."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.broker import Broker, free_port
from tests.support.daemon import DaemonProcess, camera_pipeline, health_metrics, metric_value, wait_until, write_color_video, write_config
from tests.support.mqtt_listener import Listener, persistent_broker_config, retained
from tests.support.notify import NotifySocket
from tests.support.onnx_models import make_color_bundle
from tests.support.waiting import wait_for

PREFIX = "edgeteach/testdev"


@pytest.fixture()
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    bundle = make_color_bundle(tmp_path / "colors")
    video = write_color_video(tmp_path / "colors.avi", ["red", "green", "blue"], seconds_each=1.0, fps=10)
    return bundle, video


def _metric(port: int, name: str, **labels: str) -> float:
    value = metric_value(health_metrics(port), name, **labels)
    assert value is not None, f"no {name} {labels} in /metrics"
    return value


def test_broker_outage_daemon_keeps_classifying_and_queued_events_arrive_after(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    bundle, video = inputs
    store = tmp_path / "store"
    store.mkdir()
    store.chmod(0o777)
    broker = Broker(workdir=tmp_path, port=free_port(), extra_config=persistent_broker_config(str(store))).start()
    queue_limit = 5
    health_port = free_port()
    config = write_config(tmp_path / "edge.yaml", broker.host, broker.port, [camera_pipeline("cam", bundle, str(video))],
                          health_port=health_port, mqtt={"queue_limit": queue_limit})
    # A persistent session: the broker keeps what arrives for this listener while it is reconnecting.
    listener = Listener(broker.host, broker.port, (f"{PREFIX}/#",), client_id="outage-listener", persistent=True)
    daemon = DaemonProcess(config)
    try:
        listener.wait_topic(f"{PREFIX}/cam/event", count=2, timeout=30)
        before = listener.wait_topic(f"{PREFIX}/stats")[-1].json()["pipelines"]["cam"]["frames_classified"]
        overflowed = _metric(health_port, "mqtt_queue_overflow_total")
        broker.stop()
        down_at = time.time()
        wait_for(lambda: _metric(health_port, "mqtt_queue_overflow_total") > overflowed
                 and _metric(health_port, "frames_classified_total", pipeline="cam") >= before + 50,
                 30, "a full QoS 1 queue and 50 frames classified during the outage")
        up_at = time.time()
        broker.start()
        # The daemon reconnects by itself and says so (birth message) ...
        listener.wait_topic(f"{PREFIX}/status", timeout=20, where=lambda m: m.payload == b"online" and m.at > up_at)
        # ... the QoS 1 events captured during the outage arrive afterwards, oldest first, up to the bound
        def outage_events() -> list:
            return [m.json() for m in listener.on(f"{PREFIX}/cam/event") if down_at + 0.3 < m.json()["ts"] < up_at - 0.3]

        # Live events are the marker: paho re-sends the queued events on reconnecting, before anything
        # newer, so once two from after the outage are in, every queued one that will ever arrive has.
        listener.wait_topic(f"{PREFIX}/cam/event", timeout=15, count=2, where=lambda m: m.json()["ts"] > up_at + 0.5)
        events = outage_events()
        assert queue_limit - 1 <= len(events) <= queue_limit, [e["ts"] - down_at for e in events]
        seqs = [e["seq"] for e in events]
        assert seqs == sorted(seqs)
        # more label changes happened than the queue holds; the rest were refused and counted, not silently lost
        stats = listener.wait_topic(f"{PREFIX}/stats", timeout=10, where=lambda m: m.at > up_at + 1.5)[-1].json()
        assert stats["mqtt"]["overflowed"] >= 1
        assert stats["mqtt"]["disconnects"] >= 1 and stats["mqtt"]["connected"]
        # classification never stopped: ~10 frames/s through the outage
        assert stats["pipelines"]["cam"]["frames_classified"] - before >= 50
        assert daemon.alive()
    finally:
        daemon.stop()
        listener.close()
        broker.stop()


def test_sighup_reloads_config_keeps_old_on_error_then_sigterm_stops_within_5s(tmp_path: Path, inputs: tuple[Path, Path],
                                                                               broker: Broker) -> None:
    bundle, video = inputs
    config_path = tmp_path / "edge.yaml"
    write_config(config_path, broker.host, broker.port, [camera_pipeline("cam", bundle, str(video))])
    notify = NotifySocket()
    listener = Listener(broker.host, broker.port, (f"{PREFIX}/#",))
    daemon = DaemonProcess(config_path, env={"NOTIFY_SOCKET": str(notify.path)})
    try:
        listener.wait_topic(f"{PREFIX}/cam/state", timeout=30)
        assert notify.wait_for("READY=1", 5)
        # SIGHUP with a second pipeline added: it starts, the first one carries on
        write_config(config_path, broker.host, broker.port, [camera_pipeline("cam", bundle, str(video)), camera_pipeline("cam2", bundle,
                                                                                                                         str(video))])
        daemon.signal(signal.SIGHUP)
        listener.wait_topic(f"{PREFIX}/cam2/state", timeout=15)
        # SIGHUP with a broken file: refused with the reason in the log, both pipelines keep publishing
        config_path.write_text("pipelines:\n  - name: cam\n    kind: camera\n    threshold: 7\n")
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: "config reload refused" in daemon.log(), 10, "the refusal in the log")
        assert "threshold" in daemon.log()
        mark = time.time()
        for name in ("cam", "cam2"):
            listener.wait_topic(f"{PREFIX}/{name}/event", timeout=10, where=lambda m: m.at > mark)
        # SIGTERM: retained offline, exit 0, within 5 s
        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        code = daemon.wait(10)
        took = time.monotonic() - started
        assert code == 0, daemon.log()[-2000:]
        assert took < 5.0, took
        assert notify.wait_for("STOPPING=1", 2)
        kept = retained(broker.host, broker.port, f"{PREFIX}/status")
        assert kept is not None and kept.payload == b"offline"
        assert "stopped in" in daemon.log()
    finally:
        daemon.stop()
        listener.close()
        notify.close()


def test_kill_9_makes_the_broker_publish_the_last_will_offline(tmp_path: Path, inputs: tuple[Path, Path], broker: Broker) -> None:
    bundle, video = inputs
    # MQTT 3.1.1 here, so both protocol versions run in the suite
    config = write_config(tmp_path / "edge.yaml", broker.host, broker.port, [camera_pipeline("cam", bundle, str(video))],
                          mqtt={"protocol": "3.1.1"})
    listener = Listener(broker.host, broker.port, (f"{PREFIX}/status",))
    daemon = DaemonProcess(config)
    try:
        listener.wait_topic(f"{PREFIX}/status", timeout=30, where=lambda m: m.payload == b"online")
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait(5)
        listener.wait_topic(f"{PREFIX}/status", timeout=15, where=lambda m: m.payload == b"offline")
        kept = retained(broker.host, broker.port, f"{PREFIX}/status")
        assert kept is not None and kept.payload == b"offline"
    finally:
        daemon.stop()
        listener.close()


def _healthz(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_sd_notify_ready_and_watchdog_pings_stop_when_the_main_loop_hangs(tmp_path: Path, inputs: tuple[Path, Path],
                                                                          broker: Broker) -> None:
    bundle, video = inputs
    health_port = free_port()
    config = write_config(tmp_path / "edge.yaml", broker.host, broker.port, [camera_pipeline("cam", bundle, str(video))],
                          health_port=health_port)
    notify = NotifySocket()
    env = {
        "NOTIFY_SOCKET": str(notify.path),
        "WATCHDOG_USEC": "600000",  # systemd WatchdogSec=0.6 s -> a ping every 0.3 s
        "EDGETEACH_TEST_HANG_MAIN_LOOP_AFTER_S": "6",  # test hook: the main loop hangs after 6 s
    }
    daemon = DaemonProcess(config, env=env)
    try:
        assert notify.wait_for("READY=1", 30), daemon.log()[-2000:]
        ready_at = next(t for t, m in notify.messages if m == "READY=1")
        with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/healthz", timeout=5) as response:
            assert response.status == 200
        wait_until(lambda: "hangs on purpose" in daemon.log(), 20, "the main loop to hang")
        hung_at = time.monotonic()
        # /healthz turns 503 once the loop has not ticked for 2 s: the positive marker after which pings
        # (every 0.3 s from a working loop) would have been seen by now
        unhealthy = wait_for(lambda: _healthz(health_port)[0] == 503 and _healthz(health_port), 15, "/healthz to report the hung loop")
        assert unhealthy[1]["status"] == "unhealthy" and unhealthy[1]["main_loop_age_s"] >= 2.0
        pings = [t for t, m in list(notify.messages) if m == "WATCHDOG=1"]
        healthy = [t for t in pings if ready_at <= t < hung_at - 0.5]
        assert len(healthy) >= 5, f"{len(healthy)} pings while healthy"
        assert max(b - a for a, b in zip(healthy, healthy[1:])) < 2.0  # 0.3 s expected; slack for a loaded CI box
        assert not [t for t in pings if t > hung_at + 0.5], "the watchdog was pinged by a hung main loop"
    finally:
        if daemon.alive():
            os.kill(daemon.pid, signal.SIGKILL)
            daemon.wait(5)
        daemon.stop()
        notify.close()
