"""Torch-free audio helpers shared by the trainer, `edge predict` and the microphone pipeline."""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga")


class AudioDecodeError(ValueError):
    """A file that is not readable audio."""


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Reads WAV/FLAC/OGG as mono float32 in [-1, 1] at the file's own rate (channels averaged)."""
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError ...
        raise AudioDecodeError(f"{path}: cannot read as audio ({exc}); supported: WAV, FLAC, OGG") from exc
    if data.size == 0:
        raise AudioDecodeError(f"{path}: the file holds no samples")
    return np.ascontiguousarray(data.mean(axis=1), dtype=np.float32), int(rate)


def resample(samples: np.ndarray, rate_in: int, rate_out: int, half_width: int = 16) -> np.ndarray:
    """Band-limited resampling by windowed-sinc interpolation (anti-aliased when downsampling).

    Plain numpy so the device needs no scipy; a 1 s window costs well under a millisecond."""
    samples = np.asarray(samples, dtype=np.float32)
    if rate_in == rate_out or samples.size == 0:
        return samples.copy()
    g = gcd(rate_in, rate_out)
    up, down = rate_out // g, rate_in // g
    n_out = int(np.ceil(samples.size * up / down))
    cutoff = min(1.0, up / down)  # relative to the input Nyquist
    positions = np.arange(n_out, dtype=np.float64) * (down / up)
    base = np.floor(positions).astype(np.int64)
    taps = np.arange(-half_width + 1, half_width + 1, dtype=np.int64)
    index = base[:, None] + taps[None, :]
    distance = positions[:, None] - index
    window = 0.5 + 0.5 * np.cos(np.pi * np.clip(distance / half_width, -1.0, 1.0))  # Hann
    kernel = cutoff * np.sinc(cutoff * distance) * window
    valid = (index >= 0) & (index < samples.size)
    gathered = np.where(valid, samples[np.clip(index, 0, samples.size - 1)], 0.0)
    return (gathered * kernel).sum(axis=1).astype(np.float32)
