"""A built-in synthetic sound data set: whistles, claps and background noise, generated with numpy only.

Used by `trainer demo` (no microphone, no text-to-speech package needed) and its tests. Each class is
a folder of 16 kHz mono 16-bit WAV files, exactly the layout `trainer train --task audio` reads:

- `whistle`: a sine tone or sweep between 1 and 3 kHz with vibrato and a soft attack/release;
- `clap`: 1-3 short bursts of noise, each decaying within ~40 ms, like hand claps;
- `_background_noise_`: long recordings of brown or pink noise with a mains hum (the sound trainer
  windows them and mixes them into the other classes as augmentation).

Gains, timing and pitch are random; everything is deterministic for a given seed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from edge.core.audio import DEFAULT_SAMPLE_RATE
from edge.core.audio_windows import BACKGROUND_LABEL
from trainer.audio.noise import TILTS, coloured_noise

SAMPLE_RATE = DEFAULT_SAMPLE_RATE
BACKGROUND = BACKGROUND_LABEL
SOUND_CLASSES = ("whistle", "clap", BACKGROUND)


def _fade(n: int, rate: int, seconds: float = 0.02) -> np.ndarray:
    """Raised-cosine attack and release, so that clips do not start or end with a click (a click is a clap)."""
    ramp = max(1, min(n // 2, int(seconds * rate)))
    env = np.ones(n)
    edge = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
    env[:ramp], env[-ramp:] = edge, edge[::-1]
    return env


def _coloured_noise(rng: np.random.Generator, n: int, colour: str) -> np.ndarray:
    """Brown (1/f^2) or pink (1/f) noise (trainer.audio.noise), zero mean, unit peak."""
    x = coloured_noise(n, TILTS[colour], rng).astype(np.float64)
    x -= x.mean()
    return x / (np.abs(x).max() + 1e-9)


def whistle(rng: np.random.Generator, seconds: float = 1.0, rate: int = SAMPLE_RATE) -> np.ndarray:
    """A whistled tone: steady or sweeping between 1 and 3 kHz, with 4-7 Hz vibrato, over a little noise."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    length = rng.uniform(0.4, min(0.9, seconds))
    start = rng.uniform(0, seconds - length)
    active = (t >= start) & (t < start + length)
    f0, f1 = rng.uniform(1000, 3000, 2) if rng.random() < 0.5 else np.full(2, rng.uniform(1000, 3000))  # sweep or steady
    freq = f0 + (f1 - f0) * np.clip((t - start) / length, 0, 1)
    freq = freq * (1 + rng.uniform(0.005, 0.03) * np.sin(2 * np.pi * rng.uniform(4, 7) * t))
    phase = 2 * np.pi * np.cumsum(freq) / rate
    tone = np.sin(phase) + rng.uniform(0, 0.2) * np.sin(2 * phase)  # a little second harmonic, as real whistles have
    env = np.zeros(n)
    env[active] = _fade(int(active.sum()), rate, 0.05)
    return rng.uniform(0.2, 0.8) * tone * env / 1.2 + rng.uniform(0.001, 0.01) * rng.normal(size=n)


def clap(rng: np.random.Generator, seconds: float = 1.0, rate: int = SAMPLE_RATE) -> np.ndarray:
    """1-3 hand claps: bursts of band-limited noise, each decaying exponentially within tens of ms."""
    n = int(seconds * rate)
    out = rng.uniform(0.001, 0.01) * rng.normal(size=n)
    count = int(rng.integers(1, 4))
    gap = seconds / (count + 1)
    for k in range(count):
        at = int((gap * (k + 1) + rng.uniform(-0.15, 0.15) * gap) * rate)
        length = int(rng.uniform(0.08, 0.15) * rate)
        length = min(length, n - at)
        if length <= 0:
            continue
        burst = rng.normal(size=length)
        burst = np.convolve(burst, np.ones(int(rng.integers(1, 4))) / 2, mode="same")  # some low-passing: claps differ in brightness
        decay = np.exp(-np.arange(length) / (rng.uniform(0.008, 0.03) * rate))
        out[at : at + length] += rng.uniform(0.3, 0.9) * burst * decay / (np.abs(burst).max() + 1e-9)
    return out


def background(rng: np.random.Generator, seconds: float = 10.0, rate: int = SAMPLE_RATE) -> np.ndarray:
    """A room: brown or pink noise, a 50 or 60 Hz hum with harmonics, slowly changing level."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    noise = _coloured_noise(rng, n, "brown" if rng.random() < 0.5 else "pink")
    mains = 50.0 if rng.random() < 0.5 else 60.0
    hum = sum(rng.uniform(0, 0.5) / h * np.sin(2 * np.pi * mains * h * t + rng.uniform(0, 2 * np.pi)) for h in (1, 2, 3))
    level = 1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 2 * np.pi))
    return rng.uniform(0.03, 0.3) * (noise + hum) * level / 1.5


GENERATORS: dict[str, Callable[..., np.ndarray]] = {"whistle": whistle, "clap": clap, BACKGROUND: background}


def _write(path: Path, samples: np.ndarray) -> None:
    sf.write(str(path), np.clip(samples, -1, 1).astype(np.float32), SAMPLE_RATE, subtype="PCM_16")


def write_sounds_dataset(root: str | Path, per_class: int = 40, background_files: int = 6, background_seconds: float = 10.0,
                         seed: int = 0) -> Path:
    """root/<class>/<class>_NNN.wav: `per_class` 1 s clips of each sound, and `background_files` long
    background recordings; returns root."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for name in SOUND_CLASSES:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        if name == BACKGROUND:
            for i in range(background_files):
                _write(folder / f"background_{i:03d}.wav", background(rng, background_seconds))
        else:
            for i in range(per_class):
                _write(folder / f"{name}_{i:03d}.wav", GENERATORS[name](rng))
    return root


def render_sound_sequence(path: str | Path, order: tuple[str, ...] = SOUND_CLASSES, seconds_per_class: float = 3.0, seed: int = 7) -> Path:
    """One WAV playing each class in turn for `seconds_per_class` (new examples, not training clips), over a
    quiet room noise throughout, as a microphone would hear it; meant to be played in a loop."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    parts = []
    for name in order:
        if name == BACKGROUND:
            parts.append(background(rng, seconds_per_class))
            continue
        if name not in GENERATORS:
            raise ValueError(f"unknown sound {name!r}; expected one of {', '.join(SOUND_CLASSES)}")
        # Whole 1 s clips back to back: each one is what the model was trained on.
        clips = [GENERATORS[name](rng) for _ in range(max(1, int(round(seconds_per_class))))]
        parts.append(np.concatenate(clips))
    samples = np.concatenate(parts)
    samples = samples + 0.02 * _coloured_noise(rng, len(samples), "pink")
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, samples)
    return path
