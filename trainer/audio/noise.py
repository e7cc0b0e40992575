"""Coloured noise, numpy only (no torch): the stand-in room the sound trainer mixes in when a data set has no
background recordings, the demo's background class, and the noise the tests' synthetic speech is recorded in."""

from __future__ import annotations

import numpy as np

TILTS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power falls as 1/f^tilt


def coloured_noise(n: int, tilt: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS float32 noise whose power falls as 1/f^tilt (0 white, 1 pink, 2 brown; see TILTS), shaped in
    the frequency domain from `rng`'s standard normal samples."""
    if n == 0:
        return np.zeros(0, np.float32)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.arange(spectrum.size, dtype=np.float64)
    freqs[0] = 1.0
    spectrum /= freqs ** (tilt / 2)
    noise = np.fft.irfft(spectrum, n)
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-12)).astype(np.float32)
