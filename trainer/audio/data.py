"""Sound files -> training windows, and the augmentation the sound trainer applies in training only.

Files are decoded with the device's own code (`edge.core.audio`: soundfile, mono, numpy resampler)
and cut with `edge.core.audio_windows`, so training, `trainer evaluate` and the microphone pipeline
see the same samples. Unreadable, too-short and silent files are skipped with a warning naming the
file and listed in the report; they never stop a run on their own.

Augmentation (waveform, per batch): time shift within what keeps the loud part in the window, speed
change (0.85-1.15x: pitch and formants move together, as between people), gain, and background mixed
in at a random signal-to-noise ratio from `_background_noise_` recordings (coloured noise when the data
set has none). SpecAugment-style time and frequency masks are applied to the log-mel features.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import torch
from tqdm import tqdm

from edge.core.audio import DEFAULT_SAMPLE_RATE, AudioDecodeError
from edge.core.audio_windows import BACKGROUND_LABEL, ClipRejected, cut, is_background_path, load_clip, plan_windows
from edge.core.datasets import Sample
from trainer.audio.noise import coloured_noise

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AudioSettings:
    sample_rate: int = DEFAULT_SAMPLE_RATE
    window_seconds: float = 1.0
    hop_seconds: float = 0.5

    @property
    def window(self) -> int:
        return int(round(self.sample_rate * self.window_seconds))

    @property
    def hop(self) -> int:
        return max(1, int(round(self.sample_rate * self.hop_seconds)))


@dataclass
class WindowSet:
    """Windows of one split: each is (clip, start, allowed shift range, label)."""

    clips: list[np.ndarray] = field(default_factory=list)
    clip_paths: list[Path] = field(default_factory=list)
    clip_index: list[int] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    shift_min: list[int] = field(default_factory=list)
    shift_max: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.starts)

    def windows(self, indices: Sequence[int] | np.ndarray, window: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """[n, window] float32; with `rng`, each window is shifted at random within its allowed range."""
        out = np.empty((len(indices), window), np.float32)
        for row, i in enumerate(indices):
            start = self.starts[i]
            if rng is not None and self.shift_max[i] > self.shift_min[i]:
                start += int(rng.integers(self.shift_min[i], self.shift_max[i] + 1))
            out[row] = cut(self.clips[self.clip_index[i]], start, window)
        return out


def decode_clips(paths: Sequence[Path], rate: int, progress: bool = True) -> tuple[dict[Path, np.ndarray], list[dict[str, str]]]:
    """Every file as mono float32 at `rate`; the unusable ones come back as {path, reason} (and a warning)."""
    clips: dict[Path, np.ndarray] = {}
    skipped: list[dict[str, str]] = []
    for path in tqdm(list(paths), desc="reading sounds", unit="file", disable=not progress, leave=False):
        try:
            clips[path] = load_clip(path, rate, background=is_background_path(path))
        except (AudioDecodeError, ClipRejected) as exc:
            log.warning("skipping %s", exc)
            skipped.append({"path": str(path), "reason": str(exc)})
    if skipped:
        log.warning("%d of %d sound file(s) were skipped (listed in the report)", len(skipped), len(clips) + len(skipped))
    return clips, skipped


def build_windows(samples: Sequence[Sample], clips: dict[Path, np.ndarray], settings: AudioSettings) -> WindowSet:
    """The windows of one split's (decoded) files, cut as `edge.core.audio_windows` plans them."""
    windows = WindowSet()
    for sample in samples:
        clip = clips.get(sample.path)
        if clip is None:
            continue
        plan = plan_windows(clip, settings.sample_rate, settings.window, settings.hop, background=is_background_path(sample.path))
        index = len(windows.clips)
        windows.clips.append(clip)
        windows.clip_paths.append(sample.path)
        for start, lo, hi in zip(plan.starts, plan.shift_min, plan.shift_max):
            windows.clip_index.append(index)
            windows.starts.append(int(start))
            windows.shift_min.append(int(lo))
            windows.shift_max.append(int(hi))
            windows.labels.append(sample.label)
    return windows


@dataclass(frozen=True)
class Augment:
    """Training-only waveform and feature augmentation; `Augment.off()` disables all of it."""

    shift: bool = True
    speed: tuple[float, float] = (0.85, 1.15)
    freq_warp: tuple[float, float] = (1.0, 1.0)  # stretch of the mel axis alone (vocal tract length)
    gain_db: tuple[float, float] = (-12.0, 6.0)
    mix_probability: float = 0.8
    snr_db: tuple[float, float] = (0.0, 30.0)
    time_masks: int = 2
    time_mask_frames: int = 10
    freq_masks: int = 2
    freq_mask_bins: int = 5

    @staticmethod
    def off() -> Augment:
        return Augment(shift=False, speed=(1.0, 1.0), freq_warp=(1.0, 1.0), gain_db=(0.0, 0.0), mix_probability=0.0, time_masks=0,
                       freq_masks=0)


def noise_pool(windows: WindowSet, background_label: int | None, rate: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """What to mix into training windows: the `_background_noise_` recordings concatenated, or, when
    the data set has none, 20 s of white/pink/brown noise (a stand-in room). Returns (pool, source)."""
    if background_label is not None:
        clips = sorted({c for c, lab in zip(windows.clip_index, windows.labels) if lab == background_label})
        parts = [windows.clips[i] for i in clips if float(np.abs(windows.clips[i]).max(initial=0.0)) > 0]
        if parts:
            pool = np.concatenate(parts)
            return (pool if pool.size >= 2 * rate else np.tile(pool, 2 * rate // pool.size + 1)), BACKGROUND_LABEL
    parts = [coloured_noise(5 * rate, tilt, rng) for tilt in (0.0, 1.0, 1.5, 2.0)]
    return np.concatenate(parts), "synthetic coloured noise"


def augment_waveforms(batch: np.ndarray, is_background: np.ndarray, pool: np.ndarray, aug: Augment,
                      rng: np.random.Generator) -> torch.Tensor:
    """Speed, gain and background mixing on a [n, window] batch (shift is applied when cutting)."""
    n, window = batch.shape
    out = torch.from_numpy(batch)
    lo, hi = aug.speed
    if hi > lo:
        rows = []
        for i in range(n):
            factor = float(rng.uniform(lo, hi))
            length = max(8, int(round(window / factor)))
            stretched = torch.nn.functional.interpolate(out[i][None, None], size=length, mode="linear", align_corners=False)[0, 0]
            if length >= window:  # faster speech fills less; slower spills over: keep the middle
                offset = (length - window) // 2
                rows.append(stretched[offset : offset + window])
            else:
                pad = window - length
                rows.append(torch.nn.functional.pad(stretched, (pad // 2, pad - pad // 2)))
        out = torch.stack(rows)
    gains = cast(np.ndarray, 10 ** (rng.uniform(*aug.gain_db, size=n) / 20))  # int ** ndarray is typed float
    out = out * torch.from_numpy(gains.astype(np.float32))[:, None]
    if aug.mix_probability > 0:
        for i in range(n):
            if rng.random() >= aug.mix_probability:
                continue
            start = int(rng.integers(0, pool.size - window + 1))
            noise = pool[start : start + window]
            noise = noise / (float(np.sqrt(np.mean(noise**2))) + 1e-8)
            level = float(out[i].pow(2).mean().sqrt())
            if is_background[i] or level < 1e-6:
                scale = level * float(rng.uniform(0.0, 1.0)) if level >= 1e-6 else float(rng.uniform(0.0, 0.05))
            else:
                scale = level / 10 ** (float(rng.uniform(*aug.snr_db)) / 20)
            out[i] = out[i] + torch.from_numpy(noise.astype(np.float32)) * scale
    return out


def spec_augment(features: torch.Tensor, aug: Augment, rng: np.random.Generator) -> torch.Tensor:
    """Zeroes random time and mel bands of [n, 1, mels, frames] features (0 is the mean after normalisation)."""
    lo, hi = aug.freq_warp
    if aug.time_masks == 0 and aug.freq_masks == 0 and hi <= lo:
        return features
    features = features.clone()
    n, _, mels, frames = features.shape
    if hi > lo:
        for i in range(n):
            height = max(2, int(round(mels * float(rng.uniform(lo, hi)))))
            warped = torch.nn.functional.interpolate(features[i : i + 1], size=(height, frames), mode="bilinear", align_corners=False)[0]
            features[i] = warped[:, :mels] if height >= mels else torch.nn.functional.pad(warped, (0, 0, 0, mels - height))
    for i in range(n):
        for _ in range(aug.time_masks):
            width = int(rng.integers(0, aug.time_mask_frames + 1))
            start = int(rng.integers(0, max(1, frames - width)))
            features[i, :, :, start : start + width] = 0.0
        for _ in range(aug.freq_masks):
            width = int(rng.integers(0, aug.freq_mask_bins + 1))
            start = int(rng.integers(0, max(1, mels - width)))
            features[i, :, start : start + width, :] = 0.0
    return features
