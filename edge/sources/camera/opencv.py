"""OpenCV backend: webcams (an index or a /dev/video device), network streams, video files, and Jetson CSI
cameras through a GStreamer pipeline string."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import cv2

from edge.sources.base import Frame, FrameSource, SourceEnded, SourceError
from edge.sources.camera.base import CameraOptions, CameraTarget, Pacer

STREAM_TIMEOUT_MS = 5000  # FFmpeg otherwise blocks for minutes on a dead RTSP camera


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



class OpenCvSource(FrameSource):
    """cv2.VideoCapture on an index, a /dev/video device, a network stream, a video file or a GStreamer string."""

    def __init__(self, target: CameraTarget, options: CameraOptions | None = None, gstreamer: str | None = None) -> None:
        options = options or CameraOptions()
        self.target = target
        self.width, self.height, self.fps = options.width, options.height, options.fps
        self.loop, self.realtime = options.loop, options.realtime
        self._options = options
        self.stall_timeout_s = options.stall_timeout_s
        self.gstreamer = gstreamer
        self.description = target.describe()
        self.capture: cv2.VideoCapture | None = None
        self._pacer: Pacer | None = None
        self._frames = 0
        # close() may come from the supervisor's thread while read() is blocked in the driver. Releasing a
        # VideoCapture under a running read() frees what the read is using (a crash, not an exception), so a
        # close() during a read only takes the capture away and the read releases it when it returns.
        self._io = threading.Lock()
        self._reading = False
        self._release_after_read: cv2.VideoCapture | None = None

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
            read_timeout_ms = int(min(self._options.stall_timeout_s, 60) * 1000)  # FFmpeg fails the read itself
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_timeout_ms]
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
            pace = self.fps or (native if 0 < native < 1000 else 30.0)
            self._pacer = Pacer(pace)
            self.stall_timeout_s = self._options.stall_timeout(pace)

    def read(self) -> Frame:
        with self._io:
            capture = self.capture
            if capture is None:
                raise SourceError(f"{self.description}: read before open (or closed)")
            self._reading = True
        try:
            return self._read(capture)
        finally:
            with self._io:
                self._reading = False
                late, self._release_after_read = self._release_after_read, None
            if late is not None:
                late.release()

    def _read(self, capture: cv2.VideoCapture) -> Frame:
        if self._pacer is not None:
            self._pacer.wait()
        ok, image = capture.read()
        if not ok or image is None:
            if self.is_file:
                if self._frames == 0:
                    raise SourceError(f"{self.description}: no frame could be decoded; the file is damaged or in an unsupported codec")
                if self.loop:
                    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, image = capture.read()
                    if not ok or image is None:
                        raise SourceError(f"{self.description}: cannot seek back to the start to loop")
                else:
                    raise SourceEnded(f"{self.description}: end of file after {self._frames} frames")
            else:
                raise SourceError(f"{self.description}: stopped delivering frames (unplugged, stream dropped or timed out)")
        self._frames += 1
        return Frame(image=image, ts=time.time())

    def close(self) -> None:
        with self._io:
            capture, self.capture = self.capture, None
            if capture is not None and self._reading:
                self._release_after_read = capture  # see __init__: never released under a running read
                return
        if capture is not None:
            capture.release()
