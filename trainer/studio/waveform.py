"""A sound sample's waveform as a small SVG for the class's strip of clips: a page of 60 one-second clips
fetches 60 of these (a few hundred bytes each) instead of 2 MB of WAV files to draw from."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.core.audio import load_audio

COLUMNS = 80  # bars across; the page shows them 2 px apart
WIDTH, HEIGHT = 160, 48
COLOUR = "#1a73e8"  # the page's accent (studio.css --accent)


def peaks(samples: np.ndarray, columns: int = COLUMNS) -> np.ndarray:
    """[columns, 2]: the lowest and highest sample of each of `columns` equal stretches of the clip, in -1..1.
    A clip shorter than `columns` samples gives one column per sample."""
    samples = np.clip(np.asarray(samples, np.float32), -1.0, 1.0)
    if samples.size == 0:
        return np.zeros((0, 2), np.float32)
    edges = np.linspace(0, samples.size, min(columns, samples.size) + 1).astype(np.int64)
    return np.array([[samples[a:b].min(), samples[a:b].max()] for a, b in zip(edges[:-1], edges[1:])], np.float32)


def waveform_svg(path: Path) -> bytes:
    """The file's waveform (full scale: a quiet recording looks quiet) as an SVG of vertical bars.
    Raises edge.core.audio.AudioDecodeError for a file that is not readable sound."""
    samples, _ = load_audio(path)
    cols = peaks(samples)
    mid = HEIGHT / 2
    step = WIDTH / max(1, len(cols))
    # one bar per column, at least 1 px high so that silence still draws a line
    bars = " ".join(f"M{(i + 0.5) * step:.1f} {mid - max(hi * mid, 0.5):.1f}V{mid - min(lo * mid, -0.5):.1f}"
                    for i, (lo, hi) in enumerate(cols))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}">'
            f'<path d="{bars}" stroke="{COLOUR}" stroke-width="{max(1.0, step * 0.6):.1f}" fill="none"/></svg>').encode()
