"""A pipeline's latest classified input made viewable: camera frames as JPEGs for an MJPEG stream, sound as a
level, a waveform and a spectrum column, with the decision and the last label changes.

The pipeline only drops a reference into its one-slot holder (edge/pipelines/latest.py). Everything costly
happens here, on the viewer's side and only while someone watches: a frame is encoded when a viewer asks, at
most `max_fps` times a second per pipeline, once per frame however many viewers there are (they share the
last JPEG). OpenCV is imported on the first frame encoded, so a microphone-only device never loads it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edge.pipelines.latest import Classified, LatestClassified

MAX_SIDE = 640  # a dashboard tile; a 1080p camera frame would cost more to encode than to classify
JPEG_QUALITY = 70
WAVEFORM_POINTS = 160
SPECTRUM_BANDS = 48
FLOOR_DB = -80.0  # the bottom of the level meter and of the spectrum's colour scale

Encoder = Callable[[np.ndarray, bool], bytes]


def encode_jpeg(image: np.ndarray, mirror: bool) -> bytes:
    """A BGR frame as JPEG, downscaled to MAX_SIDE and flipped as the model saw it."""
    import cv2  # here, not at the top: a microphone-only device never needs OpenCV for the dashboard

    height, width = image.shape[:2]
    if max(height, width) > MAX_SIDE:
        scale = MAX_SIDE / max(height, width)
        image = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    if mirror:
        image = cv2.flip(image, 1)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("OpenCV could not encode the frame as JPEG")
    return bytes(data.tobytes())


class FrameThrottle:
    """The JPEG of a pipeline's latest classified frame, for every viewer of that pipeline.

    `next_after(seq)`: a newer frame than `seq` as (its seq, JPEG), or None when there is none yet or the last
    encoding was less than 1/max_fps ago. Thread-safe; viewers call it from worker threads."""

    def __init__(self, holder: LatestClassified, max_fps: float, encode: Encoder = encode_jpeg,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.holder = holder
        self.period_s = 1.0 / max_fps
        self._encode = encode
        self._clock = clock
        self._lock = threading.Lock()
        self._last: tuple[int, bytes] | None = None  # the last JPEG made, shared by the viewers
        self._next_at = float("-inf")
        self.encoded = 0

    def has_newer(self, seq: int) -> bool:
        """Whether a frame newer than `seq` is there (encoded already or not): cheap, no encoding."""
        last, item = self._last, self.holder.get()
        return (last is not None and last[0] > seq) or (item is not None and item.image is not None and item.decision.seq > seq)

    def next_after(self, seq: int) -> tuple[int, bytes] | None:
        with self._lock:
            last = self._last
            if last is not None and last[0] > seq:
                return last  # another viewer already paid for this one
            item = self.holder.get()
            if item is None or item.image is None or item.decision.seq <= seq:
                return None
            now = self._clock()
            if now < self._next_at:
                return None
            self._next_at = now + self.period_s
            self._last = (item.decision.seq, self._encode(item.image, item.mirror))
            self.encoded += 1
            return self._last


def audio_view(samples: np.ndarray, sample_rate: int) -> dict[str, Any]:
    """What the page draws of the window the model heard: the RMS level in dBFS, a waveform (peak per slice,
    0..1) and one spectrogram column (dB per band on a log frequency axis, FLOOR_DB..0, low bands first)."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if x.size == 0 or sample_rate <= 0:
        return {"level_db": FLOOR_DB, "waveform": [], "spectrum": []}
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    level_db = max(FLOOR_DB, 20.0 * math.log10(rms)) if rms > 0 else FLOOR_DB
    slices = np.array_split(np.abs(x), min(WAVEFORM_POINTS, x.size))
    waveform = [round(min(1.0, float(s.max())), 3) for s in slices]
    n = min(x.size, 4096)
    tail = x[-n:] * np.hanning(n).astype(np.float32)
    power = np.abs(np.fft.rfft(tail)) ** 2 / max(1.0, float(np.sum(np.hanning(n)) ** 2) / 4.0)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    edges = np.geomspace(50.0, min(sample_rate / 2.0, 12000.0), SPECTRUM_BANDS + 1)
    spectrum = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        band = power[(freqs >= low) & (freqs < high)]
        value = float(band.mean()) if band.size else 0.0
        spectrum.append(round(max(FLOOR_DB, 10.0 * math.log10(value)) if value > 0 else FLOOR_DB, 1))
    return {"level_db": round(level_db, 1), "waveform": waveform, "spectrum": spectrum}


def live_view(name: str, kind: str, paused: bool, holder: LatestClassified | None) -> dict[str, Any]:
    """One pipeline's tile: the last decision (label, confidence, a score per class), the last label changes,
    and for a microphone what it heard."""
    item: Classified | None = holder.get() if holder is not None else None
    view: dict[str, Any] = {"name": name, "kind": kind, "paused": paused, "seq": 0, "label": None, "changes": []}
    if holder is not None:
        view["changes"] = [{"ts": round(c.ts, 3), "label": c.label, "confidence": round(c.confidence, 4)} for c in holder.changes()]
    if item is None:
        return view
    decision = item.decision
    view.update(seq=decision.seq, label=decision.label, confidence=round(decision.confidence, 4), raw_label=decision.raw_label,
                scores={label: round(score, 4) for label, score in decision.scores.items()}, ts=round(decision.ts, 3),
                latency_ms=round(decision.latency_ms, 1))
    if item.samples is not None:
        view["audio"] = audio_view(item.samples, item.sample_rate)
    return view
