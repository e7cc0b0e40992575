"""Benchmark image data built from real video: frames of the ASL gesture clips in ../shared/fixtures.

No real photo set may be downloaded here, so each clip (one sign each, filmed with a webcam) becomes a
class; its frames are the examples. Frames of one clip are near-duplicates, so the split is temporal:
the first 70 % of each clip trains, the last 30 % validates (a random split would leak).
"""

from __future__ import annotations

from pathlib import Path

import cv2

ASL_DIR = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "video" / "asl_gestures"


def build_asl_dataset(out: Path, classes: tuple[str, ...] = ("again", "book", "sister", "walk"), every: int = 1, train_fraction: float = 0.7) -> Path:
    """out/train/<sign>/*.jpg and out/val/<sign>/*.jpg; returns out."""
    if not ASL_DIR.is_dir():
        raise SystemExit(f"{ASL_DIR}: the shared fixtures are missing; they live beside the checkout")
    for sign in classes:
        cap = cv2.VideoCapture(str(ASL_DIR / f"{sign}.mkv"))
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
        cap.release()
        frames = frames[::every]
        cut = int(len(frames) * train_fraction)
        for i, frame in enumerate(frames):
            folder = out / ("train" if i < cut else "val") / sign
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{sign}_{i:03d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return out
