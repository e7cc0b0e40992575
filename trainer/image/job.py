"""`trainer train` for images: folders in, a checked ONNX bundle and a report out.

The steps, each in its own module: scan and split (edge.core.datasets), decode (trainer.image.data), embed once
with ONNX Runtime and cache (trainer.image.embeddings), train the head (trainer.head), then the steps shared
with sound (trainer.finish): export, check parity and quantize (trainer.export), score both variants through
ONNX Runtime (edge.core.evaluate), write the bundle and the report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import torch

from edge.core.datasets import DEFAULT_VAL_FRACTION, Sample, make_splits, scan_dataset
from edge.core.evaluate import classification_metrics
from edge.core.images import RESIZE_POLICY
from trainer.class_order import ordered, read_order
from trainer.export import IMAGE_FLOAT_FIRST_CONVS, IMAGE_REDUCE_RANGE, ort_predict
from trainer.finish import Finish, KeepFloat, Timer, export_and_score, with_predictions
from trainer.head import HeadConfig, train_head
from trainer.image.backbones import DEFAULT_BACKBONE, ImageProbabilityModel, build_backbone
from trainer.image.data import AUGMENT_VERSION, DecodedImage, augmented_views, decode_images, view_seed
from trainer.image.embeddings import EmbeddingCache, OnnxEmbedder, default_cache_dir, embed_all, file_digest

log = logging.getLogger(__name__)

PARITY_IMAGES = 16  # enough to catch a broken export; eager PyTorch is the slow side
CALIBRATION_IMAGES = 128


@dataclass
class ImageTrainOptions:
    data_dir: Path
    out_dir: Path
    backbone: str = DEFAULT_BACKBONE
    weights: Path | None = None
    epochs: int = 50
    batch_size: int = 16
    lr: float = 0.001
    fine_tune: int = 0
    seed: int = 0
    val_split: float = DEFAULT_VAL_FRACTION
    int8: bool = True
    augment: int = 2  # extra augmented views per training image
    cache_dir: Path | None = None
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    # each epoch's accuracy and loss as it ends (trainer.head.train_head's `on_epoch`): the Studio's live curves
    on_epoch: Callable[[dict[str, float]], None] | None = None
    # the labels' order in the bundle (trainer.class_order); None: the folder's studio.json, else alphabetical
    class_order: tuple[str, ...] | None = None


def _embed_split(
    samples: list[Sample],
    decoded: dict[Path, DecodedImage],
    embed: OnnxEmbedder,
    cache: EmbeddingCache,
    size: tuple[int, int],
    views: int,
    seed: int,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Embeddings of each sample's device view, plus `views` augmented ones (0 for validation)."""
    items = [(decoded[s.path].sha1, (lambda s=s: decoded[s.path].fitted[None])) for s in samples]
    base, hits = embed_all(items, embed, cache, "base", desc="embedding", progress=progress)
    xs = list(base)
    ys = [np.full(len(b), s.label) for b, s in zip(base, samples)]
    if views:
        kind = f"aug{AUGMENT_VERSION}-v{views}-s{seed}"

        def make(sample: Sample) -> np.ndarray:
            return np.stack(augmented_views(decoded[sample.path].square, size, views, view_seed(decoded[sample.path].sha1, seed)))

        aug_items = [(decoded[s.path].sha1, (lambda s=s: make(s))) for s in samples]
        aug, aug_hits = embed_all(aug_items, embed, cache, kind, desc="embedding augmented views", progress=progress)
        hits += aug_hits
        xs += aug
        ys += [np.full(len(a), s.label) for a, s in zip(aug, samples)]
    if not xs:
        return np.zeros((0,)), np.zeros((0,), dtype=np.int64), hits
    return np.concatenate(xs), np.concatenate(ys).astype(np.int64), hits


def _scorer(decoded: dict[Path, DecodedImage], labels: tuple[str, ...],
            size: tuple[int, int]) -> Callable[[Path, list[Sample]], dict[str, Any]]:
    """Metrics of one exported variant on some samples' device views, through ONNX Runtime."""

    def score(path: Path, samples: list[Sample]) -> dict[str, Any]:
        images = _fitted(decoded, samples, size)
        probs = ort_predict(path, images) if len(images) else np.zeros((0, len(labels)))
        predicted = probs.argmax(-1).tolist()
        return with_predictions(classification_metrics([s.label for s in samples], predicted, labels), range(len(samples)), predicted)

    return score


def _fitted(decoded: dict[Path, DecodedImage], samples: list[Sample], size: tuple[int, int]) -> np.ndarray:
    return np.stack([decoded[s.path].fitted for s in samples]) if samples else np.zeros((0, *size, 3), np.uint8)


def train_image_classifier(opts: ImageTrainOptions) -> dict[str, Any]:
    """Runs the whole image pipeline; returns the report dictionary (also written to out_dir)."""
    timer = Timer()
    dataset = scan_dataset(opts.data_dir, "image")
    dataset.labels = ordered(dataset.labels, read_order(opts.data_dir) if opts.class_order is None else opts.class_order)
    backbone = build_backbone(opts.backbone, opts.weights)
    size = backbone.input_size

    with timer.step("decode"):
        decoded, skipped = decode_images(dataset.all_files, size, RESIZE_POLICY, progress=opts.progress)
        splits = make_splits(dataset, [Path(s["path"]) for s in skipped], opts.val_split, opts.seed)

    with timer.step("embed"):
        frozen, trainable = backbone.split(opts.fine_tune)
        cache_root = Path(opts.cache_dir) if opts.cache_dir else default_cache_dir()
        key = (f"{backbone.name}-{file_digest(backbone.weights)[:12]}-ft{opts.fine_tune}"
               f"-torch{torch.__version__}-ort{onnxruntime.__version__}")
        example = torch.zeros((1, *size, 3), dtype=torch.uint8)
        embedder = OnnxEmbedder(frozen, example, cache_root, key)
        cache = EmbeddingCache(cache_root, key)
        x_train, y_train, hits_train = _embed_split(splits.train, decoded, embedder, cache, size, opts.augment, opts.seed, opts.progress)
        x_val, y_val, hits_val = _embed_split(splits.val, decoded, embedder, cache, size, 0, opts.seed, opts.progress)
    log.info("embedded %d training views and %d validation images (%d cache hits)", len(x_train), len(x_val), hits_train + hits_val)

    config = HeadConfig(epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr, seed=opts.seed)
    result = train_head(x_train, y_train, x_val, y_val, len(splits.labels), config, trainable if opts.fine_tune else None,
                        progress=opts.progress, on_epoch=opts.on_epoch)
    timer.record("train", result.seconds)

    def parity_inputs() -> np.ndarray:
        return _fitted(decoded, (splits.val or splits.train)[:PARITY_IMAGES], size)

    finish = Finish(
        model=ImageProbabilityModel(frozen, result.trainable, result.head).eval(),
        example=example,
        input_name="image",
        parity_inputs=parity_inputs,
        calibration_pool=len(splits.train),
        calibration_size=CALIBRATION_IMAGES,
        calibration=lambda rows: _fitted(decoded, [splits.train[i] for i in rows], size),
        score=_scorer(decoded, splits.labels, size),
        keep_float=KeepFloat(first_convs=IMAGE_FLOAT_FIRST_CONVS, reduce_range=IMAGE_REDUCE_RANGE),
    )
    settings = {
        "backbone": backbone.name,
        "weights": backbone.weights,
        "epochs": opts.epochs,
        "batch_size": opts.batch_size,
        "lr": opts.lr,
        "fine_tune": opts.fine_tune,
        "seed": opts.seed,
        "val_split": opts.val_split,
        "augment_views": opts.augment,
        "head": result.config,
        **opts.extra,
    }
    data_summary = {
        "root": str(dataset.root),
        "layout": dataset.layout,
        "counts": splits.counts(),
        "skipped": skipped,
        "training_views": int(len(x_train)),
        "embedding_cache_hits": hits_train + hits_val,
    }
    return export_and_score(Path(opts.out_dir), finish, splits, timer, int8=opts.int8, seed=opts.seed, task="image", backbone=backbone.name,
                            input_spec={"name": "image", "dtype": "uint8", "shape": [-1, size[0], size[1], 3]},
                            preprocessing={"resize": RESIZE_POLICY, "size": list(size), "color": "RGB",
                                           "normalization": backbone.normalization},
                            data_summary=data_summary, settings=settings, history=result.history)
