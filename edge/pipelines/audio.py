"""Microphone pipeline: a ring buffer at the device's native rate, classified every hop.

Blocks arrive from the source at the microphone's own rate (44.1 or 48 kHz on most USB microphones);
every `hop` the newest `window` is cut from the ring, resampled to the bundle's rate and classified.
Window, hop and rate come from the bundle's manifest, so the device hears what the trainer trained on.
When inference falls behind, windows are skipped (counted as dropped) so decisions stay current.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edge.config.pipelines import MicrophonePipelineConfig
from edge.core.audio import resample
from edge.core.session import Classifier
from edge.pipelines.base import BasePipeline
from edge.pipelines.latest import Classified
from edge.sources.base import AudioBlock, AudioSource
from edge.sources.microphone import SoundDeviceSource, SoundFileSource
from edge.sources.supervisor import Backoff, SourceSupervisor


class RingBuffer:
    """A fixed-size float32 ring; `latest(n)` returns the newest n samples in order."""

    def __init__(self, capacity: int) -> None:
        self.data = np.zeros(max(1, capacity), dtype=np.float32)
        self.pos = 0
        self.filled = 0

    @property
    def capacity(self) -> int:
        return int(self.data.size)

    def write(self, samples: np.ndarray) -> None:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if samples.size >= self.capacity:
            self.data[:] = samples[-self.capacity :]
            self.pos, self.filled = 0, self.capacity
            return
        end = self.pos + samples.size
        if end <= self.capacity:
            self.data[self.pos : end] = samples
        else:
            first = self.capacity - self.pos
            self.data[self.pos :] = samples[:first]
            self.data[: end - self.capacity] = samples[first:]
        self.pos = end % self.capacity
        self.filled = min(self.capacity, self.filled + samples.size)

    def latest(self, n: int) -> np.ndarray:
        n = min(n, self.filled)
        start = (self.pos - n) % self.capacity
        if start + n <= self.capacity:
            return self.data[start : start + n].copy()
        return np.concatenate([self.data[start:], self.data[: self.pos]])


class AudioPipeline(BasePipeline[MicrophonePipelineConfig]):
    kind = "microphone"
    extra_params = ("hop_s",)

    def __init__(self, cfg: MicrophonePipelineConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(cfg, *args, **kwargs)
        self._ring: RingBuffer | None = None
        self._native_rate = 0
        self._pending = 0  # native samples received since the last classified window
        self._last_block_ts = 0.0
        self._window_native = 0
        self._hop_native = 0
        self._source: AudioSource | None = None

    # -- sizes -----------------------------------------------------------------------------------------
    def _sizes(self, native_rate: int) -> tuple[int, int]:
        bundle = self.classifier.bundle
        window = int(round(bundle.window_samples * native_rate / bundle.sample_rate))
        hop_s = self.cfg.hop_s if self.cfg.hop_s else bundle.hop_samples / bundle.sample_rate
        return window, max(1, int(round(hop_s * native_rate)))

    def _resize(self, native_rate: int) -> None:
        self._window_native, self._hop_native = self._sizes(native_rate)
        if self._ring is None or self._native_rate != native_rate or self._ring.capacity < self._window_native + self._hop_native:
            self._ring = RingBuffer(2 * self._window_native + self._hop_native)
            self._pending = 0
        self._native_rate = native_rate

    def _apply_params(self, cfg: MicrophonePipelineConfig) -> None:
        with self._cond:
            if self._native_rate:
                self._resize(self._native_rate)

    def _on_model_changed(self, classifier: Classifier) -> None:
        with self._cond:
            if self._native_rate:
                self._ring = None
                self._resize(self._native_rate)

    # -- source ----------------------------------------------------------------------------------------
    def _source_factory(self) -> AudioSource:
        src = self.cfg.source
        source: AudioSource
        if src.file:
            source = SoundFileSource(src.file, block_s=src.block_s, loop=src.loop, realtime=src.realtime)
        else:
            source = SoundDeviceSource(src.device, src.sample_rate, src.channels, src.block_s, src.stall_timeout_s)
        self._source = source
        return source

    def _make_supervisor(self) -> SourceSupervisor:
        src = self.cfg.source
        return SourceSupervisor(self.name, self._source_factory, self._on_block, self._relay_status, Backoff(src.backoff_initial_s,
                                                                                                             src.backoff_max_s,
                                                                                                             src.healthy_after_s))

    def _on_block(self, block: AudioBlock) -> None:
        # Capture thread: copy into the ring and return.
        with self._cond:
            if block.sample_rate != self._native_rate or self._ring is None:
                self._resize(block.sample_rate)
            assert self._ring is not None
            self._ring.write(block.samples)
            self._pending += block.samples.size
            self._last_block_ts = block.ts
            self.frames_in += 1
            self._in_rate.tick(time.monotonic())
            self._cond.notify()

    def queue_size(self) -> int:
        """Hops of audio waiting to be classified."""
        return self._pending // self._hop_native if self._hop_native else 0

    def _next_window(self) -> tuple[np.ndarray, float, int] | None:
        with self._cond:
            ready = lambda: self._ring is not None and self._ring.filled >= self._window_native and self._pending >= self._hop_native  # noqa: E731
            if not ready():
                self._cond.wait(timeout=0.25)
                if not ready():
                    return None
            assert self._ring is not None
            hops = self._pending // self._hop_native
            if hops > 1:
                self.frames_dropped += hops - 1  # behind: skip to the newest window
            self._pending %= self._hop_native
            return self._ring.latest(self._window_native), self._last_block_ts, self._native_rate

    def _inference_loop(self) -> None:
        while not self._stop.is_set():
            item = self._next_window()
            if item is None:
                continue
            if self.paused:
                self.frames_skipped_paused += 1
                continue
            window, ts, native_rate = item
            with self._lock:
                classifier = self.classifier
            bundle = classifier.bundle
            try:
                started = time.perf_counter()
                samples = resample(window, native_rate, bundle.sample_rate)
                probs = classifier.predict_waveform(samples)
                inference_ms = (time.perf_counter() - started) * 1000.0
            except Exception as exc:
                self._inference_failed(exc)
                continue
            level = float(np.sqrt(np.mean(window**2))) if window.size else 0.0
            decision = self._decide(probs, ts, inference_ms, classifier, extra={"rms": round(level, 6)})
            self.latest.put(Classified(decision, samples=window, sample_rate=native_rate))  # the window heard, as a reference

    def stats(self) -> dict[str, Any]:
        data = super().stats()
        data["sample_rate_in"] = self._native_rate
        data["sample_rate_model"] = self.classifier.bundle.sample_rate
        data["window_s"] = round(self._window_native / self._native_rate, 4) if self._native_rate else None
        data["hop_s"] = round(self._hop_native / self._native_rate, 4) if self._native_rate else None
        # audio lost before it reached the ring: the OS overflowed, or the pipeline stalled for many blocks
        data["source_overflows"] = int(getattr(self._source, "overflows", 0))
        data["source_dropped_blocks"] = int(getattr(self._source, "dropped_blocks", 0))
        return data
