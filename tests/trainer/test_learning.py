"""The sound trainer learns, and its int8 model keeps what it learned.

A small, clearly separable sound set generated with numpy (low tones, high tones, noise bursts; 24
training and 10 validation clips per class, 1 s at 16 kHz) goes through `trainer train` end to end:
training with augmentation, export, parity, int8 quantization calibrated on training windows, scoring.
Chance is 1/3; a trainer that does not learn (e.g. `optimizer.step()` lost) stays near it, and an int8
model calibrated on the wrong inputs (e.g. all zeros) moves the probabilities by ~0.9.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from edge.core.audio_windows import clip_windows, load_clip
from edge.core.bundle import load_bundle
from trainer.cli import main as trainer_main
from trainer.export import ort_predict

RATE = 16000
CLASSES = ("high", "low", "noise")  # the bundle's labels (sorted folder names)
TRAIN_PER_CLASS, VAL_PER_CLASS = 24, 10
EPOCHS = 30  # measured: validation accuracy 0.33 at epoch 1, 1.0 from epoch 7 on
# fp32 vs int8 of the trained bundle, max |diff| of probabilities over the 30 validation windows.
# Measured 0.00069 (mean 0.00007, no top-1 change; the same on every rerun). For scale, the same bundle
# quantized with calibration on: all-zero windows 0.9, a single window 0.10, windows at a tenth of their
# level 0.0068, and with per-tensor instead of per-channel weights 0.0011. Other training seeds measured
# 0.0006-0.012: if the training recipe or this data changes, measure again and keep a small margin.
INT8_TOLERANCE = 0.002


def _clip(kind: str, rng: np.random.Generator, seconds: float = 1.0) -> np.ndarray:
    """A 0.3-0.6 s sound at a random place and level over faint noise: a 250-450 Hz tone ('low'), a
    2.5-3.5 kHz tone ('high') or a burst of white noise ('noise'), with 20 ms fades."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    out = rng.uniform(0.001, 0.005) * rng.standard_normal(n)
    length = rng.uniform(0.3, 0.6)
    start = rng.uniform(0.1, seconds - length - 0.1)
    a, b = int(start * RATE), int((start + length) * RATE)
    ramp = int(0.02 * RATE)
    env = np.zeros(n)
    env[a:b] = 1.0
    env[a : a + ramp] = np.linspace(0, 1, ramp)
    env[b - ramp : b] = np.linspace(1, 0, ramp)
    amplitude = rng.uniform(0.2, 0.7)
    if kind == "noise":
        out += amplitude * env * rng.standard_normal(n) / 3
    else:
        freq = rng.uniform(250, 450) if kind == "low" else rng.uniform(2500, 3500)
        out += amplitude * env * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    return out.astype(np.float32)


def _write_clips(root: Path, per_class: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for kind in ("low", "high", "noise"):
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            soundfile.write(str(root / kind / f"{kind}_{i:02d}.wav"), _clip(kind, rng), RATE, subtype="PCM_16")


@pytest.fixture(scope="module")
def sound_bundle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """train/ and val/ folders (the maker's own split) and the bundle `trainer train` made of them (~5 s)."""
    root = tmp_path_factory.mktemp("learning")
    data = root / "data"
    _write_clips(data / "train", TRAIN_PER_CLASS, seed=1)
    _write_clips(data / "val", VAL_PER_CLASS, seed=2)
    out = root / "bundle"
    assert trainer_main(["train", str(data), "-o", str(out), "--epochs", str(EPOCHS), "--quiet"]) == 0
    return {"data": data, "out": out}


def test_generated_sounds_are_what_their_class_says() -> None:
    """The data is separable by construction: the tones' spectral peaks are where they should be."""
    rng = np.random.default_rng(0)
    for kind, lo, hi in (("low", 250, 450), ("high", 2500, 3500)):
        clip = _clip(kind, rng)
        peak = np.argmax(np.abs(np.fft.rfft(clip))) * RATE / clip.size
        assert lo - 2 <= peak <= hi + 2, (kind, peak)
    noise = _clip("noise", rng)
    spectrum = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(noise.size, 1 / RATE)
    assert 0.3 < spectrum[freqs > 4000].sum() / spectrum.sum() < 0.7  # white: energy spread over the band


def test_sound_trainer_learns_a_separable_set(sound_bundle: dict[str, Path]) -> None:
    report = json.loads((sound_bundle["out"] / "report.json").read_text())
    history = report["history"]
    assert len(history) == EPOCHS
    # Measured 1.0 (every validation window right); chance is 0.33, and without optimizer.step() 0.33.
    assert history[-1]["val_accuracy"] >= 0.9, [round(h["val_accuracy"], 3) for h in history]
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"], history  # measured 1.10 -> 0.28
    # The exported bundle, scored per file through ONNX Runtime as `trainer evaluate` does.
    manifest = load_bundle(sound_bundle["out"]).manifest
    assert manifest["labels"] == list(CLASSES)
    for variant in ("fp32", "int8"):
        metrics = manifest["metrics"][variant]
        assert metrics["n"] == 3 * VAL_PER_CLASS
        assert metrics["accuracy"] >= 0.9, (variant, metrics["confusion_matrix"])  # measured 1.0 for both


def _val_windows(data: Path, window: int, hop: int) -> np.ndarray:
    windows = [clip_windows(load_clip(path, RATE), RATE, window, hop) for path in sorted((data / "val").rglob("*.wav"))]
    return np.concatenate(windows).astype(np.float32)


def test_int8_probabilities_stay_within_the_measured_error_of_fp32(sound_bundle: dict[str, Path]) -> None:
    bundle = load_bundle(sound_bundle["out"])
    windows = _val_windows(sound_bundle["data"], bundle.window_samples, bundle.hop_samples)
    assert len(windows) == 3 * VAL_PER_CLASS  # one window per 1 s clip
    fp32 = ort_predict(sound_bundle["out"] / bundle.variants["fp32"], windows)
    int8 = ort_predict(sound_bundle["out"] / bundle.variants["int8"], windows)
    diff = np.abs(fp32 - int8)
    assert float(diff.max()) <= INT8_TOLERANCE, f"max |diff| {diff.max():.5f}, mean {diff.mean():.5f}"
    assert np.array_equal(fp32.argmax(1), int8.argmax(1))
    assert bundle.manifest["quantization"]["calibration_inputs"] == 3 * TRAIN_PER_CLASS  # every training window
