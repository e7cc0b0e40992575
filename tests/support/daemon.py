"""Running the real `edge run` as a subprocess for tests, with real inputs: a video file written with
OpenCV, WAV files written with soundfile, tiny real ONNX bundles, a real mosquitto."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import soundfile as sf
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]

BGR = {"red": (0, 0, 255), "green": (0, 255, 0), "blue": (255, 0, 0), "black": (0, 0, 0)}


def write_color_video(path: Path, colors: Sequence[str], seconds_each: float = 1.0, fps: float = 10.0,
                      size: tuple[int, int] = (64, 48)) -> Path:
    """An MJPG .avi cycling through solid colours (with some noise, as a camera would deliver)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    rng = np.random.default_rng(0)
    for color in colors:
        for _ in range(max(1, int(round(seconds_each * fps)))):
            frame = np.empty((size[1], size[0], 3), np.uint8)
            frame[:] = BGR[color]
            noise = rng.integers(0, 20, frame.shape, dtype=np.uint8)
            writer.write(cv2.add(frame, noise))
    writer.release()
    return path


def write_loud_quiet_wav(path: Path, pattern: Sequence[str] = ("quiet", "loud"), seconds_each: float = 1.0, rate: int = 16000) -> Path:
    """A mono WAV alternating near-silence and a loud tone."""
    t = np.arange(int(seconds_each * rate)) / rate
    chunks = [(0.5 * np.sin(2 * np.pi * 440 * t) if kind == "loud" else 0.001 * np.sin(2 * np.pi * 50 * t)) for kind in pattern]
    sf.write(str(path), np.concatenate(chunks).astype(np.float32), rate, subtype="PCM_16")
    return path


def camera_pipeline(name: str, bundle: Path, uri: str, **overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": name,
        "kind": "camera",
        "bundle": str(bundle),
        "threads": 1,
        "threshold": 0.5,
        "smoothing": {"method": "none"},
        "min_hold_s": 0,
        "source": {"uri": uri, "loop": True, "realtime": True, "backoff_initial_s": 0.5, "backoff_max_s": 2, "healthy_after_s": 5},
        "publish": {"heartbeat_s": 2, "max_rate_hz": 5},
    }
    cfg.update(overrides)
    return cfg


def microphone_pipeline(name: str, bundle: Path, wav: Path, **overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": name,
        "kind": "microphone",
        "bundle": str(bundle),
        "threads": 1,
        "threshold": 0.5,
        "smoothing": {"method": "none"},
        "min_hold_s": 0,
        "source": {"file": str(wav), "loop": True, "realtime": True},
        "publish": {"heartbeat_s": 2, "max_rate_hz": 5},
    }
    cfg.update(overrides)
    return cfg


def write_config(path: Path, host: str, port: int, pipelines: list[dict[str, Any]], health_port: int | None = None,
                 **overrides: Any) -> Path:
    config: dict[str, Any] = {
        "device_id": "testdev",
        "log_level": "INFO",
        "mqtt": {
            "host": host,
            "port": port,
            "keepalive": 5,
            "reconnect_min_delay": 1,
            "reconnect_max_delay": 1,
            "stats_interval": 1,
            # The tests' broker is anonymous, where reload and snapshot are off by default (docs/security.md):
            # allowed by name here; tests/e2e/test_security_mqtt.py checks the default by passing commands={}.
            "commands": {"allow": ["ping", "status", "pause", "resume", "set", "reload", "snapshot"]},
        },
        "health": {"enabled": health_port is not None, "port": health_port or 8321},
        "dashboard": {"enabled": False},  # on by default in a real config; tests that want it pass dashboard={...}
        "pipelines": pipelines,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class DaemonProcess:
    """`python -m edge.cli run -c CONFIG` with its log in a file (shown when a test fails)."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = config.with_suffix(".log")
        self._log = open(self.log_path, "wb")
        full_env = dict(os.environ)
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.pop("NOTIFY_SOCKET", None)
        full_env.pop("WATCHDOG_USEC", None)
        full_env.update(env or {})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "run", "-c", str(config)],
            cwd=str(REPO),
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(8)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


def wait_until(predicate: Any, timeout: float, what: Any, interval: float = 0.1) -> Any:
    """Kept for older callers: `tests.support.waiting.wait_for` with the same arguments."""
    return wait_for(predicate, timeout, what, interval)


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """One sample of Prometheus text (`edgeteach_` prefix added when missing), or None when absent."""
    full = name if name.startswith("edgeteach_") else f"edgeteach_{name}"
    want = ",".join(f'{key}="{value}"' for key, value in labels.items())
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        series, value = line.rsplit(" ", 1)
        if series == (f"{full}{{{want}}}" if want else full):
            return float(value)
    return None


def health_metrics(port: int) -> str:
    """The daemon's /metrics (works while the broker is down: it is the daemon's own HTTP server)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


class DaemonCommands:
    """MQTT 5 requests to a daemon's `<prefix>/cmd/<name>` with a private response topic; returns replies.
    A reply is also a marker: the daemon published it after everything it had published before."""

    def __init__(self, host: str, port: int, prefix: str) -> None:
        self.prefix = prefix
        self.response_topic = f"{prefix}/replies/{uuid.uuid4().hex}"  # under the default mqtt.reply_prefix
        self._replies: dict[bytes, Any] = {}
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.connect(host, port)
        self.client.loop_start()
        self.client.subscribe(self.response_topic, qos=1)
        if not self._subscribed.wait(10):
            raise TimeoutError(f"no SUBACK for {self.response_topic}")

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        corr = getattr(message.properties, "CorrelationData", None)
        with self._cond:
            self._replies[bytes(corr or b"")] = json.loads(message.payload)
            self._cond.notify_all()

    def __call__(self, name: str, payload: dict[str, Any] | None = None, timeout: float = 15.0) -> Any:
        corr = uuid.uuid4().hex.encode()
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = self.response_topic
        props.CorrelationData = corr
        self.client.publish(f"{self.prefix}/cmd/{name}", json.dumps(payload or {}), qos=1, properties=props)
        with self._cond:
            if not self._cond.wait_for(lambda: corr in self._replies, timeout):
                raise AssertionError(f"no reply to the {name!r} command within {timeout} s")
            return self._replies.pop(corr)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
