"""Benchmark image data built from real video: frames of the ASL gesture clips in ../shared/fixtures.

No real photo set may be downloaded here, so each clip (one sign each, filmed with a webcam) becomes a
class; its frames are the examples. Frames of one clip are near-duplicates, so the split is temporal:
the first 70 % of each clip trains, the last 30 % validates (a random split would leak).
"""

from __future__ import annotations

from pathlib import Path

import cv2

ASL_DIR = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "video" / "asl_gestures"


def build_asl_dataset(out: Path, classes: tuple[str, ...] = ("again", "book", "sister", "walk"), every: int = 1,
                      train_fraction: float = 0.7) -> Path:
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


def build_phone_sized(out: Path, pairs: dict[str, tuple[str, ...]] | None = None, size: tuple[int, int] = (4032, 3024),
                      every: int = 1) -> Path:
    """A two-class set of phone-camera-sized JPEGs (12 MP by default) from the clips' frames, to time
    decoding the way a maker's photo folder costs it. Classes merge signs: a = again+book, b = sister+walk."""
    pairs = pairs or {"a": ("again", "book"), "b": ("sister", "walk")}
    frames_dir = build_asl_dataset(out / "_frames", tuple(s for signs in pairs.values() for s in signs), every=every)
    for split in ("train", "val"):
        for label, signs in pairs.items():
            folder = out / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for sign in signs:
                for frame in sorted((frames_dir / split / sign).glob("*.jpg")):
                    big = cv2.resize(cv2.imread(str(frame)), size, interpolation=cv2.INTER_CUBIC)
                    cv2.imwrite(str(folder / frame.name), big, [cv2.IMWRITE_JPEG_QUALITY, 90])
    import shutil

    shutil.rmtree(frames_dir)
    return out
