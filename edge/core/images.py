"""Image decoding and the one resize policy shared by trainer and device.

The trainer embeds exactly the arrays this module produces, and the device feeds the model exactly
the same, so a photo gives the same prediction on the workstation and on the Pi.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import IO

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif")
RESIZE_POLICY = "center_crop_square"  # as Teachable Machine: largest centred square, then resize


class ImageDecodeError(ValueError):
    """A file that is not a readable image."""


def decode_image(path: str | Path | IO[bytes], min_side: int | None = None) -> np.ndarray:
    """Reads an image file (or one in memory: the Studio's Preview frames) as RGB uint8 [H, W, 3]: EXIF
    orientation applied, GIFs by their first frame, grayscale expanded, transparency composited on white.

    With `min_side`, a JPEG may be decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) as long as
    both sides stay at least `min_side`: a 12-megapixel phone photo then decodes about ten times faster,
    which is what makes training on a few hundred photos take seconds instead of minutes. Trainer and
    `trainer evaluate` pass the same value (see `model_min_side`), so they see the same pixels."""
    # Pillow is imported here, not at the top: the daemon only fits camera frames (OpenCV) and never needs it.
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's DecompressionBomb/EXIF chatter is not the user's problem
            with Image.open(path) as img:
                if min_side and img.format == "JPEG":
                    img.draft(None, (int(min_side), int(min_side)))
                img.seek(0)
                img.load()  # forces a full decode so truncated files fail here, not later
                img = ImageOps.exif_transpose(img)
                if img.mode in ("RGBA", "LA", "P", "PA") and ("transparency" in img.info or img.mode.endswith("A")):
                    rgba = img.convert("RGBA")
                    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                    img = Image.alpha_composite(background, rgba)
                rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"{path}: cannot read as an image ({exc.__class__.__name__}: {exc})") from exc
    if rgb.ndim != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ImageDecodeError(f"{path}: image has no pixels")
    return rgb


def model_min_side(size: tuple[int, int]) -> int:
    """The `decode_image(min_side=...)` for a model input of (height, width): twice the input, so the
    final downscale still averages over several source pixels."""
    return 2 * max(size)


def fit_image(rgb: np.ndarray, size: tuple[int, int], policy: str = RESIZE_POLICY) -> np.ndarray:
    """Crops and resizes an RGB uint8 image to (height, width) under the bundle's policy."""
    height, width = size
    if policy == "center_crop_square":
        h, w = rgb.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        rgb = rgb[top : top + side, left : left + side]
    elif policy != "stretch":
        raise ValueError(f"unknown resize policy {policy!r}; expected 'center_crop_square' or 'stretch'")
    shrinking = rgb.shape[0] > height or rgb.shape[1] > width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(rgb), (width, height), interpolation=interpolation)
    return np.ascontiguousarray(out, dtype=np.uint8)


def bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    """OpenCV frames are BGR; models take RGB."""
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
