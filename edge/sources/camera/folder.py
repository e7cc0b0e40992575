"""Image folder backend: every image in a folder, in name order, as frames."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2

from edge.core.images import IMAGE_SUFFIXES
from edge.sources.base import Frame, FrameSource, SourceEnded, SourceError
from edge.sources.camera.base import CameraOptions, Pacer

log = logging.getLogger(__name__)


class ImageFolderSource(FrameSource):
    """Every image in a folder, in name order, as frames (a camera stand-in and a demo source)."""

    def __init__(self, folder: str, options: CameraOptions | None = None) -> None:
        options = options or CameraOptions()
        self.folder = Path(folder)
        self.loop, self.realtime = options.loop, options.realtime
        self.fps = options.fps or 2.0
        self.stall_timeout_s = options.stall_timeout(self.fps if self.realtime else None)
        self.description = f"image folder {folder}"
        self._files: list[Path] = []
        self._index = 0
        self._pacer: Pacer | None = None
        self._delivered = 0

    def open(self) -> None:
        if not self.folder.is_dir():
            raise SourceError(f"{self.description}: no such folder")
        self._files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self._files:
            raise SourceError(f"{self.description}: holds no images ({', '.join(IMAGE_SUFFIXES)})")
        self._index = 0
        self._delivered = 0
        self._pacer = Pacer(self.fps) if self.realtime else None

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
