"""Running the real `edge run` as a subprocess for tests, with real inputs: a video file written with
OpenCV, WAV files written with soundfile, tiny real ONNX bundles, a real mosquitto."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import soundfile as sf
import yaml

REPO = Path(__file__).resolve().parents[2]

BGR = {"red": (0, 0, 255), "green": (0, 255, 0), "blue": (255, 0, 0), "black": (0, 0, 0)}


def write_color_video(path: Path, colors: Sequence[str], seconds_each: float = 1.0, fps: float = 10.0, size: tuple[int, int] = (64, 48)) -> Path:
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


def write_config(path: Path, host: str, port: int, pipelines: list[dict[str, Any]], health_port: int | None = None, **overrides: Any) -> Path:
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
        },
        "health": {"enabled": health_port is not None, "port": health_port or 8321},
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


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
