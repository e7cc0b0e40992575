"""One file through a bundle: what `edge predict` does, kept out of the CLI layer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.core.audio import AUDIO_SUFFIXES, AudioDecodeError, load_audio
from edge.core.bundle import BundleError, load_bundle
from edge.core.classify import REDUCTIONS, audio_windows, classify_waveform
from edge.core.images import ImageDecodeError, decode_image, model_min_side
from edge.core.session import Classifier


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


__all__ = ["REDUCTIONS", "Prediction", "PredictError", "BundleError", "predict_file", "classify_waveform", "audio_windows"]
