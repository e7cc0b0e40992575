"""What every camera backend shares: the URI parser, the target it yields, the open options and the chooser
`open_camera_source` that hands a URI to its backend (one module beside this one per backend).

URIs follow jetson-inference's naming, which Jetson users already know: `csi://0`, `v4l2:///dev/video0`,
`rtsp://host/path`, `file:///clip.mp4`; plus `picamera2://0`, a bare index (`0`) and plain paths.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from edge.config.pipelines import CameraSourceConfig
from edge.sources.base import FrameSource, SourceError

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp")


@dataclass(frozen=True)
class CameraTarget:
    kind: str  # index | device | stream | file | folder | csi | picamera2
    value: Any  # int for index/csi/picamera2, str otherwise

    def describe(self) -> str:
        return {
            "index": f"camera index {self.value}",
            "device": f"V4L2 device {self.value}",
            "stream": f"stream {redact(str(self.value))}",
            "file": f"video file {self.value}",
            "folder": f"image folder {self.value}",
            "csi": f"CSI camera {self.value}",
            "picamera2": f"Raspberry Pi camera {self.value}",
        }[self.kind]


def redact(url: str) -> str:
    """Stream URLs often carry a password (rtsp://user:pass@cam/); logs and MQTT status must not."""
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@", 1)
    return url


def parse_camera_uri(uri: str) -> CameraTarget:
    text = str(uri).strip()
    if not text:
        raise SourceError("empty camera uri; use 0 for the first webcam, /dev/video0, csi://0, picamera2://0, rtsp://... or a file path")
    if text.isdigit():
        return CameraTarget("index", int(text))
    scheme, sep, rest = text.partition("://")
    if not sep:
        path = Path(text).expanduser()
        if text.startswith("/dev/video"):
            return CameraTarget("device", text)
        return CameraTarget("folder" if path.is_dir() else "file", str(path))
    scheme = scheme.lower()
    if scheme == "v4l2":
        return CameraTarget("device", rest if rest.startswith("/") else "/" + rest)
    if scheme in ("csi", "picamera2"):
        number = rest.strip("/") or "0"
        if not number.isdigit():
            raise SourceError(f"{text}: expected {scheme}://N with a sensor number, e.g. {scheme}://0")
        return CameraTarget(scheme, int(number))
    if scheme == "file":
        path = Path(rest).expanduser()
        return CameraTarget("folder" if path.is_dir() else "file", str(path))
    if scheme in STREAM_SCHEMES:
        return CameraTarget("stream", text)
    raise SourceError(f"{text}: unknown camera scheme '{scheme}://'; use csi://, v4l2://, picamera2://, rtsp://, http(s):// or file://")


class Pacer:
    """Delivers file frames at their own rate, as a camera would, so a pipeline sees realistic timing."""

    def __init__(self, fps: float) -> None:
        self.interval = 1.0 / fps if fps > 0 else 0.0
        self.next_due = 0.0

    def wait(self) -> None:
        if self.interval <= 0:
            return
        now = time.monotonic()
        if self.next_due == 0.0 or now - self.next_due > 1.0:  # first frame, or we fell far behind: re-anchor
            self.next_due = now
        delay = self.next_due - now
        if delay > 0:
            time.sleep(delay)
        self.next_due += self.interval




def _config_default(name: str) -> Any:
    """The default of a `source:` field of a camera pipeline: the config section owns them, the options reuse them."""
    return CameraSourceConfig.model_fields[name].default


@dataclass(frozen=True)
class CameraOptions:
    """How to open a camera: what every backend takes (each uses the fields that apply to it). The defaults
    are those of the config's camera `source:` section; `from_config` builds the options from one."""

    width: int | None = _config_default("width")  # requested capture size; the camera's own when None
    height: int | None = _config_default("height")
    fps: float | None = _config_default("fps")  # requested frame rate; also the pace of files and folders
    loop: bool = _config_default("loop")  # files and folders: start again at the end
    realtime: bool = _config_default("realtime")  # files and folders: deliver at their own pace
    stall_timeout_s: float = _config_default("stall_timeout_s")  # no frame this long: stalled (and the streams' read timeout)

    @classmethod
    def from_config(cls, source: CameraSourceConfig) -> CameraOptions:
        return cls(source.width, source.height, source.fps, source.loop, source.realtime, source.stall_timeout_s)

    def stall_timeout(self, paced_fps: float | None = None) -> float:
        """The stall timeout of a source delivering at `paced_fps` (files and folders paced in real time): never
        shorter than three frame intervals, so a slow slideshow (fps: 0.05) is not taken for a hung camera."""
        if paced_fps and paced_fps > 0:
            return max(self.stall_timeout_s, 3.0 / paced_fps)
        return self.stall_timeout_s


def open_camera_source(uri: str, options: CameraOptions | None = None) -> FrameSource:
    """The FrameSource for a camera URI (not yet opened). A new backend is one module beside this one and one
    branch here; the backends are imported on demand, so one a device cannot use costs nothing."""
    options = options or CameraOptions()
    target = parse_camera_uri(uri)
    if target.kind == "folder":
        from edge.sources.camera.folder import ImageFolderSource

        return ImageFolderSource(target.value, options)
    if target.kind == "picamera2":
        from edge.sources.camera.picamera2 import Picamera2Source

        return Picamera2Source(target.value, options)
    from edge.sources.camera.opencv import OpenCvSource, csi_pipeline

    if target.kind == "csi":
        pipeline = csi_pipeline(target.value, options.width or 1280, options.height or 720, options.fps or 30.0)
        return OpenCvSource(target, options, gstreamer=pipeline)
    return OpenCvSource(target, options)
