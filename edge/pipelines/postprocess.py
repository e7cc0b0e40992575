"""From model scores to a decided label: threshold, smoothing and minimum hold time.

Pure and clock-free (time comes in as the capture timestamp), so it is unit-tested exactly.

Order of operations for every reading:
  1. smoothing: `none` uses the reading's scores; `moving_average` averages the last `window` score
     vectors; `n_of_m` keeps the reading's scores but a label becomes the candidate only when it was the
     confident top label of at least `n` of the last `m` readings (Frigate-style agreement).
  2. threshold: when the best (smoothed) score is below `threshold`, the candidate is `unknown_label`
     (n_of_m: a reading below the threshold votes for `unknown_label`).
  3. hold: a decided label is kept for at least `min_hold_s` seconds; a different candidate only takes
     over after that. The first reading always decides (nothing to hold yet).
The confidence reported is the (smoothed) score of the decided label, or the best score when the
decision is `unknown_label` (how close the model came).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edge.config.pipelines import PipelineConfigBase

METHODS = ("none", "moving_average", "n_of_m")


@dataclass(frozen=True)
class PostSettings:
    threshold: float = 0.6
    unknown_label: str = "unknown"
    method: str = "moving_average"
    window: int = 3
    n: int = 3
    m: int = 3
    min_hold_s: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"smoothing method {self.method!r} is unknown; use one of {', '.join(METHODS)}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold {self.threshold} must be between 0 and 1")
        if self.window < 1 or self.n < 1 or self.m < 1 or self.n > self.m:
            raise ValueError(f"smoothing needs window >= 1 and 1 <= n <= m (got window={self.window}, n={self.n}, m={self.m})")
        if self.min_hold_s < 0:
            raise ValueError("min_hold_s cannot be negative")

    @classmethod
    def from_pipeline(cls, cfg: PipelineConfigBase) -> PostSettings:
        smoothing = cfg.smoothing
        return cls(
            threshold=float(cfg.threshold),
            unknown_label=str(getattr(cfg, "unknown_label", "unknown")),
            method=str(smoothing.method),
            window=int(smoothing.window),
            n=int(smoothing.n),
            m=int(smoothing.m),
            min_hold_s=float(cfg.min_hold_s),
        )


@dataclass(frozen=True)
class Outcome:
    label: str  # the decided label
    confidence: float
    scores: dict[str, float]  # the scores the decision used (smoothed for moving_average)
    raw_label: str  # top label of this reading alone
    changed: bool  # the decided label differs from the previous decision


class PostProcessor:
    def __init__(self, labels: Sequence[str], settings: PostSettings | None = None) -> None:
        self.labels = tuple(labels)
        self.settings = settings or PostSettings()
        self._history: deque[np.ndarray] = deque(maxlen=self.settings.window)
        self._votes: deque[str] = deque(maxlen=self.settings.m)
        self.current: str | None = None
        self.since = 0.0

    def reconfigure(self, settings: PostSettings, labels: Sequence[str] | None = None) -> None:
        """New settings (or a new model's labels): history restarts, the current decision is kept so a
        `set` does not produce a spurious change event."""
        self.settings = settings
        if labels is not None:
            self.labels = tuple(labels)
        self._history = deque(maxlen=settings.window)
        self._votes = deque(maxlen=settings.m)

    def _candidate(self, probs: np.ndarray) -> tuple[str | None, np.ndarray]:
        s = self.settings
        if s.method == "moving_average":
            self._history.append(probs)
            scores = np.mean(np.stack(self._history), axis=0)
        else:
            scores = probs
        best = int(np.argmax(scores))
        confident = float(scores[best]) >= s.threshold
        if s.method != "n_of_m":
            return (self.labels[best] if confident else s.unknown_label), scores
        self._votes.append(self.labels[best] if confident else s.unknown_label)
        label, count = Counter(self._votes).most_common(1)[0]
        return (label if count >= s.n else None), scores

    def update(self, probs: np.ndarray, ts: float) -> Outcome:
        probs = np.asarray(probs, dtype=np.float32).reshape(-1)
        if probs.size != len(self.labels):
            raise ValueError(f"got {probs.size} scores for {len(self.labels)} labels")
        s = self.settings
        raw_label = self.labels[int(np.argmax(probs))]
        candidate, scores = self._candidate(probs)
        changed = False
        if self.current is None:
            self.current, self.since, changed = (candidate or s.unknown_label), ts, True
        elif candidate is not None and candidate != self.current and ts - self.since >= s.min_hold_s:
            self.current, self.since, changed = candidate, ts, True
        score_map = {label: float(v) for label, v in zip(self.labels, scores)}
        confidence = score_map.get(self.current, float(np.max(scores)))
        return Outcome(label=self.current, confidence=confidence, scores=score_map, raw_label=raw_label, changed=changed)


def settings_with(settings: PostSettings, **changes: object) -> PostSettings:
    return replace(settings, **changes)  # type: ignore[arg-type]
