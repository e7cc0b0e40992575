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
from typing import get_args

import annotated_types
import numpy as np
from pydantic import BaseModel

from edge.config.pipelines import PipelineConfigBase, SmoothingSettings

# Every default and bound below is the config's (edge/config/pipelines.py), read from its pydantic fields:
# the `pipelines:` section is where they are documented and checked first, and config/ may not import
# pipelines/, so this module takes them from there rather than the other way round.


def _default(model: type[BaseModel], name: str) -> object:
    return model.model_fields[name].default


def _bounds(model: type[BaseModel], name: str) -> tuple[float, float]:
    """The field's `ge`/`le` (every bounded number here has both)."""
    lo = hi = None
    for constraint in model.model_fields[name].metadata:
        if isinstance(constraint, annotated_types.Ge):
            lo = constraint.ge
        elif isinstance(constraint, annotated_types.Le):
            hi = constraint.le
    assert lo is not None and hi is not None, f"{model.__name__}.{name} needs ge and le"
    return float(lo), float(hi)  # type: ignore[arg-type]


def _min_length(model: type[BaseModel], name: str) -> int:
    return next(c.min_length for c in model.model_fields[name].metadata if isinstance(c, annotated_types.MinLen))


METHODS: tuple[str, ...] = get_args(SmoothingSettings.model_fields["method"].annotation)
THRESHOLD_BOUNDS = _bounds(PipelineConfigBase, "threshold")
MIN_HOLD_BOUNDS = _bounds(PipelineConfigBase, "min_hold_s")
COUNT_BOUNDS = {name: _bounds(SmoothingSettings, name) for name in ("window", "n", "m")}
UNKNOWN_LABEL_MIN_LENGTH = _min_length(PipelineConfigBase, "unknown_label")


@dataclass(frozen=True)
class PostSettings:
    threshold: float = float(_default(PipelineConfigBase, "threshold"))  # type: ignore[arg-type]
    unknown_label: str = str(_default(PipelineConfigBase, "unknown_label"))
    method: str = str(_default(SmoothingSettings, "method"))
    window: int = int(_default(SmoothingSettings, "window"))  # type: ignore[call-overload]
    n: int = int(_default(SmoothingSettings, "n"))  # type: ignore[call-overload]
    m: int = int(_default(SmoothingSettings, "m"))  # type: ignore[call-overload]
    min_hold_s: float = float(_default(PipelineConfigBase, "min_hold_s"))  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"smoothing method {self.method!r} is unknown; use one of {', '.join(METHODS)}")
        lo, hi = THRESHOLD_BOUNDS
        if not lo <= self.threshold <= hi:
            raise ValueError(f"threshold {self.threshold} must be between {lo:g} and {hi:g}")
        counts = {"window": self.window, "n": self.n, "m": self.m}
        got = ", ".join(f"{k}={v}" for k, v in counts.items())
        if any(v < COUNT_BOUNDS[k][0] for k, v in counts.items()) or self.n > self.m:
            lo = COUNT_BOUNDS["window"][0]
            raise ValueError(f"smoothing needs window >= {lo:g} and {lo:g} <= n <= m (got {got})")
        if any(v > COUNT_BOUNDS[k][1] for k, v in counts.items()):
            raise ValueError(f"smoothing allows window, n and m up to {COUNT_BOUNDS['window'][1]:g} (got {got})")
        lo, hi = MIN_HOLD_BOUNDS
        if self.min_hold_s < lo:
            raise ValueError("min_hold_s cannot be negative" if lo == 0 else f"min_hold_s must be at least {lo:g}")
        if self.min_hold_s > hi:
            raise ValueError(f"min_hold_s {self.min_hold_s} must be at most {hi:g}")
        if len(self.unknown_label) < UNKNOWN_LABEL_MIN_LENGTH:
            raise ValueError("unknown_label cannot be empty")

    @classmethod
    def from_pipeline(cls, cfg: PipelineConfigBase) -> PostSettings:
        smoothing = cfg.smoothing
        return cls(
            threshold=float(cfg.threshold),
            unknown_label=str(getattr(cfg, "unknown_label", cls.unknown_label)),
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
