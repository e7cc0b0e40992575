"""Sources: real video through OpenCV, real audio through PortAudio/ALSA, the supervisor's restarts,
and the picamera2 adapter against a stand-in module (the one piece of hardware we cannot have)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.sources import Backoff, SourceEnded, SourceError, SourceSupervisor, open_camera_source, parse_camera_uri
from edge.sources.camera import CameraOptions, CameraTarget, ImageFolderSource, OpenCvSource, Picamera2Source, csi_pipeline, redact
from edge.sources.camera import opencv as opencv_mod
from edge.sources.microphone import SoundFileSource
from tests.support.alsa import PCM_NAME, AlsaFileMicrophone
from tests.support.broker import free_port
from tests.support.onnx_models import color_video, tone
from tests.support.paths import REPO
from tests.support.waiting import wait_for


def test_camera_uris_parse_like_jetson_inference(tmp_path: Path) -> None:
    assert parse_camera_uri("0") == CameraTarget("index", 0)
    assert parse_camera_uri("/dev/video2") == CameraTarget("device", "/dev/video2")
    assert parse_camera_uri("v4l2:///dev/video1") == CameraTarget("device", "/dev/video1")
    assert parse_camera_uri("csi://1") == CameraTarget("csi", 1)
    assert parse_camera_uri("picamera2://0") == CameraTarget("picamera2", 0)
    assert parse_camera_uri("rtsp://u:p@cam/live") == CameraTarget("stream", "rtsp://u:p@cam/live")
    assert parse_camera_uri(f"file://{tmp_path}") == CameraTarget("folder", str(tmp_path))
    assert parse_camera_uri("clip.mp4") == CameraTarget("file", "clip.mp4")
    with pytest.raises(SourceError, match="unknown camera scheme"):
        parse_camera_uri("ftp://x")
    assert redact("rtsp://admin:secret@cam/live") == "rtsp://admin:***@cam/live"


def test_real_video_fixture_through_opencv(shared_dir: Path) -> None:
    clip = shared_dir / "video" / "asl_gestures" / "again.mkv"
    source = open_camera_source(str(clip), CameraOptions(realtime=False))
    frames = 0
    with source:
        while True:
            try:
                frame = source.read()
            except SourceEnded:
                break
            frames += 1
            assert frame.image.ndim == 3 and frame.image.shape[2] == 3 and frame.image.dtype == np.uint8
    assert frames > 30


def test_generated_video_paces_in_real_time_and_loops(tmp_path: Path) -> None:
    video = color_video(tmp_path / "v.avi", [(0, 0, 255)], frames_each=6, fps=20)
    source = open_camera_source(str(video), CameraOptions(loop=True, realtime=True))
    started = time.monotonic()
    with source:
        frames = [source.read() for _ in range(14)]  # more than the file holds: loops
    elapsed = time.monotonic() - started
    assert len(frames) == 14 and elapsed >= 0.55  # 14 frames at 20 fps take >= 0.65 s (first is immediate)
    assert frames[-1].ts >= frames[0].ts
    once = open_camera_source(str(video), CameraOptions(realtime=False))
    with once:
        for _ in range(6):
            once.read()
        with pytest.raises(SourceEnded, match="after 6 frames"):
            once.read()


def test_missing_and_garbage_files_fail_with_reasons(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        open_camera_source(str(tmp_path / "nope.mp4")).open()
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    source = open_camera_source(str(junk))
    with pytest.raises(SourceError):
        source.open()
        source.read()
    with pytest.raises(SourceError, match="no such device"):
        open_camera_source("/dev/video99").open()


def test_image_folder_in_name_order_skipping_unreadable(tmp_path: Path) -> None:
    for i, value in enumerate([10, 20, 30]):
        cv2.imwrite(str(tmp_path / f"{i}.jpg"), np.full((8, 8, 3), value, np.uint8))
    (tmp_path / "1b.png").write_bytes(b"broken")
    source = open_camera_source(str(tmp_path), CameraOptions(realtime=False))
    assert isinstance(source, ImageFolderSource)
    with source:
        means = [round(float(source.read().image.mean()) / 10) for _ in range(3)]
        with pytest.raises(SourceEnded):
            source.read()
    assert means == [1, 2, 3]


def test_csi_pipeline_string_goes_through_opencv_gstreamer(monkeypatch: pytest.MonkeyPatch) -> None:
    text = csi_pipeline(1, 1920, 1080, 30)
    assert text.startswith("nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM), width=(int)1920, height=(int)1080, "
                           "framerate=(fraction)30/1")
    assert "nvvidconv flip-method=0" in text and "format=(string)BGR ! appsink drop=true max-buffers=1" in text
    source = open_camera_source("csi://1", CameraOptions(1920, 1080, 30))
    assert isinstance(source, OpenCvSource) and source.gstreamer == text
    if not opencv_mod.gstreamer_available():
        with pytest.raises(SourceError, match="no GStreamer support"):
            source.open()
    calls: list[tuple[Any, ...]] = []
    real_capture = cv2.VideoCapture

    def spy(*args: Any) -> Any:
        calls.append(args)
        return real_capture(*args)

    monkeypatch.setattr(opencv_mod, "gstreamer_available", lambda: True)
    monkeypatch.setattr(opencv_mod.cv2, "VideoCapture", spy)
    with pytest.raises(SourceError, match="cannot open"):  # no Jetson camera here: OpenCV refuses it
        source.open()
    assert calls == [(text, cv2.CAP_GSTREAMER)]


class _StandInPicamera2:
    """Mimics the parts of picamera2.Picamera2 the adapter uses (create_video_configuration, configure,
    start, capture_array, stop, close)."""

    instances: list[_StandInPicamera2] = []

    def __init__(self, camera_num: int = 0) -> None:
        self.camera_num = camera_num
        self.calls: list[str] = []
        self.config: dict[str, Any] = {}
        _StandInPicamera2.instances.append(self)

    def create_video_configuration(self, main: dict[str, Any], controls: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("create_video_configuration")
        return {"main": dict(main), "controls": dict(controls)}

    def configure(self, config: dict[str, Any]) -> None:
        self.calls.append("configure")
        self.config = config

    def start(self) -> None:
        self.calls.append("start")

    def capture_array(self, stream: str = "main") -> np.ndarray:
        width, height = self.config["main"]["size"]
        frame = np.zeros((height, width, 3), np.uint8)
        frame[..., 0] = 255  # B, G, R order, as libcamera's RGB888
        return frame

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")


def test_picamera2_adapter_picamera2_standin(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("picamera2")
    module.Picamera2 = _StandInPicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    _StandInPicamera2.instances.clear()
    source = open_camera_source("picamera2://1", CameraOptions(width=320, height=240, fps=15))
    assert isinstance(source, Picamera2Source)
    with source:
        frame = source.read()
    cam = _StandInPicamera2.instances[0]
    assert cam.camera_num == 1
    assert cam.config == {"main": {"size": (320, 240), "format": "RGB888"}, "controls": {"FrameRate": 15.0}}
    assert cam.calls == ["create_video_configuration", "configure", "start", "stop", "close"]
    assert frame.image.shape == (240, 320, 3) and frame.image[0, 0].tolist() == [255, 0, 0]  # BGR blue


def test_picamera2_missing_module_is_a_clear_error_picamera2_standin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails as on a non-Pi machine
    with pytest.raises(SourceError, match="apt install python3-picamera2"):
        Picamera2Source(0).open()


def test_backoff_doubles_caps_and_resets_after_a_healthy_run() -> None:
    backoff = Backoff(0.5, 4.0, healthy_after_s=10)
    assert [backoff.next_delay(0.1) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.next_delay(60.0) == 0.5


def test_supervisor_restarts_a_failing_camera_url_with_backoff() -> None:
    url = f"http://127.0.0.1:{free_port()}/video.mjpg"  # nothing listens: connection refused
    statuses: list[tuple[str, str, str]] = []
    supervisor = SourceSupervisor("door", lambda: open_camera_source(url), lambda item: None, lambda *s: statuses.append(s), Backoff(0.1,
                                                                                                                                     0.4,
                                                                                                                                     10))
    supervisor.start()
    try:
        wait_for(lambda: supervisor.restarts >= 5, 15, "five restarts of the dead camera URL")
    finally:
        supervisor.stop()
    states = [s for _, s, _ in statuses]
    assert states[:4] == ["starting", "failed", "restarting", "starting"]
    assert states[-1] == "stopped" and "running" not in states
    failed = [d for _, s, d in statuses if s == "failed"]
    assert "cannot open" in failed[0] and "127.0.0.1" in failed[0]
    delays = [d.split()[1] for _, s, d in statuses if s == "restarting"]
    assert delays[:5] == ["0.1", "0.2", "0.4", "0.4", "0.4"]  # doubles, then stays capped at backoff_max_s


def test_sound_file_source_paces_and_ends(tmp_path: Path) -> None:
    import soundfile

    path = tmp_path / "t.wav"
    soundfile.write(path, tone(440, 0.5, 22050), 22050)
    source = SoundFileSource(str(path), block_s=0.1, realtime=True)
    started = time.monotonic()
    blocks = []
    with source, pytest.raises(SourceEnded):
        while True:
            blocks.append(source.read())
    assert time.monotonic() - started >= 0.4
    assert sum(b.samples.size for b in blocks) == 11025 and blocks[0].sample_rate == 22050


MIC_CHILD = """
import json, sys, numpy as np
from edge.sources.microphone import SoundDeviceSource, resolve_input_device
from edge.sources.base import SourceError
src = SoundDeviceSource(sys.argv[1], None, block_s=0.05)
src.open()
blocks = [src.read() for _ in range(int(sys.argv[2]))]
src.close()
x = np.concatenate([b.samples for b in blocks])
try:
    resolve_input_device("no such microphone")
    err = ""
except SourceError as e:
    err = str(e)
print(json.dumps({"rate": src.sample_rate, "n": int(x.size), "peak": float(np.abs(x).max()),
    "crossings": int(np.sum(np.diff(np.signbit(h[h != 0]).astype(int)) != 0)) if (h := x[x.size // 2:]).size else 0,
    "seconds": float(x.size / src.sample_rate),
    "span": blocks[-1].ts - blocks[0].ts, "error": err, "name": src.description}))
"""


def test_microphone_through_sounddevice_and_alsa_file_plugin(tmp_path: Path) -> None:
    with AlsaFileMicrophone(tmp_path, rate=48000) as mic:
        mic.loop(tone(1000, 0.1, 48000, amplitude=0.5))  # 100 whole periods: loops seamlessly
        result = subprocess.run([sys.executable, "-c", MIC_CHILD, PCM_NAME, "20"], env=mic.env(), capture_output=True, text=True, cwd=REPO,
                                timeout=60)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["rate"] == 48000 and PCM_NAME in data["name"]  # the device's native rate, chosen by name
    assert data["n"] >= 20 * 2400 * 0.9 and abs(data["peak"] - 0.5) < 0.02
    # a 1 kHz tone crosses zero 2000 times a second: this is the audio we played, not noise or silence
    half_s = data["n"] / 2 / 48000
    assert abs(data["crossings"] / half_s - 2000) < 50
    assert "no such microphone" in data["error"] and "inputs here:" in data["error"] and PCM_NAME in data["error"]
