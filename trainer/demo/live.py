"""The live half of `trainer demo`: the trained bundle running in the real device daemon.

Renders a sample video of the generated classes (and uses a sound bundle when one is given), starts a
local Mosquitto on a free port unless a broker is named, runs `edge run` on them as a separate process
(exactly as on a device), prints the MQTT messages as they arrive, and stops the daemon cleanly after
a while (SIGTERM: the retained `offline` is the last message shown).

Only the standard tools of the project are used: OpenCV writes the video, paho-mqtt reads the broker,
the daemon is `python -m edge.cli run`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np
import yaml

from trainer.demo.broker import Mosquitto, free_port, mosquitto_binary
from trainer.demo.image_samples import SHAPES, draw_shape


class LiveDemoError(RuntimeError):
    """Something the demo needs is missing; the message says what to install or change."""


@dataclass
class LiveDemoOptions:
    bundle: Path
    workdir: Path
    seconds: float = 20.0
    mqtt_host: str | None = None  # None: start a private mosquitto on a free port
    mqtt_port: int = 1883
    sound_bundle: Path | None = None
    sound_file: Path | None = None  # a WAV for the sound bundle; required with it
    seconds_per_class: float = 2.0
    device_id: str = "demo"


@dataclass
class LiveDemoResult:
    messages: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    states: int = 0
    labels_seen: set[str] = field(default_factory=set)
    labels_by_pipeline: dict[str, set[str]] = field(default_factory=dict)
    exit_code: int | None = None
    stopped_in_s: float | None = None
    offline_seen: bool = False


def render_video(path: Path, classes: tuple[str, ...] = SHAPES, seconds_per_class: float = 2.0, fps: float = 15.0, size: int = 224,
                 seed: int = 7) -> Path:
    """A video cycling through freshly drawn examples of each class (new ones, not the training images)."""
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (size, size))  # type: ignore[attr-defined]  # missing from the cv2 stubs
    if not writer.isOpened():
        raise LiveDemoError(f"OpenCV cannot write {path}; check that the folder is writable")
    for shape in classes:
        frame = cv2.cvtColor(draw_shape(shape, rng, size), cv2.COLOR_RGB2BGR)
        for _ in range(max(1, int(seconds_per_class * fps))):
            writer.write(frame)
    writer.release()
    return path


def start_local_broker(workdir: Path) -> Mosquitto:
    """A private mosquitto on 127.0.0.1 for the demo, stopped afterwards."""
    if mosquitto_binary() is None:
        raise LiveDemoError("mosquitto is not installed: `sudo apt install mosquitto` (or run scripts/setup.sh), or name "
                            "a broker with --mqtt-host")
    broker = Mosquitto(workdir, free_port())
    try:
        return broker.start()
    except TimeoutError:
        raise LiveDemoError(f"mosquitto did not start on port {broker.port}") from None


def write_daemon_config(options: LiveDemoOptions, video: Path, host: str, port: int) -> Path:
    pipelines: list[dict[str, Any]] = [
        {
            "name": "shapes",
            "kind": "camera",
            "bundle": str(options.bundle.resolve()),
            "threads": 1,
            "threshold": 0.6,
            "smoothing": {"method": "n_of_m", "n": 2, "m": 3},
            "min_hold_s": 0.5,
            "max_fps": 5,
            "source": {"uri": str(video.resolve()), "loop": True, "realtime": True},
            "publish": {"heartbeat_s": 5, "max_rate_hz": 2},
        }
    ]
    if options.sound_bundle is not None and options.sound_file is not None:
        pipelines.append(
            {
                "name": "sounds",
                "kind": "microphone",
                "bundle": str(options.sound_bundle.resolve()),
                "threads": 1,
                "threshold": 0.6,
                # 2 of the last 3 windows (hop 0.5 s): a label changes about 1 s after the sound does.
                "smoothing": {"method": "n_of_m", "n": 2, "m": 3},
                "min_hold_s": 0.5,
                "source": {"file": str(options.sound_file.resolve()), "loop": True, "realtime": True},
                "publish": {"heartbeat_s": 5, "max_rate_hz": 2},
            }
        )
    config = {
        "device_id": options.device_id,
        "mqtt": {"host": host, "port": port, "stats_interval": 5, "reconnect_min_delay": 1, "reconnect_max_delay": 2,
                 "discovery": {"enabled": False}},
        "health": {"enabled": False},
        "pipelines": pipelines,
    }
    path = options.workdir / "edge.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def describe(topic: str, payload: bytes, prefix: str) -> str:
    """One readable line per MQTT message."""
    short = topic[len(prefix) + 1 :] if topic.startswith(prefix + "/") else topic
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return f"{short:<22} {payload[:80].decode('utf-8', 'replace')}"
    if isinstance(data, dict) and "label" in data and "scores" in data:
        scores = " ".join(f"{k}={v:.2f}" for k, v in data["scores"].items())
        extra = f"  (was {data['previous']})" if data.get("previous") else ""
        return f"{short:<22} {data['label']:<10} {data['confidence']:.2f}  [{scores}]  {data['latency_ms']:.0f} ms{extra}"
    if short == "stats" and isinstance(data, dict):
        parts = [f"{name}: {p.get('fps', 0):.1f} fps, {p.get('frames_classified', 0)} classified" for name, p in data.get("pipelines",
                                                                                                                          {}).items()]
        rss = data.get("process", {}).get("rss_bytes", 0) / 2**20
        return f"{short:<22} {'; '.join(parts)}; RSS {rss:.0f} MB"
    if isinstance(data, dict) and "state" in data:
        return f"{short:<22} {data['state']} {data.get('detail', '')}"
    return f"{short:<22} {json.dumps(data)[:100]}"


def run_live_demo(options: LiveDemoOptions, out: TextIO = sys.stdout, on_message: Callable[[str, bytes],
                                                                                           None] | None = None) -> LiveDemoResult:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from edge.core.bundle import load_bundle

    options.workdir.mkdir(parents=True, exist_ok=True)
    labels = tuple(load_bundle(options.bundle).labels)
    classes = tuple(label for label in labels if label in SHAPES) or SHAPES
    video = render_video(options.workdir / "sample.avi", classes, options.seconds_per_class)
    print(f"live demo: sample video {video} ({', '.join(classes)}, {options.seconds_per_class:g} s each, looping)", file=out)
    if options.sound_bundle is not None and options.sound_file is not None:
        print(f"live demo: sample sound {options.sound_file} played in a loop as the microphone of pipeline `sounds`", file=out)

    broker: Mosquitto | None = None
    host, port = options.mqtt_host, options.mqtt_port
    if host is None:
        broker = start_local_broker(options.workdir)
        host, port = "127.0.0.1", broker.port
        print(f"live demo: started mosquitto on {host}:{port}", file=out)
    prefix = f"edgeteach/{options.device_id}"
    config = write_daemon_config(options, video, host, port)
    result = LiveDemoResult()
    lock = threading.Lock()
    start = time.monotonic()

    def handle(client: Any, userdata: Any, msg: Any) -> None:
        with lock:
            result.messages += 1
            if msg.topic.endswith("/event"):
                data = json.loads(msg.payload)
                result.events.append(data)
                result.labels_seen.add(data["label"])
                pipeline = msg.topic[len(prefix) + 1 :].rsplit("/", 1)[0]
                result.labels_by_pipeline.setdefault(pipeline, set()).add(data["label"])
            elif msg.topic.endswith("/state"):
                result.states += 1
            elif msg.topic == f"{prefix}/status" and msg.payload == b"offline":
                result.offline_seen = True
            print(f"{time.monotonic() - start:6.1f}s  {describe(msg.topic, msg.payload, prefix)}", file=out, flush=True)
        if on_message is not None:
            on_message(msg.topic, msg.payload)

    subscriber = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"edgeteach-demo-viewer-{os.getpid()}")
    subscriber.on_message = handle
    subscriber.on_connect = lambda c, *_: c.subscribe(f"{prefix}/#", qos=1)
    daemon: subprocess.Popen[bytes] | None = None
    log_path = options.workdir / "daemon.log"
    try:
        try:
            subscriber.connect(host, port, keepalive=30)
        except OSError as exc:
            raise LiveDemoError(f"cannot reach the MQTT broker at {host}:{port} ({exc}); start it or leave out "
                                "--mqtt-host to use a private one") from exc
        subscriber.loop_start()
        print(f"live demo: running `edge run -c {config}` for {options.seconds:g} s; MQTT messages under {prefix}/ (log: {log_path})\n",
              file=out)
        with open(log_path, "wb") as log:
            daemon = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "-c", str(config)], stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + options.seconds
            while time.monotonic() < deadline and daemon.poll() is None:
                time.sleep(0.2)
            if daemon.poll() is not None:
                raise LiveDemoError(f"the daemon exited early with code {daemon.returncode}; see {log_path}")
            stop_at = time.monotonic()
            daemon.send_signal(signal.SIGTERM)
            result.exit_code = daemon.wait(10)
            result.stopped_in_s = round(time.monotonic() - stop_at, 2)
        time.sleep(0.5)  # let the retained `offline` arrive
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
        subscriber.loop_stop()
        subscriber.disconnect()
        if broker is not None:
            broker.stop()
    seen = "; ".join(f"{name}: {', '.join(sorted(labels))}" for name, labels in sorted(result.labels_by_pipeline.items())) or "none"
    print(
        f"\nlive demo: {result.messages} MQTT messages, {len(result.events)} label changes ({seen}), "
        f"daemon stopped with exit code {result.exit_code} in {result.stopped_in_s} s",
        file=out,
    )
    return result


def default_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="edgeteach-live-"))
