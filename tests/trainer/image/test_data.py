"""Decoding for training: bad files are skipped with a warning naming them; EXIF, GIF, RGBA, grayscale."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer.image.data import augmented_views, decode_images

SIZE = (32, 32)


def _jpeg_bytes(colour: tuple[int, int, int] = (10, 200, 10), size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def test_truncated_jpeg_and_text_named_jpg_are_skipped_with_warnings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = tmp_path / "good.jpg"
    good.write_bytes(_jpeg_bytes())
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(_jpeg_bytes()[:300])
    text = tmp_path / "notes.jpg"
    text.write_text("this is a shopping list, not a photo\n")
    with caplog.at_level(logging.WARNING):
        decoded, skipped = decode_images([good, truncated, text], SIZE, progress=False)
    assert list(decoded) == [good]
    assert decoded[good].fitted.shape == (32, 32, 3) and decoded[good].fitted.dtype == np.uint8
    assert [s["path"] for s in skipped] == [str(truncated), str(text)]
    assert "truncated.jpg" in caplog.text and "notes.jpg" in caplog.text
    assert "2 of 3 image(s) could not be read" in caplog.text


def test_exif_orientation_is_honoured(tmp_path: Path) -> None:
    # A landscape-stored photo with EXIF orientation 6 (rotate 90° clockwise) is portrait when shown.
    img = Image.new("RGB", (80, 40), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 40, 40))  # left half red as stored
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    img.save(path, "JPEG", exif=exif.tobytes(), quality=95)
    decoded, _ = decode_images([path], (80, 40), policy="stretch", progress=False)
    shown = decoded[path].fitted  # (H=80, W=40): portrait, red on top after a clockwise turn
    assert shown[5, 20, 0] > 200 and shown[5, 20, 2] < 60
    assert shown[75, 20, 2] > 200 and shown[75, 20, 0] < 60


def test_gif_first_frame_rgba_and_grayscale(tmp_path: Path) -> None:
    gif = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (20, 20), (255, 0, 0)), Image.new("RGB", (20, 20), (0, 0, 255))]
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    rgba = tmp_path / "clear.png"
    Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(rgba)
    gray = tmp_path / "gray.png"
    Image.new("L", (20, 20), 90).save(gray)
    decoded, skipped = decode_images([gif, rgba, gray], SIZE, progress=False)
    assert not skipped
    assert tuple(decoded[gif].fitted[16, 16]) == (255, 0, 0)  # the first frame, not the last
    assert tuple(decoded[rgba].fitted[16, 16]) == (255, 255, 255)  # transparency shown on white
    assert decoded[gray].fitted.shape == (32, 32, 3) and tuple(decoded[gray].fitted[16, 16]) == (90, 90, 90)


def test_augmented_views_are_deterministic_per_seed_and_vary() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    a = augmented_views(rgb, SIZE, 3, seed=5)
    b = augmented_views(rgb, SIZE, 3, seed=5)
    c = augmented_views(rgb, SIZE, 3, seed=6)
    assert len(a) == 3 and all(v.shape == (32, 32, 3) and v.dtype == np.uint8 for v in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert not np.array_equal(a[0], a[1])
