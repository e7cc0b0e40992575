"""One file through a bundle: what `edge predict` does, kept out of the CLI layer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.core.audio import AUDIO_SUFFIXES, AudioDecodeError, load_audio, resample
from edge.core.bundle import BundleError, load_bundle
from edge.core.images import ImageDecodeError, decode_image, model_min_side
from edge.core.session import Classifier

REDUCTIONS = ("mean", "max")


class PredictError(ValueError):
    """A file that cannot be classified by this bundle; the message says why and what to do."""


@dataclass
class Prediction:
    label: str
    confidence: float
    scores: dict[str, float]
    file: str
    bundle: str
    variant: str
    windows: int = 1  # sound files: how many windows were classified
    reduce: str = "single"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "bundle": self.bundle,
            "variant": self.variant,
            "label": self.label,
            "confidence": self.confidence,
            "scores": self.scores,
            "windows": self.windows,
            "reduce": self.reduce,
        }


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
    end to end instead. The window scores are averaged (mean: the label that holds through the clip) or
    their per-class maximum taken (max: catches one short sound in a long clip)."""
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {', '.join(REDUCTIONS)}, got {reduce!r}")
    bundle = classifier.bundle
    samples = resample(samples, rate, bundle.sample_rate)
    if all_windows:
        windows = audio_windows(samples, bundle.window_samples, bundle.hop_samples)
    else:
        from edge.core.audio_windows import clip_windows

        windows = clip_windows(samples, bundle.sample_rate, bundle.window_samples, bundle.hop_samples)
    probs = classifier.run(windows)
    reduced = probs.mean(axis=0) if reduce == "mean" else probs.max(axis=0)
    if reduce == "max":
        reduced = reduced / max(float(reduced.sum()), 1e-12)  # keep scores a distribution
    return reduced.astype(np.float32), len(windows)


def predict_file(
    bundle_path: str | Path,
    file: str | Path,
    variant: str = "fp32",
    reduce: str = "mean",
    threads: int = 0,
    providers: Sequence[str] | None = None,
    all_windows: bool = False,
) -> Prediction:
    """Classifies one image or sound file. Raises BundleError or PredictError with a fix."""
    path = Path(file)
    if not path.is_file():
        raise PredictError(f"{path}: no such file")
    bundle = load_bundle(bundle_path)
    classifier = Classifier(bundle, variant=variant, threads=threads, providers=providers)
    windows, how = 1, "single"
    if bundle.task == "image":
        if path.suffix.lower() in AUDIO_SUFFIXES:
            raise PredictError(f"{path}: a sound file, but {bundle.path} is an image model; pass a photo (JPEG, "
                               "PNG ...) or an audio bundle")
        try:
            rgb = decode_image(path, min_side=model_min_side(bundle.image_size))  # the trainer decodes the same way
        except ImageDecodeError as exc:
            raise PredictError(f"{exc}; pass a JPEG, PNG, BMP, WebP or GIF file") from exc
        probs = classifier.predict_image(rgb)
    else:
        try:
            samples, rate = load_audio(path)
        except AudioDecodeError as exc:
            hint = " (this looks like an image; pass a sound file or an image bundle)" if path.suffix.lower() in (".jpg", ".jpeg",
                                                                                                                  ".png") else ""
            raise PredictError(f"{exc}{hint}") from exc
        probs, windows = classify_waveform(classifier, samples, rate, reduce, all_windows)
        how = reduce
    best = int(np.argmax(probs))
    return Prediction(
        label=bundle.labels[best],
        confidence=float(probs[best]),
        scores={label: float(p) for label, p in zip(bundle.labels, probs)},
        file=str(path),
        bundle=str(bundle.path),
        variant=variant,
        windows=windows,
        reduce=how,
    )


__all__ = ["Prediction", "PredictError", "BundleError", "predict_file", "classify_waveform", "audio_windows"]
