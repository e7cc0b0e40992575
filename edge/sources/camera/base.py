"""Camera backends behind FrameSource: OpenCV (webcams, streams, files), Jetson CSI through a GStreamer
pipeline, image folders and picamera2 (Raspberry Pi).

URIs follow jetson-inference's naming, which Jetson users already know: `csi://0`, `v4l2:///dev/video0`,
`rtsp://host/path`, `file:///clip.mp4`; plus `picamera2://0`, a bare index (`0`) and plain paths.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import cv2
import numpy as np

from edge.core.images import IMAGE_SUFFIXES
from edge.sources.base import Frame, FrameSource, SourceEnded, SourceError

log = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp")
STREAM_TIMEOUT_MS = 5000  # FFmpeg otherwise blocks for minutes on a dead RTSP camera


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


def gstreamer_available() -> bool:
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line
    return False


def csi_pipeline(sensor_id: int = 0, width: int = 1280, height: int = 720, fps: float = 30.0, flip_method: int = 0) -> str:
    """GStreamer pipeline for a Jetson CSI camera (nvarguscamerasrc), ending in BGR frames for OpenCV.
    appsink keeps one buffer and drops the rest, so OpenCV always gets the newest frame."""
    rate = f"{int(round(fps))}/1"
    return (
        f"nvarguscamerasrc sensor-id={int(sensor_id)} ! "
        f"video/x-raw(memory:NVMM), width=(int){int(width)}, height=(int){int(height)}, framerate=(fraction){rate}, format=(string)NV12 ! "
        f"nvvidconv flip-method={int(flip_method)} ! "
        f"video/x-raw, width=(int){int(width)}, height=(int){int(height)}, format=(string)BGRx ! "
        "videoconvert ! video/x-raw, format=(string)BGR ! "
        "appsink drop=true max-buffers=1 sync=false"
    )


class _Pacer:
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


class OpenCvSource(FrameSource):
    """cv2.VideoCapture on an index, a /dev/video device, a network stream, a video file or a GStreamer string."""

    def __init__(
        self,
        target: CameraTarget,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        loop: bool = False,
        realtime: bool = True,
        stall_timeout_s: float = 20.0,
        gstreamer: str | None = None,
    ) -> None:
        self.target = target
        self.width, self.height, self.fps = width, height, fps
        self.loop, self.realtime = loop, realtime
        self.stall_timeout_s = stall_timeout_s
        self.gstreamer = gstreamer
        self.description = target.describe()
        self.capture: cv2.VideoCapture | None = None
        self._pacer: _Pacer | None = None
        self._frames = 0

    @property
    def is_file(self) -> bool:
        return self.target.kind == "file"

    def _open_capture(self) -> cv2.VideoCapture:
        kind, value = self.target.kind, self.target.value
        if self.gstreamer is not None:
            if not gstreamer_available():
                raise SourceError(
                    f"{self.description}: this OpenCV build has no GStreamer support (pip's opencv-python-headless has none); "
                    "on a Jetson use JetPack's OpenCV (`sudo apt install python3-opencv`, and a venv made with --system-site-packages)"
                )
            return cv2.VideoCapture(self.gstreamer, cv2.CAP_GSTREAMER)
        if kind == "file":
            if not Path(value).is_file():
                raise SourceError(f"{self.description}: no such file; check the path (relative paths are relative to the config file)")
            return cv2.VideoCapture(str(value), cv2.CAP_FFMPEG)
        if kind == "stream":
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(min(self.stall_timeout_s,
                                                                                                                 60) * 1000)]
            return cv2.VideoCapture(str(value), cv2.CAP_FFMPEG, params)
        if kind == "device":
            if not os.path.exists(value):
                raise SourceError(f"{self.description}: no such device; is the camera plugged in? `v4l2-ctl --list-devices` lists them")
            return cv2.VideoCapture(str(value), cv2.CAP_V4L2)
        return cv2.VideoCapture(int(value))

    def open(self) -> None:
        self.close()
        capture = self._open_capture()
        if not capture.isOpened():
            capture.release()
            hint = {
                "stream": "check the URL, the credentials and that the camera is reachable from this device",
                "index": "is a camera connected? try another index or /dev/videoN",
                "device": "is another program using the camera? is the user in the 'video' group?",
                "file": "is it a video file OpenCV/FFmpeg can decode (mp4, mkv, avi)?",
            }.get(self.target.kind, "check the camera")
            raise SourceError(f"{self.description}: cannot open; {hint}")
        if self.target.kind in ("index", "device"):
            if self.width:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            if self.height:
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            if self.fps:
                capture.set(cv2.CAP_PROP_FPS, self.fps)
        self.capture = capture
        self._frames = 0
        self._pacer = None
        if self.is_file and self.realtime:
            native = capture.get(cv2.CAP_PROP_FPS)
            self._pacer = _Pacer(self.fps or (native if 0 < native < 1000 else 30.0))

    def read(self) -> Frame:
        if self.capture is None:
            raise SourceError(f"{self.description}: read before open")
        if self._pacer is not None:
            self._pacer.wait()
        ok, image = self.capture.read()
        if not ok or image is None:
            if self.is_file:
                if self._frames == 0:
                    raise SourceError(f"{self.description}: no frame could be decoded; the file is damaged or in an unsupported codec")
                if self.loop:
                    self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, image = self.capture.read()
                    if not ok or image is None:
                        raise SourceError(f"{self.description}: cannot seek back to the start to loop")
                else:
                    raise SourceEnded(f"{self.description}: end of file after {self._frames} frames")
            else:
                raise SourceError(f"{self.description}: stopped delivering frames (unplugged, stream dropped or timed out)")
        self._frames += 1
        return Frame(image=image, ts=time.time())

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None


class ImageFolderSource(FrameSource):
    """Every image in a folder, in name order, as frames (a camera stand-in and a demo source)."""

    def __init__(self, folder: str, fps: float | None = None, loop: bool = False, realtime: bool = True) -> None:
        self.folder = Path(folder)
        self.loop, self.realtime = loop, realtime
        self.fps = fps or 2.0
        self.description = f"image folder {folder}"
        self._files: list[Path] = []
        self._index = 0
        self._pacer: _Pacer | None = None
        self._delivered = 0

    def open(self) -> None:
        if not self.folder.is_dir():
            raise SourceError(f"{self.description}: no such folder")
        self._files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self._files:
            raise SourceError(f"{self.description}: holds no images ({', '.join(IMAGE_SUFFIXES)})")
        self._index = 0
        self._delivered = 0
        self._pacer = _Pacer(self.fps) if self.realtime else None

    def read(self) -> Frame:
        while True:
            if self._index >= len(self._files):
                if not self.loop:
                    raise SourceEnded(f"{self.description}: all {len(self._files)} images shown")
                if self._delivered == 0:
                    raise SourceError(f"{self.description}: none of the images could be read")
                self._index = 0
                self._delivered = 0
            path = self._files[self._index]
            self._index += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                log.warning("%s: cannot read %s as an image; skipping it", self.description, path.name)
                continue
            if self._pacer is not None:
                self._pacer.wait()
            self._delivered += 1
            return Frame(image=image, ts=time.time())

    def close(self) -> None:
        self._files = []


class Picamera2Source(FrameSource):
    """Raspberry Pi camera through picamera2 (libcamera). picamera2 exists only on Raspberry Pi OS, so
    it is imported on open and a missing module is a clear error, not an import crash."""

    def __init__(self, camera_num: int = 0, width: int | None = None, height: int | None = None, fps: float | None = None) -> None:
        self.camera_num = camera_num
        self.size = (int(width or 640), int(height or 480))
        self.fps = fps
        self.description = f"Raspberry Pi camera {camera_num}"
        self.camera: Any = None

    def open(self) -> None:
        self.close()
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise SourceError(
                f"{self.description}: the picamera2 module is not installed; on Raspberry Pi OS run `sudo apt install python3-picamera2` "
                "and create the venv with --system-site-packages"
            ) from exc
        try:
            camera = Picamera2(self.camera_num)
            controls = {"FrameRate": float(self.fps)} if self.fps else {}
            # libcamera's "RGB888" is laid out B, G, R in memory: exactly OpenCV's BGR, no conversion needed
            config = camera.create_video_configuration(main={"size": self.size, "format": "RGB888"}, controls=controls)
            camera.configure(config)
            camera.start()
        except Exception as exc:  # libcamera raises RuntimeError, IndexError (no camera) and more
            raise SourceError(f"{self.description}: cannot start ({exc}); is the ribbon cable seated and the camera enabled? `rpicam-hello "
                              "--list-cameras` lists cameras") from exc
        self.camera = camera

    def read(self) -> Frame:
        if self.camera is None:
            raise SourceError(f"{self.description}: read before open")
        try:
            image = self.camera.capture_array("main")
        except Exception as exc:
            raise SourceError(f"{self.description}: capture failed ({exc})") from exc
        image = np.asarray(image)
        if image.ndim == 3 and image.shape[2] == 4:
            image = image[:, :, :3]
        return Frame(image=np.ascontiguousarray(image), ts=time.time())

    def close(self) -> None:
        camera, self.camera = self.camera, None
        if camera is not None:
            for method in ("stop", "close"):
                try:
                    getattr(camera, method)()
                except Exception:  # closing a camera that already failed must not raise
                    log.debug("picamera2 %s failed", method, exc_info=True)


def open_camera_source(
    uri: str,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    loop: bool = False,
    realtime: bool = True,
    stall_timeout_s: float = 20.0,
) -> FrameSource:
    """The FrameSource for a camera URI (not yet opened)."""
    target = parse_camera_uri(uri)
    if target.kind == "folder":
        return ImageFolderSource(target.value, fps=fps, loop=loop, realtime=realtime)
    if target.kind == "picamera2":
        return Picamera2Source(target.value, width, height, fps)
    if target.kind == "csi":
        pipeline = csi_pipeline(target.value, width or 1280, height or 720, fps or 30.0)
        return OpenCvSource(target, width, height, fps, stall_timeout_s=stall_timeout_s, gstreamer=pipeline)
    return OpenCvSource(target, width, height, fps, loop=loop, realtime=realtime, stall_timeout_s=stall_timeout_s)
