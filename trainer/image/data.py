"""Image decoding for training: the device's own decode and fit, plus a few augmented views.

Training pixels come from `edge.core.images` (the code the device runs), so the model learns from
exactly what the camera pipeline will feed it. Unreadable files are skipped with a warning and listed
in the report; they never stop a training run on their own.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge.core.images import RESIZE_POLICY, ImageDecodeError, decode_image, fit_image, model_min_side

log = logging.getLogger(__name__)

AUGMENT_VERSION = 2  # bump when the views change, so cached embeddings of old views are not reused


@dataclass
class DecodedImage:
    path: Path
    sha1: str  # of the file's bytes: the embedding cache key
    fitted: np.ndarray  # uint8 [H, W, 3] exactly as the device sees it
    square: np.ndarray  # the centred square at 1.5x the input size: the source of augmented views


def file_sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _crop_resize(rgb: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random square crop covering 70-100 % of the image's shorter side, anywhere in it."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    crop = max(1, int(round(side * rng.uniform(0.7, 1.0))))
    top = int(rng.integers(0, h - crop + 1))
    left = int(rng.integers(0, w - crop + 1))
    return fit_image(rgb[top : top + crop, left : left + crop], size, "stretch")


def _colour_jitter(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast and saturation each within +-20 %: lighting changes a camera sees."""
    x = rgb.astype(np.float32)
    x = x * rng.uniform(0.8, 1.2)
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.8, 1.2) + mean
    gray = x.mean(axis=2, keepdims=True)
    x = (x - gray) * rng.uniform(0.8, 1.2) + gray
    return np.clip(x, 0, 255).astype(np.uint8)


def augmented_views(rgb: np.ndarray, size: tuple[int, int], count: int, seed: int) -> list[np.ndarray]:
    """`count` views of one image: random crop, horizontal flip (every other view), colour jitter.
    Seeded per image so the same file always gives the same views (the cache relies on it)."""
    rng = np.random.default_rng(seed)
    views: list[np.ndarray] = []
    for i in range(count):
        view = _crop_resize(rgb, size, rng)
        if i % 2 == 0:
            view = np.ascontiguousarray(view[:, ::-1])
        views.append(_colour_jitter(view, rng))
    return views


def view_seed(sha1: str, seed: int) -> int:
    return int(sha1[:8], 16) ^ (seed * 7919)


def _decode_one(path: Path, size: tuple[int, int], policy: str) -> DecodedImage | ImageDecodeError:
    try:
        rgb = decode_image(path, min_side=model_min_side(size))
    except ImageDecodeError as exc:
        return exc
    square_size = (size[0] * 3 // 2, size[1] * 3 // 2)
    return DecodedImage(path=path, sha1=file_sha1(path), fitted=fit_image(rgb, size, policy), square=fit_image(rgb, square_size,
                                                                                                               RESIZE_POLICY))


def decode_images(
    paths: Iterable[Path],
    size: tuple[int, int],
    policy: str = RESIZE_POLICY,
    progress: bool = True,
    workers: int | None = None,
) -> tuple[dict[Path, DecodedImage], list[dict[str, str]]]:
    """Decodes every file (in threads: PIL and OpenCV release the GIL); returns the usable ones by path
    and the skipped ones as {path, reason}. Each file is decoded once: augmented views are cut later
    from the kept square, only for training files whose embeddings are not cached."""
    paths = list(paths)
    decoded: dict[Path, DecodedImage] = {}
    skipped: list[dict[str, str]] = []
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        results = pool.map(lambda p: _decode_one(p, size, policy), paths)
        for path, item in tqdm(zip(paths, results), total=len(paths), desc="reading images", unit="img", disable=not progress, leave=False):
            if isinstance(item, ImageDecodeError):
                log.warning("skipping unreadable image %s", item)
                skipped.append({"path": str(path), "reason": str(item)})
            else:
                decoded[path] = item
    if skipped:
        log.warning("%d of %d image(s) could not be read and were skipped (listed in the report)", len(skipped), len(paths))
    return decoded, skipped
