"""Scores a bundle on a folder data set through the device's own code path (torch-free).

`trainer evaluate` and the trainer's own validation metrics both come through here, so the numbers in
the manifest are what the device will do with the same files: same decoding, same crop and resize, same
ONNX Runtime session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.core.audio_windows import bundle_scorer as audio_scorer
from edge.core.bundle import Bundle, load_bundle
from edge.core.datasets import DatasetError, Sample, evaluation_samples, scan_dataset
from edge.core.images import ImageDecodeError, decode_image, fit_image, model_min_side
from edge.core.session import Classifier

log = logging.getLogger(__name__)


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class accuracy (= recall), precision, recall and the confusion matrix
    (rows: true class, columns: predicted class). Classes without examples are left out of per_class."""
    k = len(labels)
    matrix = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        matrix[int(t), int(p)] += 1
    n = int(matrix.sum())
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    diag = np.diag(matrix)
    per_class = {labels[i]: float(diag[i] / support[i]) for i in range(k) if support[i]}
    precision = {labels[i]: float(diag[i] / predicted[i]) if predicted[i] else 0.0 for i in range(k) if support[i] or predicted[i]}
    return {
        "accuracy": float(diag.sum() / n) if n else 0.0,
        "n": n,
        "labels": list(labels),
        "per_class": per_class,
        "precision": precision,
        "recall": dict(per_class),
        "support": {labels[i]: int(support[i]) for i in range(k)},
        "confusion_matrix": matrix.tolist(),
    }


def _image_batches(clf: Classifier, samples: Sequence[Sample], batch_size: int) -> tuple[list[int], list[np.ndarray], list[str]]:
    """Decodes and fits each file exactly as the camera pipeline does; unreadable files are skipped."""
    policy = str(clf.bundle.preprocessing.get("resize", "center_crop_square"))
    kept: list[int] = []
    probs: list[np.ndarray] = []
    skipped: list[str] = []
    batch: list[np.ndarray] = []
    batch_idx: list[int] = []

    def flush() -> None:
        if batch:
            probs.extend(clf.predict_images(np.stack(batch)))
            kept.extend(batch_idx)
            batch.clear()
            batch_idx.clear()

    for i, sample in enumerate(samples):
        try:
            batch.append(fit_image(decode_image(sample.path, min_side=model_min_side(clf.bundle.image_size)), clf.bundle.image_size,
                                   policy))
            batch_idx.append(i)
        except ImageDecodeError as exc:
            log.warning("skipping %s", exc)
            skipped.append(str(sample.path))
        if len(batch) >= batch_size:
            flush()
    flush()
    return kept, probs, skipped


# Per task: (classifier, samples, batch size) -> (indices of scored samples, probabilities, skipped files).
# The audio trainer registers its windowed scorer here.
SCORERS: dict[str, Callable[[Classifier, Sequence[Sample], int], tuple[list[int], list[np.ndarray], list[str]]]] = {
    "image": _image_batches,
    "audio": audio_scorer,  # windows as the manifest says, one answer per file (edge.core.audio_windows)
}


def score_samples(clf: Classifier, samples: Sequence[Sample], sample_labels: Sequence[str], batch_size: int = 16) -> dict[str, Any]:
    """Metrics of one loaded bundle variant on samples whose label indices refer to `sample_labels`."""
    task = clf.bundle.task
    if task not in SCORERS:
        raise DatasetError(f"evaluating {task} bundles is not supported yet")
    bundle_labels = list(clf.bundle.labels)
    unknown = sorted({sample_labels[s.label] for s in samples} - set(bundle_labels))
    if unknown:
        raise DatasetError(
            f"class folder(s) {', '.join(unknown)} are not labels of this bundle ({', '.join(bundle_labels)}); "
            f"rename the folders to the bundle's labels or remove them"
        )
    kept, probs, skipped = SCORERS[task](clf, samples, batch_size)
    y_true = [bundle_labels.index(sample_labels[samples[i].label]) for i in kept]
    y_pred = [int(np.argmax(p)) for p in probs]
    metrics = classification_metrics(y_true, y_pred, bundle_labels)
    metrics["skipped"] = skipped
    metrics["variant"] = clf.variant
    return metrics


def evaluate_bundle(bundle: str | Path | Bundle, data_dir: str | Path, variant: str = "fp32", threads: int = 0,
                    batch_size: int = 16) -> dict[str, Any]:
    """`trainer evaluate`: a bundle variant on a folder data set (class folders, or the val/test split)."""
    loaded = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    dataset = scan_dataset(data_dir, loaded.task)
    part, samples = evaluation_samples(dataset)
    clf = Classifier(loaded, variant=variant, threads=threads)
    metrics = score_samples(clf, samples, dataset.labels, batch_size)
    metrics["data"] = {"root": str(dataset.root), "part": part}
    metrics["bundle"] = str(loaded.path)
    return metrics
