"""A real microphone without hardware: ALSA's `file` plugin reading a FIFO that we feed in real time.

PortAudio (and so `sounddevice`) captures from ALSA's `default` PCM; with the `.asoundrc` written here
that PCM is a `plug` (any rate/format the application asks for, converted by ALSA) over a `file` PCM
whose `infile` is a named pipe. A writer thread keeps the pipe full of 16-bit mono PCM (the sound you queue
with `play()`, then silence), so the capture never runs dry and never ends (a plain raw file ends and
then replays its last buffer endlessly), and tests can queue new sound while the code under test runs.

Timing: ALSA's `null` slave has no clock, so PortAudio captures as fast as it asks, about 2-3x real time
here; the reader sets the pace through the full pipe. Pacing the writer in real time instead
(`realtime=True`) starves the reader and the file plugin pads the gaps with zeros, so that is only for
tests that want gaps.

PortAudio reads the ALSA configuration once, when it is initialised (on `import sounddevice`), so the
code under test must run in a process started with `mic.env()` (HOME points at the folder holding the
`.asoundrc`). Usage:

    with AlsaFileMicrophone(tmp_path, rate=48000) as mic:
        mic.play(samples_float32_at_48k)
        subprocess.run([...], env=mic.env())
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

PCM_NAME = "edgeteach_mic"

ASOUNDRC = """\
pcm.!default {{ type asym; playback.pcm "null"; capture.pcm "{name}" }}
pcm.{name} {{ type plug; slave {{ pcm "{name}_file"; format S16_LE; rate {rate}; channels {channels} }} }}
pcm.{name}_file {{ type file; slave.pcm "null"; file "/dev/null"; infile "{fifo}"; format "raw" }}
pcm.null {{ type null }}
"""


def to_pcm16(samples: np.ndarray) -> bytes:
    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    return (clipped * 32767.0).astype("<i2").tobytes()


class AlsaFileMicrophone:
    """An ALSA capture device (`default`, also named `edgeteach_mic`) fed in real time from this process."""

    def __init__(self, workdir: Path, rate: int = 48000, channels: int = 1, chunk_s: float = 0.02, realtime: bool = False) -> None:
        self.home = Path(workdir) / "alsa-home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.rate, self.channels = rate, channels
        self.realtime = realtime
        self.fifo = self.home / "mic.fifo"
        if not self.fifo.exists():
            os.mkfifo(self.fifo)
        (self.home / ".asoundrc").write_text(ASOUNDRC.format(name=PCM_NAME, rate=rate, channels=channels, fifo=self.fifo), encoding="utf-8")
        self.chunk_bytes = max(2, int(rate * chunk_s)) * 2 * channels
        self.chunk_s = self.chunk_bytes / (2 * channels * rate)
        self._pending: deque[bytes] = deque()
        self._loop = b""
        self._loop_pos = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.bytes_written = 0
        self.readers_seen = 0

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env["HOME"] = str(self.home)
        env.pop("ALSA_CONFIG_PATH", None)
        return env

    def play(self, samples: np.ndarray) -> None:
        """Queues float32 mono samples at `rate`; they are heard after what is already queued."""
        data = to_pcm16(samples)
        if self.channels > 1:
            frames = np.frombuffer(data, dtype="<i2")
            data = np.repeat(frames, self.channels).astype("<i2").tobytes()
        with self._lock:
            for i in range(0, len(data), self.chunk_bytes):
                self._pending.append(data[i : i + self.chunk_bytes])

    def loop(self, samples: np.ndarray | None) -> None:
        """Plays `samples` over and over whenever nothing is queued (None: silence). Because the capture
        runs faster than real time, a looped sound is how a test holds a steady input while it waits."""
        data = b"" if samples is None else to_pcm16(samples)
        if self.channels > 1 and data:
            data = np.repeat(np.frombuffer(data, dtype="<i2"), self.channels).astype("<i2").tobytes()
        with self._lock:
            self._loop = data
            self._loop_pos = 0

    @property
    def queued_s(self) -> float:
        with self._lock:
            return sum(len(c) for c in self._pending) / (2 * self.channels * self.rate)

    def _next_chunk(self) -> bytes:
        with self._lock:
            if self._pending:
                chunk = self._pending.popleft()
            elif self._loop:
                out = bytearray()
                while len(out) < self.chunk_bytes:
                    take = self._loop[self._loop_pos : self._loop_pos + self.chunk_bytes - len(out)]
                    out += take
                    self._loop_pos = (self._loop_pos + len(take)) % len(self._loop)
                chunk = bytes(out)
            else:
                chunk = b""
        return chunk + b"\x00" * (self.chunk_bytes - len(chunk))

    def _open_writer(self) -> int | None:
        while not self._stop.is_set():
            try:
                return os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                    raise
                time.sleep(0.01)
        return None

    def _run(self) -> None:
        while not self._stop.is_set():
            fd = self._open_writer()
            if fd is None:
                return
            os.set_blocking(fd, True)
            self.readers_seen += 1
            next_due = time.monotonic()
            try:
                while not self._stop.is_set():
                    os.write(fd, self._next_chunk())  # blocks while the pipe is full: the reader sets the pace
                    self.bytes_written += self.chunk_bytes
                    if self.realtime:
                        next_due += self.chunk_s
                        delay = next_due - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
            except BrokenPipeError:
                pass  # the reader closed (PortAudio probes devices at start-up); wait for the next one
            finally:
                os.close(fd)

    def start(self) -> AlsaFileMicrophone:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="alsa-fifo-writer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        # unblock a writer stuck in open()/write() by briefly opening the read end
        try:
            fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(2.0)

    def __enter__(self) -> AlsaFileMicrophone:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
