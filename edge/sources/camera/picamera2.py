"""picamera2 backend: the Raspberry Pi camera through libcamera."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from edge.sources.base import Frame, FrameSource, SourceError
from edge.sources.camera.base import CameraOptions

log = logging.getLogger(__name__)


class Picamera2Source(FrameSource):
    """Raspberry Pi camera through picamera2 (libcamera). picamera2 exists only on Raspberry Pi OS, so
    it is imported on open and a missing module is a clear error, not an import crash."""

    def __init__(self, camera_num: int = 0, options: CameraOptions | None = None) -> None:
        options = options or CameraOptions()
        self.camera_num = camera_num
        self.size = (int(options.width or 640), int(options.height or 480))
        self.fps = options.fps
        self.stall_timeout_s = options.stall_timeout(self.fps)  # libcamera can stop delivering without an error
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
