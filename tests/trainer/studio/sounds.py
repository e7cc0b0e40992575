"""Sounds made with numpy for the Studio's sound tests: a whistle-like tone with harmonics and a hiss of
band noise, and quiet room noise for `_background_noise_`; `bursts` repeats short ones over the room, as a
maker whistling or saying "shh" again and again into a microphone (the sound trainer's front end removes each
band's mean over the window, so a steady sound is heard by how it changes, not by its colour alone).
Written as WAV with soundfile, in whatever format a test asks for."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile

from trainer.audio.noise import coloured_noise

RATE = 16000


def tone(seconds: float, rate: int = RATE, pitch: float = 440.0, seed: int = 0) -> np.ndarray:
    """A steady tone (fundamental and two harmonics) with a little noise, at about -10 dBFS."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    wave = sum(np.sin(2 * np.pi * pitch * k * t + rng.uniform(0, 6.28)) / k for k in (1, 2, 3))
    return (0.2 * wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def hiss(seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """Noise of the 2-6 kHz band (a "shhh"), at about -14 dBFS."""
    n = int(seconds * rate)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / rate)
    spectrum[(freqs < 2000) | (freqs > 6000)] = 0
    wave = np.fft.irfft(spectrum, n)
    return (0.2 * wave / (np.sqrt(np.mean(wave**2)) + 1e-12)).astype(np.float32)


def room(seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """Quiet brown noise (about -40 dBFS): a room with nothing happening."""
    return (0.01 * coloured_noise(int(seconds * rate), 2.0, np.random.default_rng(seed))).astype(np.float32)


def bursts(sound: np.ndarray, seconds: float, rate: int = RATE, period: float = 0.6, seed: int = 0) -> np.ndarray:
    """`sound` (shorter than `period`, faded in and out over 20 ms) every `period` seconds over `room` noise:
    any one-second window holds at least one whole burst when `sound` lasts at most 0.4 s."""
    out = room(seconds, rate, seed)
    fade = np.minimum(1.0, np.minimum(np.arange(sound.size), np.arange(sound.size)[::-1]) / (0.02 * rate))
    step = int(period * rate)
    for start in range(0, out.size - sound.size, step):
        out[start : start + sound.size] += sound * fade
    return out.astype(np.float32)


def wav_bytes(samples: np.ndarray, rate: int = RATE, subtype: str = "PCM_16", channels: int = 1) -> bytes:
    data = np.repeat(samples[:, None], channels, axis=1) if channels > 1 else samples
    out = io.BytesIO()
    soundfile.write(out, data, rate, subtype=subtype, format="WAV")
    return out.getvalue()


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    path.write_bytes(wav_bytes(samples, rate))
    return path
