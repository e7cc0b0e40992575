"""Microphone backends behind AudioSource: sounddevice (PortAudio: ALSA, PulseAudio, PipeWire) and sound
files paced in real time."""

from __future__ import annotations

import logging
import queue
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.core.audio import DEFAULT_SAMPLE_RATE
from edge.sources.base import AudioBlock, AudioSource, SourceEnded, SourceError

log = logging.getLogger(__name__)


def _sounddevice() -> Any:
    # Imported late: importing sounddevice initialises PortAudio, which reads the ALSA config once.
    try:
        import sounddevice
    except OSError as exc:  # the Python package is there but libportaudio is not
        raise SourceError(f"PortAudio is missing ({exc}); install it: `sudo apt install libportaudio2`") from exc
    return sounddevice


def resolve_input_device(device: int | str | None) -> tuple[int | None, dict[str, Any]]:
    """(index or None for the default, device info) for 'default', an index or part of a name."""
    sd = _sounddevice()
    wanted: int | str | None = None if device in (None, "default", "") else device
    if isinstance(wanted, str) and wanted.strip().isdigit():
        wanted = int(wanted)
    try:
        info = sd.query_devices(wanted, "input")
    except (ValueError, sd.PortAudioError) as exc:
        try:
            names = [f"{i}: {d['name']}" for i, d in enumerate(sd.query_devices()) if d.get("max_input_channels", 0) > 0]
        except Exception:
            names = []
        listing = "; inputs here: " + ", ".join(names) if names else "; no input devices were found (is a microphone connected?)"
        raise SourceError(f"microphone {device!r}: {exc}{listing}") from exc
    index = wanted if isinstance(wanted, int) else int(info.get("index", -1)) if wanted is not None else None
    return index, dict(info)


class SoundDeviceSource(AudioSource):
    """A PortAudio input stream at the device's native rate. The PortAudio callback only copies the block
    into a queue, so audio is never lost while the pipeline is busy (the queue is bounded; overflow counted)."""

    def __init__(self, device: int | str = "default", sample_rate: int | None = None, channels: int = 1, block_s: float = 0.1,
                 stall_timeout_s: float = 5.0, max_queue: int = 100) -> None:
        self.device = device
        self.requested_rate = sample_rate
        self.channels = channels
        self.block_s = block_s
        # read() gives up on its own after this long without a block (PortAudio's callback stopped); the
        # supervisor watches the same bound for a driver that blocks instead (in open or start).
        self.stall_timeout_s: float = stall_timeout_s
        self.description = f"microphone {device}"
        self.sample_rate = 0
        self.overflows = 0  # PortAudio reported input overflow (the OS dropped samples)
        self.dropped_blocks = 0  # our queue was full (the pipeline stalled for max_queue blocks)
        self._queue: queue.Queue[AudioBlock] = queue.Queue(maxsize=max_queue)
        self._stream: Any = None

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status and getattr(status, "input_overflow", False):
            self.overflows += 1
        mono = indata.mean(axis=1) if indata.shape[1] > 1 else indata[:, 0]
        block = AudioBlock(samples=np.array(mono, dtype=np.float32, copy=True), ts=time.time(), sample_rate=self.sample_rate)
        try:
            self._queue.put_nowait(block)
        except queue.Full:
            self.dropped_blocks += 1

    def open(self) -> None:
        self.close()
        sd = _sounddevice()
        index, info = resolve_input_device(self.device)
        self.description = f"microphone {info.get('name', self.device)}"
        rate = int(self.requested_rate or round(float(info.get("default_samplerate") or DEFAULT_SAMPLE_RATE)))
        channels = max(1, min(self.channels, int(info.get("max_input_channels", 1)) or 1))
        self.sample_rate = rate
        self._queue = queue.Queue(maxsize=self._queue.maxsize)
        try:
            stream = sd.InputStream(device=index, samplerate=rate, channels=channels, dtype="float32",
                                    blocksize=max(1, int(rate * self.block_s)), callback=self._callback)
            stream.start()
        except Exception as exc:  # PortAudioError, ValueError for an unsupported rate
            raise SourceError(f"{self.description}: cannot start capture at {rate} Hz, {channels} channel(s) ({exc}); try "
                              "another sample_rate or device") from exc
        self._stream = stream

    def read(self) -> AudioBlock:
        if self._stream is None:
            raise SourceError(f"{self.description}: read before open")
        try:
            return self._queue.get(timeout=self.stall_timeout_s)
        except queue.Empty:
            active = bool(getattr(self._stream, "active", False))
            raise SourceError(f"{self.description}: no audio for {self.stall_timeout_s:.0f} s (stream "
                              f"{'active' if active else 'stopped'}); unplugged or taken by another program?") from None

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception:
                log.debug("closing the input stream failed", exc_info=True)


class SoundFileSource(AudioSource):
    """A WAV/FLAC/OGG file delivered block by block, paced like a microphone (optional loop)."""

    def __init__(self, path: str, block_s: float = 0.1, loop: bool = False, realtime: bool = True) -> None:
        self.path = Path(path)
        self.block_s, self.loop, self.realtime = block_s, loop, realtime
        self.description = f"sound file {path}"
        self.sample_rate = 0
        self._samples = np.zeros(0, np.float32)
        self._pos = 0
        self._next_due = 0.0

    def open(self) -> None:
        from edge.core.audio import AudioDecodeError, load_audio

        if not self.path.is_file():
            raise SourceError(f"{self.description}: no such file (relative paths are relative to the config file)")
        try:
            self._samples, self.sample_rate = load_audio(self.path)
        except AudioDecodeError as exc:
            raise SourceError(str(exc)) from exc
        self._pos = 0
        self._next_due = 0.0

    def read(self) -> AudioBlock:
        if self._pos >= self._samples.size:
            if not self.loop:
                raise SourceEnded(f"{self.description}: end of file")
            self._pos = 0
        n = max(1, int(self.sample_rate * self.block_s))
        block = self._samples[self._pos : self._pos + n]
        self._pos += block.size
        if self.realtime:
            now = time.monotonic()
            if self._next_due == 0.0 or now - self._next_due > 1.0:
                self._next_due = now
            self._next_due += block.size / self.sample_rate  # a block is delivered once it "has been heard"
            delay = self._next_due - now
            if delay > 0:
                time.sleep(delay)
        return AudioBlock(samples=block.copy(), ts=time.time(), sample_rate=self.sample_rate)

    def close(self) -> None:
        self._samples = np.zeros(0, np.float32)
