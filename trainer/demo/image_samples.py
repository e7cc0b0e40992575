"""A built-in synthetic image data set: procedural shapes with random colours, positions and backgrounds.

Used by `trainer demo`, the tests and the benchmark, and reusable by the daemon demo (e.g. to render a
sample video). Deterministic for a given seed.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

SHAPES = ("circle", "square", "triangle")


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random two-colour gradient with sensor-like noise."""
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0.0, 1.0, size)[:, None, None]
    img = (a * (1 - t) + b * t) * np.ones((size, size, 3))
    if rng.random() < 0.5:
        img = img.transpose(1, 0, 2)
    img += rng.normal(0, 8, img.shape)
    return np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8))


def _contrasting(rng: np.random.Generator, background: np.ndarray) -> tuple[int, int, int]:
    mean = background.reshape(-1, 3).mean(axis=0)
    while True:
        colour = rng.integers(0, 256, 3)
        if np.abs(colour - mean).sum() > 180:
            return int(colour[0]), int(colour[1]), int(colour[2])


def draw_shape(shape: str, rng: np.random.Generator, size: int = 160) -> np.ndarray:
    """One RGB uint8 image of `shape` at a random place, size, angle and colour."""
    img = _background(rng, size)
    colour = _contrasting(rng, img)
    radius = int(rng.uniform(0.18, 0.35) * size)
    cx, cy = (int(rng.integers(radius, size - radius)) for _ in range(2))
    if shape == "circle":
        cv2.circle(img, (cx, cy), radius, colour, -1, lineType=cv2.LINE_AA)
    elif shape in ("square", "triangle"):
        corners = 4 if shape == "square" else 3
        angle = rng.uniform(0, 2 * np.pi)
        pts = np.array(
            [(cx + radius * np.cos(angle + 2 * np.pi * k / corners),
              cy + radius * np.sin(angle + 2 * np.pi * k / corners)) for k in range(corners)],
            dtype=np.int32,
        )
        cv2.fillPoly(img, [pts], colour, lineType=cv2.LINE_AA)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}")
    return img


def write_shapes_dataset(root: str | Path, per_class: int = 30, seed: int = 0, size: int = 160, shapes: tuple[str, ...] = SHAPES) -> Path:
    """root/<shape>/<shape>_NNN.png for each shape; returns root."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for shape in shapes:
        folder = root / shape
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            rgb = draw_shape(shape, rng, size)
            cv2.imwrite(str(folder / f"{shape}_{i:03d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return root
