"""Stand-in for the `picamera2` module (the Raspberry Pi camera, hardware the tests do not have), for black-box
runs of `edge run` with a `picamera2://0` source: the test puts tests/e2e/standins on the daemon's PYTHONPATH.

It delivers red frames at about 10 fps. While the file named by $PICAMERA2_STANDIN_HANG exists,
capture_array() blocks without an error, as libcamera does when a sensor or its ribbon cable stops delivering;
stop() and close() do not unblock it (the worst case: the daemon must abandon that thread). When the file is
removed, every blocked call returns a frame, late."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

RED_BGR = (0, 0, 255)


class Picamera2:
    def __init__(self, camera_num: int = 0) -> None:
        self.camera_num = camera_num
        self.size = (64, 48)

    def create_video_configuration(self, main: dict[str, Any], controls: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"main": dict(main), "controls": dict(controls or {})}

    def configure(self, config: dict[str, Any]) -> None:
        self.size = tuple(config["main"]["size"])

    def start(self) -> None:
        pass

    def capture_array(self, name: str = "main") -> np.ndarray:
        hang = os.environ.get("PICAMERA2_STANDIN_HANG", "")
        while hang and os.path.exists(hang):
            time.sleep(0.05)
        time.sleep(0.1)
        width, height = self.size
        frame = np.empty((height, width, 3), np.uint8)
        frame[:] = RED_BGR
        return frame

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass
