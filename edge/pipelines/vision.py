"""Camera pipeline: always classify the newest frame.

The capture thread (the source supervisor) never waits for inference: it drops each frame into a
one-slot mailbox, replacing (and counting as dropped) any frame the model has not taken yet. So a slow
model on a Pi classifies what the camera sees now, not a queue of frames from seconds ago.
"""

from __future__ import annotations

import time
from typing import Any

import cv2

from edge.config.pipelines import CameraPipelineConfig
from edge.core.images import bgr_to_rgb, fit_image
from edge.pipelines.base import BasePipeline
from edge.pipelines.latest import Classified
from edge.sources.base import Frame
from edge.sources.camera import CameraOptions, open_camera_source
from edge.sources.supervisor import Backoff, SourceSupervisor


class VisionPipeline(BasePipeline[CameraPipelineConfig]):
    kind = "camera"
    extra_params = ("mirror", "max_fps")

    def __init__(self, cfg: CameraPipelineConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(cfg, *args, **kwargs)
        self._mailbox: Frame | None = None
        self._last_frame: Frame | None = None
        self._next_allowed = 0.0

    def _source_factory(self) -> Any:
        return open_camera_source(self.cfg.source.uri, CameraOptions.from_config(self.cfg.source))

    def _make_supervisor(self) -> SourceSupervisor:
        src = self.cfg.source
        return SourceSupervisor(self.name, self._source_factory, self._on_frame, self._relay_status, Backoff(src.backoff_initial_s,
                                                                                                             src.backoff_max_s,
                                                                                                             src.healthy_after_s))

    def _on_frame(self, frame: Frame) -> None:
        # Capture thread: O(1), never blocks on inference.
        with self._cond:
            if self._mailbox is not None:
                self.frames_dropped += 1
            self._mailbox = frame
            self._last_frame = frame
            self.frames_in += 1
            self._in_rate.tick(time.monotonic())
            self._cond.notify()

    def queue_size(self) -> int:
        return 1 if self._mailbox is not None else 0

    def _take_newest(self) -> Frame | None:
        with self._cond:
            if self._mailbox is None:
                self._cond.wait(timeout=0.25)
            frame, self._mailbox = self._mailbox, None
            return frame

    def _inference_loop(self) -> None:
        while not self._stop.is_set():
            max_fps = self.cfg.max_fps
            if max_fps:
                delay = self._next_allowed - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
            frame = self._take_newest()
            if frame is None:
                continue
            if self.paused:
                self.frames_skipped_paused += 1
                continue
            self._next_allowed = time.monotonic() + (1.0 / max_fps if max_fps else 0.0)
            with self._lock:
                classifier, mirror = self.classifier, self.cfg.mirror
            try:
                started = time.perf_counter()
                # Crop and resize first, then flip and reorder channels on the small image: the same
                # pixels as converting the full frame (both are per-pixel), at a fraction of the cost.
                fitted = fit_image(frame.image, classifier.bundle.image_size, classifier.resize_policy)
                if mirror:
                    fitted = cv2.flip(fitted, 1)
                probs = classifier.predict_images(bgr_to_rgb(fitted)[None])[0]
                inference_ms = (time.perf_counter() - started) * 1000.0
            except Exception as exc:  # a bad frame or a failing provider skips one frame, never the pipeline
                self._inference_failed(exc)
                continue
            decision = self._decide(probs, frame.ts, inference_ms, classifier)
            self.latest.put(Classified(decision, image=frame.image, mirror=mirror))  # a reference, never a copy or an encoding

    def snapshot_jpeg(self, max_side: int | None = None) -> bytes | None:
        frame = self._last_frame
        if frame is None:
            return None
        image = frame.image
        height, width = image.shape[:2]
        if max_side is not None and max(height, width) > max_side:
            # INTER_AREA: the downscaling filter without aliasing; the aspect ratio is kept.
            scale = max_side / max(height, width)
            image = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
        image = cv2.flip(image, 1) if self.cfg.mirror else image
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        return bytes(data.tobytes()) if ok else None
