"""Turning sound files of any length into the fixed windows a sound model sees (torch-free).

Shared by the trainer (training and validation windows), `trainer evaluate` and the device, so a clip
is cut the same way everywhere:

- a clip whose loud part fits in one window gives ONE window, placed so the loud part is centred
  (by its energy) and never cut, zero-padded when the clip is shorter than the window;
- a longer sound (a recording of several claps, a long whistle) gives several windows, `hop` apart,
  over its loud span; windows that are quiet compared with the loudest part are dropped, because
  they hold no example of the class;
- background recordings (`_background_noise_`) are windowed end to end: quiet is what they are.

Problem clips are refused with a reason (`ClipRejected`): shorter than 50 ms, or silent. A silent clip
in a word/sound class is a mistake in the data (nothing to learn; it would teach the model that
silence is that class), so the trainer skips it with a warning; in the background class silence is a
legitimate example and is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from edge.core.audio import AudioDecodeError, load_audio, resample

if TYPE_CHECKING:
    from edge.core.datasets import Sample
    from edge.core.session import Classifier

log = logging.getLogger(__name__)

BACKGROUND_LABEL = "_background_noise_"
MIN_CLIP_SECONDS = 0.05
SILENCE_PEAK = 10 ** (-60 / 20)  # peak below -60 dBFS: nothing a microphone would call a sound
FRAME_SECONDS = 0.01
ACTIVE_DB = 20.0  # frames within 20 dB of the loudest frame are "the loud part"
QUIET_WINDOW_DB = 20.0  # long recordings: windows whose loudest frame is 20 dB under the clip's are dropped


class ClipRejected(ValueError):
    """A readable file that holds no usable example; the message says why and what to do."""


@dataclass(frozen=True)
class Windowing:
    """Where the windows of one clip lie: `starts` into the clip (may be negative or run past its end:
    zero padding), and for training how far each window may shift without cutting the loud part."""

    starts: np.ndarray  # int64 [n]
    shift_min: np.ndarray  # int64 [n], <= 0
    shift_max: np.ndarray  # int64 [n], >= 0


def frame_energy(samples: np.ndarray, frame: int) -> np.ndarray:
    n = max(1, int(np.ceil(samples.size / frame)))
    padded = np.zeros(n * frame, np.float32)
    padded[: samples.size] = samples
    return cast(np.ndarray, np.mean(np.square(padded.reshape(n, frame)), axis=1))


def check_clip(samples: np.ndarray, rate: int, where: str | Path, background: bool = False) -> None:
    """Raises ClipRejected for a clip too short to hold a sound, or (outside the background class) silent."""
    seconds = samples.size / rate
    if seconds < MIN_CLIP_SECONDS:
        raise ClipRejected(
            f"{where}: only {seconds * 1000:.0f} ms long (at least {MIN_CLIP_SECONDS * 1000:.0f} ms are needed); "
            f"record the sound again or delete the file"
        )
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if not background and peak < SILENCE_PEAK:
        level = f"{20 * np.log10(peak):.0f} dBFS" if peak > 0 else "digital silence"
        raise ClipRejected(
            f"{where}: silent (peak {level}); check the microphone and record again, or move it to "
            f"{BACKGROUND_LABEL}/ if silence is what it should teach"
        )


def plan_windows(samples: np.ndarray, rate: int, window: int, hop: int, background: bool = False) -> Windowing:
    """Where to cut `samples` (already at the model's rate) into windows of `window` samples."""
    n = samples.size
    if background:
        if n <= window:
            starts = np.array([-(window - n) // 2])
        else:
            starts = np.arange(0, n - window + 1, hop)
            if starts[-1] + window < n:
                starts = np.append(starts, n - window)
        half = np.full(starts.size, hop // 2)
        return Windowing(starts.astype(np.int64), -half.astype(np.int64), half.astype(np.int64))
    frame = max(1, int(rate * FRAME_SECONDS))
    energy = frame_energy(samples, frame)
    loudest = float(energy.max())
    active = np.flatnonzero(energy >= loudest * 10 ** (-ACTIVE_DB / 10)) if loudest > 0 else np.arange(energy.size)
    span_start = int(active[0]) * frame
    span_end = min(n, (int(active[-1]) + 1) * frame)
    if span_end - span_start <= window:
        # One event: centre the window on its energy, but never so far that the loud span falls out.
        weights = energy[active[0] : active[-1] + 1]
        centre = span_start + frame * (float(np.sum(weights * np.arange(weights.size))) / max(float(weights.sum()), 1e-20) + 0.5)
        start = int(round(centre - window / 2))
        start = min(max(start, span_end - window), span_start)
        return Windowing(
            np.array([start], np.int64),
            np.array([span_end - window - start], np.int64),  # shifting by this still keeps span_end inside
            np.array([span_start - start], np.int64),
        )
    starts = np.arange(span_start, span_end - window + 1, hop)
    if starts.size == 0 or starts[-1] + window < span_end:
        starts = np.append(starts, span_end - window)
    peaks = np.array([energy[s // frame : (s + window) // frame].max(initial=0.0) for s in starts])
    starts = starts[peaks >= loudest * 10 ** (-QUIET_WINDOW_DB / 10)]
    half = np.full(starts.size, hop // 2, np.int64)
    return Windowing(starts.astype(np.int64), -half, half)


def cut(samples: np.ndarray, start: int, window: int) -> np.ndarray:
    """samples[start : start + window] with zeros where that range lies outside the clip."""
    out = np.zeros(window, np.float32)
    lo, hi = max(0, start), min(samples.size, start + window)
    if hi > lo:
        out[lo - start : hi - start] = samples[lo:hi]
    return out


def load_clip(path: str | Path, rate: int, background: bool = False) -> np.ndarray:
    """A file as mono float32 at `rate`, checked (AudioDecodeError or ClipRejected otherwise)."""
    samples, file_rate = load_audio(path)
    check_clip(samples, file_rate, path, background)
    return resample(samples, file_rate, rate)


def clip_windows(samples: np.ndarray, rate: int, window: int, hop: int, background: bool = False) -> np.ndarray:
    """[n, window] float32 windows of one clip, as the trainer validates and `trainer evaluate` scores."""
    plan = plan_windows(samples, rate, window, hop, background)
    return np.stack([cut(samples, int(s), window) for s in plan.starts])


def is_background_path(path: str | Path) -> bool:
    """True for files under a `_background_noise_` folder (at any depth of the data set)."""
    return BACKGROUND_LABEL in Path(path).parts


def score_files(
    paths: Sequence[str | Path],
    predict: Callable[[np.ndarray], np.ndarray],
    rate: int,
    window: int,
    hop: int,
    batch_size: int = 32,
    preloaded: dict[Path, np.ndarray] | None = None,
) -> tuple[list[int], list[np.ndarray], list[dict[str, str]]]:
    """Per file: cut into windows as the trainer does, predict every window, average the probabilities.

    `predict` maps a float32 [n, window] batch to probabilities [n, classes] (an ONNX Runtime session
    on the device and in `trainer evaluate`); `preloaded` supplies clips already decoded at `rate`. Returns (indices of scored files,
    their probabilities, skipped files as {path, reason}); unreadable, too-short and silent files are skipped with a warning."""
    kept: list[int] = []
    probs: list[np.ndarray] = []
    skipped: list[dict[str, str]] = []
    pending: list[np.ndarray] = []
    owners: list[int] = []
    outputs: list[np.ndarray] = []

    def flush() -> None:
        if pending:
            outputs.append(np.asarray(predict(np.stack(pending)), np.float32))
            pending.clear()

    for i, path in enumerate(paths):
        background = is_background_path(path)
        try:
            clip = preloaded[Path(path)] if preloaded and Path(path) in preloaded else load_clip(path, rate, background=background)
        except (AudioDecodeError, ClipRejected) as exc:
            log.warning("skipping %s", exc)
            skipped.append({"path": str(path), "reason": str(exc)})
            continue
        for row in clip_windows(clip, rate, window, hop, background=background):
            pending.append(row)
            owners.append(i)
            if len(pending) >= batch_size:
                flush()
        kept.append(i)
    flush()
    if not kept:
        return kept, probs, skipped
    window_probs = np.concatenate(outputs)
    owner = np.asarray(owners)
    for i in kept:
        probs.append(window_probs[owner == i].mean(axis=0))
    return kept, probs, skipped


def bundle_scorer(clf: Classifier, samples: Sequence[Sample], batch_size: int) -> tuple[list[int], list[np.ndarray], list[str]]:
    """`edge.core.evaluate`'s scorer for audio bundles: windows as the manifest says, one answer per file."""
    bundle = clf.bundle
    kept, probs, skipped = score_files([s.path for s in samples], clf.run, bundle.sample_rate, bundle.window_samples, bundle.hop_samples,
                                       batch_size)
    return kept, probs, [s["path"] for s in skipped]
