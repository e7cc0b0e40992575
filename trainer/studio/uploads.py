"""One uploaded image (a file or a webcam frame) checked and saved into a class folder.

The bytes are decoded with the device's own image code (edge.core.images) before they are kept, so what the
trainer later reads is known to be an image; the saved name is made here, never taken from the browser."""

from __future__ import annotations

import io
import os
import secrets
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from edge.core.images import ImageDecodeError, decode_image
from trainer.studio.limits import StudioLimits
from trainer.studio.names import safe_file_stem
from trainer.studio.projects import Project, ProjectError, ProjectStore

# the formats `trainer train` reads (edge.core.images.IMAGE_SUFFIXES), by what Pillow finds in the bytes
SUFFIX_BY_FORMAT = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "WEBP": ".webp", "GIF": ".gif"}


def save_image(store: ProjectStore, project: Project, class_name: str, filename: str, data: bytes) -> str:
    """Checks `data` is an image the trainer reads and writes it to the class folder; returns the saved name."""
    limits: StudioLimits = store.limits
    if len(data) > limits.max_upload_bytes:
        raise ProjectError(f"{filename!r} is {len(data)} bytes; one image may be at most {limits.max_upload_bytes} bytes", 413)
    if not data:
        raise ProjectError(f"{filename!r} is empty", 400)
    folder = project.class_dir(class_name)
    if len(project.samples(class_name)) >= limits.max_samples_per_class:
        raise ProjectError(f"class {class_name!r} already holds {limits.max_samples_per_class} samples, the most one class may", 409)
    # a hidden name while it is checked: neither `trainer train` nor a listing sees a half-written file
    tmp = folder / f".upload-{secrets.token_hex(8)}"
    try:
        try:
            tmp.write_bytes(data)
        except FileNotFoundError:  # the class folder went away meanwhile
            raise ProjectError(f"project {project.name!r} has no class {class_name!r}", 404) from None
        try:
            with Image.open(tmp) as img:  # reads the header only: the size is known before any decoding
                kind, (width, height) = img.format or "", img.size
            if width * height > limits.max_pixels:
                raise ProjectError(f"{filename!r} is {width}x{height} pixels; one image may have at most "
                                   f"{limits.max_pixels // 1_000_000} megapixels", 413)
            decode_image(tmp)
        except (ImageDecodeError, UnidentifiedImageError, OSError, Image.DecompressionBombError):
            raise ProjectError(f"{filename!r} is not an image the trainer can read (JPEG, PNG, BMP, WebP or GIF)", 415) from None
        suffix = SUFFIX_BY_FORMAT.get(kind)
        if suffix is None:
            raise ProjectError(f"{filename!r} is a {kind} image; the trainer reads JPEG, PNG, BMP, WebP or GIF", 415)
        name = f"{safe_file_stem(filename)}_{secrets.token_hex(4)}{suffix}"
        target = folder / name
        with store.lock:
            if not folder.is_dir():  # the class was deleted or renamed meanwhile
                raise ProjectError(f"project {project.name!r} has no class {class_name!r}", 404)
            os.link(tmp, target)  # fails rather than overwrite an existing sample
        return name
    finally:
        tmp.unlink(missing_ok=True)



THUMB_SIDE = 112  # twice the page's 56 px thumbnails, for sharp screens


def thumbnail(path: Path) -> bytes:
    """A small JPEG of a sample for the class's thumbnail strip: a phone photo is megabytes, its thumbnail
    a few KB, which matters with a class of browsers on one Wi-Fi."""
    image = Image.fromarray(decode_image(path, min_side=THUMB_SIDE))
    image.thumbnail((THUMB_SIDE, THUMB_SIDE))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()
