"""A whole recording through a sound bundle: cut into the model's windows, classified, one answer.

Shared by `edge predict` (a file on the command line) and the trainer's Studio Preview (a clip from the
browser's microphone), so both cut and average a clip the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edge.core.audio import resample
from edge.core.audio_windows import clip_windows

if TYPE_CHECKING:  # only named here: the CLI takes REDUCTIONS from this module without loading ONNX Runtime
    from edge.core.session import Classifier

REDUCTIONS = ("mean", "max")


def audio_windows(samples: np.ndarray, window: int, hop: int) -> np.ndarray:
    """[K, window] windows every `hop` samples; a clip shorter than a window becomes one zero-padded
    window (how the trainer pads short clips) and the tail is covered by a last, end-aligned window."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.size <= window:
        out = np.zeros((1, window), np.float32)
        out[0, : samples.size] = samples
        return out
    starts = list(range(0, samples.size - window + 1, max(1, hop)))
    if starts[-1] != samples.size - window:
        starts.append(samples.size - window)
    return np.stack([samples[s : s + window] for s in starts])


def classify_waveform(classifier: Classifier, samples: np.ndarray, rate: int, reduce: str = "mean",
                      all_windows: bool = False) -> tuple[np.ndarray, int]:
    """Probabilities for a whole recording. By default the clip is cut as the trainer cuts validation
    clips (edge.core.audio_windows.clip_windows: windows over the loud part, one centred window for a
    short sound), so `edge predict` agrees with `trainer evaluate`; `all_windows` covers the whole file
    end to end instead (what the microphone pipeline sees: every window, quiet ones too). The window
    scores are averaged (mean: the label that holds through the clip) or their per-class maximum taken
    (max: catches one short sound in a long clip)."""
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {', '.join(REDUCTIONS)}, got {reduce!r}")
    bundle = classifier.bundle
    samples = resample(samples, rate, bundle.sample_rate)
    if all_windows:
        windows = audio_windows(samples, bundle.window_samples, bundle.hop_samples)
    else:
        windows = clip_windows(samples, bundle.sample_rate, bundle.window_samples, bundle.hop_samples)
    probs = classifier.run(windows)
    reduced = probs.mean(axis=0) if reduce == "mean" else probs.max(axis=0)
    if reduce == "max":
        reduced = reduced / max(float(reduced.sum()), 1e-12)  # keep scores a distribution
    return reduced.astype(np.float32), len(windows)
