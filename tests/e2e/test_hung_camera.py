"""A camera that hangs without an error (issue 12 item 12), against the real `edge run`, a real Mosquitto and
the real ONNX Runtime: the camera is `picamera2://0` served by the picamera2 stand-in (tests/e2e/standins, the
one piece of hardware the tests cannot have) whose capture blocks while a file exists, as libcamera does when a
sensor stops. /healthz goes 503 naming the source and its last_frame_age_s, the retained source status says
`failed` with "stalled", the main loop keeps ticking; when the camera delivers again health is 200, and the
frames the abandoned reads return late are dropped. A SIGTERM while reads are stuck still stops the daemon."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.broker import Broker, free_port
from tests.support.daemon import DaemonProcess, camera_pipeline, health_metrics, metric_value, write_config
from tests.support.mqtt_listener import Listener
from tests.support.onnx_models import make_color_bundle
from tests.support.waiting import wait_for

PREFIX = "edgeteach/testdev"
STANDINS = Path(__file__).resolve().parent / "standins"
STALL_S = 2.0


def _healthz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
    except urllib.error.URLError:  # not listening yet
        return 0, {}


def test_a_camera_that_blocks_forever_turns_healthz_503_is_restarted_and_recovers(tmp_path: Path, broker: Broker) -> None:
    bundle = make_color_bundle(tmp_path / "colors")
    hang = tmp_path / "hang"
    health_port = free_port()
    pipeline = camera_pipeline("cam", bundle, "picamera2://0")
    pipeline["source"] = {"uri": "picamera2://0", "fps": 10, "stall_timeout_s": STALL_S, "backoff_initial_s": 0.5, "backoff_max_s": 1}
    config = write_config(tmp_path / "edge.yaml", broker.host, broker.port, [pipeline], health_port=health_port)
    listener = Listener(broker.host, broker.port)
    daemon = DaemonProcess(config, env={"PYTHONPATH": str(STANDINS), "PICAMERA2_STANDIN_HANG": str(hang)})
    try:
        def healthy() -> dict[str, Any] | None:
            code, body = _healthz(health_port)
            return body if code == 200 and body["sources"]["cam"]["state"] == "running" else None

        body = wait_for(healthy, 40, lambda: f"a healthy running camera; log:\n{daemon.log()[-3000:]}")
        assert body["sources"]["cam"]["last_frame_age_s"] < STALL_S and body["stale_sources"] == []
        listener.wait_topic(f"{PREFIX}/cam/state", timeout=20, where=lambda m: m.json()["label"] == "red")

        hang.touch()  # the sensor stops: capture_array() blocks, no error
        code, body = wait_for(lambda: (r := _healthz(health_port))[0] == 503 and r, 20,
                              lambda: f"/healthz to turn 503; log:\n{daemon.log()[-3000:]}")
        cam = body["sources"]["cam"]
        assert body["status"] == "unhealthy" and body["stale_sources"] == ["cam"]
        # >=: the age is rounded to 0.01 s, the stall is decided on the exact one (2.004 s shows as 2.0)
        assert cam["last_frame_age_s"] >= STALL_S and cam["stall_timeout_s"] == STALL_S and cam["stalled"] is True
        assert body["main_loop_age_s"] < 2.0  # the main loop is fine: it is the camera that is not
        stalled = listener.wait_topic(f"{PREFIX}/cam/status", timeout=20,
                                      where=lambda m: m.json()["state"] == "failed" and m.json()["detail"].startswith("stalled"))
        assert f"stall_timeout_s {STALL_S:g}" in stalled[0].json()["detail"]
        listener.wait_topic(f"{PREFIX}/cam/status", timeout=20, count=1,
                            where=lambda m: m.json()["state"] == "restarting" and m.at > stalled[0].at)
        wait_for(lambda: "leaving that thread behind" in daemon.log(), 20, "a stuck read to be abandoned")
        assert daemon.alive()
        metrics = health_metrics(health_port)
        assert (metric_value(metrics, "source_last_frame_age_seconds", pipeline="cam") or 0) > STALL_S
        assert (metric_value(metrics, "source_stalls_total", pipeline="cam") or 0) >= 1

        hang.unlink()  # the sensor is back: the fresh open delivers, the stuck reads return late
        body = wait_for(healthy, 30, lambda: f"/healthz back to 200; log:\n{daemon.log()[-3000:]}")
        assert body["stale_sources"] == [] and body["sources"]["cam"]["last_frame_age_s"] < STALL_S
        wait_for(lambda: "dropped an item from an abandoned read" in daemon.log(), 20, "the late frame to be dropped")

        hang.touch()  # stuck again, then SIGTERM: the abandoned threads must not hold the stop up
        wait_for(lambda: _healthz(health_port)[0] == 503, 20, "the second stall")
        wait_for(lambda: daemon.log().count("leaving that thread behind") >= 2, 20, "a second abandoned read")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(8) == 0
        assert "Traceback" not in daemon.log()
    finally:
        hang.unlink(missing_ok=True)
        daemon.stop()
        listener.close()
