"""`trainer train` for images: folders in, a checked ONNX bundle and a report out.

The steps, each in its own module: scan and split (edge.core.datasets), decode (trainer.image.data), embed once
with ONNX Runtime and cache (trainer.image.embeddings), train the head (trainer.head), export, check parity
and quantize (trainer.export), score both variants through ONNX Runtime (edge.core.evaluate), report.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import torch

from edge.core.bundle import VARIANT_FILES
from edge.core.datasets import DEFAULT_VAL_FRACTION, Sample, make_splits, scan_dataset
from edge.core.evaluate import classification_metrics
from edge.core.images import RESIZE_POLICY
from trainer.export import check_parity, export_onnx, ort_predict, quantize_int8, remove_stale
from trainer.head import HeadConfig, train_head
from trainer.image.backbones import DEFAULT_BACKBONE, ImageProbabilityModel, build_backbone
from trainer.image.data import AUGMENT_VERSION, DecodedImage, augmented_views, decode_images, view_seed
from trainer.image.embeddings import EmbeddingCache, OnnxEmbedder, default_cache_dir, embed_all, file_digest
from trainer.outputs import write_outputs

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


def train_image_classifier(opts: ImageTrainOptions) -> dict[str, Any]:
    """Runs the whole image pipeline; returns the report dictionary (also written to out_dir)."""
    started = time.perf_counter()
    timing: dict[str, float] = {}
    out_dir = Path(opts.out_dir)
    dataset = scan_dataset(opts.data_dir, "image")
    backbone = build_backbone(opts.backbone, opts.weights)
    size = backbone.input_size

    t = time.perf_counter()
    decoded, skipped = decode_images(dataset.all_files, size, RESIZE_POLICY, progress=opts.progress)
    splits = make_splits(dataset, [Path(s["path"]) for s in skipped], opts.val_split, opts.seed)
    timing["decode"] = time.perf_counter() - t

    t = time.perf_counter()
    frozen, trainable = backbone.split(opts.fine_tune)
    cache_root = Path(opts.cache_dir) if opts.cache_dir else default_cache_dir()
    key = f"{backbone.name}-{file_digest(backbone.weights)[:12]}-ft{opts.fine_tune}-torch{torch.__version__}-ort{onnxruntime.__version__}"
    example = torch.zeros((1, *size, 3), dtype=torch.uint8)
    embedder = OnnxEmbedder(frozen, example, cache_root, key)
    cache = EmbeddingCache(cache_root, key)
    x_train, y_train, hits_train = _embed_split(splits.train, decoded, embedder, cache, size, opts.augment, opts.seed, opts.progress)
    x_val, y_val, hits_val = _embed_split(splits.val, decoded, embedder, cache, size, 0, opts.seed, opts.progress)
    timing["embed"] = time.perf_counter() - t
    log.info("embedded %d training views and %d validation images (%d cache hits)", len(x_train), len(x_val), hits_train + hits_val)

    config = HeadConfig(epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr, seed=opts.seed)
    result = train_head(x_train, y_train, x_val, y_val, len(splits.labels), config, trainable if opts.fine_tune else None,
                        progress=opts.progress)
    timing["train"] = result.seconds

    t = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale(out_dir)
    model = ImageProbabilityModel(frozen, result.trainable, result.head).eval()
    fp32_path = out_dir / VARIANT_FILES["fp32"]
    export_onnx(model, example, fp32_path, input_name="image")
    val_images = np.stack([decoded[s.path].fitted for s in splits.val]) if splits.val else np.zeros((0, *size, 3), np.uint8)
    train_images = np.stack([decoded[s.path].fitted for s in splits.train])
    parity_inputs = val_images[:PARITY_IMAGES] if len(val_images) else train_images[:PARITY_IMAGES]
    log.debug("exported %s in %.1f s", fp32_path, time.perf_counter() - t)
    parity = check_parity(model, fp32_path, parity_inputs)
    timing["export"] = time.perf_counter() - t

    variants = {"fp32": fp32_path}
    quantization: dict[str, Any] = {}
    if opts.int8:
        t = time.perf_counter()
        rng = np.random.default_rng(opts.seed)
        pick = rng.permutation(len(train_images))[:CALIBRATION_IMAGES]
        quantization = quantize_int8(fp32_path, out_dir / VARIANT_FILES["int8"], train_images[np.sort(pick)])
        variants["int8"] = out_dir / VARIANT_FILES["int8"]
        timing["quantize"] = time.perf_counter() - t

    t = time.perf_counter()
    metrics: dict[str, Any] = {}
    test_metrics: dict[str, Any] = {}
    test_images = np.stack([decoded[s.path].fitted for s in splits.test]) if splits.test else None
    for variant, path in variants.items():
        probs = ort_predict(path, val_images) if len(val_images) else np.zeros((0, len(splits.labels)))
        metrics[variant] = classification_metrics([s.label for s in splits.val], probs.argmax(-1).tolist(), splits.labels)
        if test_images is not None:
            test_probs = ort_predict(path, test_images)
            test_metrics[variant] = classification_metrics([s.label for s in splits.test], test_probs.argmax(-1).tolist(), splits.labels)
    timing["evaluate"] = time.perf_counter() - t
    timing["total"] = time.perf_counter() - started

    counts = splits.counts()
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
        "counts": counts,
        "skipped": skipped,
        "training_views": int(len(x_train)),
        "embedding_cache_hits": hits_train + hits_val,
    }
    return write_outputs(
        out_dir,
        task="image",
        backbone=backbone.name,
        labels=splits.labels,
        input_spec={"name": "image", "dtype": "uint8", "shape": [-1, size[0], size[1], 3]},
        preprocessing={"resize": RESIZE_POLICY, "size": list(size), "color": "RGB", "normalization": backbone.normalization},
        metrics=metrics,
        test_metrics=test_metrics,
        data_summary=data_summary,
        settings=settings,
        history=result.history,
        parity=parity,
        quantization=quantization,
        timing=timing,
    )
