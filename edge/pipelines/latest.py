"""What a pipeline last classified, for whoever wants to look (the device's dashboard): one slot, overwritten by
each decision, and the last label changes.

The inference thread only swaps a reference here (no copy, no queue, no encoding): the frame or the audio window
is the one the model already had in hand. Turning it into a JPEG or a spectrogram is the viewer's job, done on
the viewer's thread and only while someone watches, so a pipeline nobody looks at pays nothing more.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # base.py holds the one-slot holder; Decision is only named here
    from edge.pipelines.base import Decision

MAX_CHANGES = 20  # label changes kept for the dashboard's timeline


@dataclass(frozen=True)
class Classified:
    """One classified input with its decision: a camera frame (BGR, as captured) or an audio window (mono
    float32 at the microphone's rate)."""

    decision: Decision
    image: np.ndarray | None = None
    mirror: bool = False  # the model saw the frame flipped left-right
    samples: np.ndarray | None = None
    sample_rate: int = 0


@dataclass(frozen=True)
class LabelChange:
    ts: float  # Unix seconds of the input that changed the label
    label: str
    confidence: float


class LatestClassified:
    """The one-slot holder: `put` from the inference thread, `get` and `changes` from any viewer."""

    def __init__(self, max_changes: int = MAX_CHANGES) -> None:
        self._lock = threading.Lock()
        self._item: Classified | None = None
        self._changes: deque[LabelChange] = deque(maxlen=max_changes)

    def put(self, item: Classified) -> None:
        decision = item.decision
        with self._lock:
            self._item = item  # overwrite: a viewer that was not fast enough simply never sees the older one
            if decision.changed or not self._changes:
                self._changes.append(LabelChange(decision.ts, decision.label, decision.confidence))

    def get(self) -> Classified | None:
        with self._lock:
            return self._item

    def changes(self) -> list[LabelChange]:
        """The last label changes, oldest first."""
        with self._lock:
            return list(self._changes)
