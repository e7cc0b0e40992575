"""The source interfaces: a camera yields BGR frames, a microphone yields mono float32 blocks.

A source is opened, read until it fails or ends, and closed; it never restarts itself. Restarting with
backoff is the supervisor's job (edge.sources.supervisor), so every backend behaves the same way when a
cable is pulled or a stream drops. A source also says how long it may stay silent (`stall_timeout_s`): a
driver that blocks in read() without an error is noticed by the supervisor, not by the source itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# How a source's state reaches its owner: (pipeline name, state, detail). The supervisor reports `starting`,
# `running`, `ended`, `failed`, `restarting` and `stopped` (edge.sources.supervisor); the pipeline passes them on.
StatusCallback = Callable[[str, str, str], None]


class SourceError(RuntimeError):
    """The source failed (cannot open, read error, stalled); the message says which and how to fix it."""


class SourceEnded(Exception):
    """The source has no more data (a video or WAV file played to its end without `loop`)."""


@dataclass
class Frame:
    image: np.ndarray  # BGR uint8 [H, W, 3], as OpenCV delivers it
    ts: float  # Unix seconds when the frame was captured


@dataclass
class AudioBlock:
    samples: np.ndarray  # mono float32 in [-1, 1]
    ts: float  # Unix seconds when the last sample of the block was captured
    sample_rate: int


class FrameSource(ABC):
    """A camera, stream, video file or image folder."""

    description: str = "camera"
    # No frame for this long (opening included) and the supervisor declares the source stalled and restarts it;
    # None: never. Backends set it from the config's `source.stall_timeout_s`.
    stall_timeout_s: float | None = None

    @abstractmethod
    def open(self) -> None:
        """Opens the device/stream; raises SourceError with a fix when it cannot."""

    @abstractmethod
    def read(self) -> Frame:
        """The next frame; raises SourceEnded at the end of a file, SourceError on failure."""

    @abstractmethod
    def close(self) -> None:
        """Releases the device; safe to call twice or after a failed open, and from another thread while read()
        is blocked (the supervisor calls it so to unblock a stalled read): it must not crash then."""

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AudioSource(ABC):
    """A microphone or a sound file."""

    description: str = "microphone"
    sample_rate: int = 0  # known after open(): the native rate blocks arrive at
    stall_timeout_s: float | None = None  # as FrameSource's: no block for this long is a stall

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self) -> AudioBlock:
        """The next block; raises SourceEnded at the end of a file, SourceError on failure."""

    @abstractmethod
    def close(self) -> None:
        """As FrameSource.close: safe twice, and from another thread while read() is blocked."""

    def __enter__(self) -> AudioSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
