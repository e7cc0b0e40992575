"""The built-in sound data set of `trainer demo`: class folders of 16 kHz mono WAVs the sound trainer
reads, distinct classes, deterministic by seed; and the looped sample sound for the live demo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from edge.core.datasets import scan_dataset
from trainer.demo.audio_samples import BACKGROUND, SOUND_CLASSES, render_sound_sequence, write_sounds_dataset


def _read(path: Path) -> tuple[np.ndarray, int]:
    data, rate = sf.read(str(path), dtype="float32")
    return data, rate


def test_sound_dataset_has_the_classes_as_16k_mono_wavs_and_is_deterministic(tmp_path: Path) -> None:
    root = write_sounds_dataset(tmp_path / "a", per_class=3, background_files=1, background_seconds=2.0, seed=5)
    assert sorted(p.name for p in root.iterdir()) == sorted(SOUND_CLASSES)
    for name in SOUND_CLASSES:
        files = sorted((root / name).glob("*.wav"))
        assert len(files) == (1 if name == BACKGROUND else 3)
        for f in files:
            info = sf.info(str(f))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            data, _ = _read(f)
            assert 0.01 < np.abs(data).max() <= 1.0  # audible, not clipped past full scale
        assert sf.info(str(files[0])).duration == (2.0 if name == BACKGROUND else 1.0)
    # The trainer's own scanner accepts the layout as a sound data set with a background class.
    assert set(scan_dataset(root, "audio").labels) == set(SOUND_CLASSES)

    same = write_sounds_dataset(tmp_path / "b", per_class=3, background_files=1, background_seconds=2.0, seed=5)
    other = write_sounds_dataset(tmp_path / "c", per_class=3, background_files=1, background_seconds=2.0, seed=6)
    a, b, c = (_read(r / "whistle" / "whistle_000.wav")[0] for r in (root, same, other))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_whistles_are_tonal_between_1_and_3_khz_and_claps_are_short_bursts(tmp_path: Path) -> None:
    root = write_sounds_dataset(tmp_path, per_class=4, background_files=1, background_seconds=1.0, seed=1)
    for f in sorted((root / "whistle").glob("*.wav")):
        data, rate = _read(f)
        spectrum = np.abs(np.fft.rfft(data))
        peak_hz = np.argmax(spectrum) * rate / len(data)
        assert 900 <= peak_hz <= 3300, f"{f.name}: peak at {peak_hz:.0f} Hz"
    for f in sorted((root / "clap").glob("*.wav")):
        data, rate = _read(f)
        frames = np.abs(data[: len(data) // 160 * 160]).reshape(-1, 160).max(axis=1)  # 10 ms frames
        loud = frames > 0.25 * frames.max()
        assert 1 <= loud.sum() <= 3 * 15, f"{f.name}: {loud.sum()} loud 10 ms frames"


def _sound_kind(segment: np.ndarray, rate: int) -> str:
    """What a 2 s stretch sounds like, from three measurements (over seeds 0-5 of the sequence): share of
    energy between 0.9 and 3.3 kHz (whistles 0.97-0.99, others <= 0.49); loudest 10 ms frame over the
    median frame (claps 11-33, others <= 3.2); share of energy below 500 Hz (background 0.77-1.0, others <= 0.25)."""
    power = np.abs(np.fft.rfft(segment)) ** 2
    freqs = np.fft.rfftfreq(segment.size, 1 / rate)
    frames = np.abs(segment[: segment.size // 160 * 160]).reshape(-1, 160).max(axis=1)
    kinds = []
    if power[(freqs > 900) & (freqs < 3300)].sum() / power.sum() > 0.9:
        kinds.append("whistle")
    if frames.max() / np.median(frames) > 8:
        kinds.append("clap")
    if power[freqs < 500].sum() / power.sum() > 0.6:
        kinds.append(BACKGROUND)
    return "+".join(kinds) or "none"


def test_sample_sound_plays_each_class_in_turn(tmp_path: Path) -> None:
    path = render_sound_sequence(tmp_path / "seq.wav", seconds_per_class=2.0, seed=3)
    data, rate = _read(path)
    assert rate == 16000 and data.ndim == 1 and len(data) == 3 * 2 * 16000
    segments = data.reshape(3, 2 * rate)
    assert [_sound_kind(seg, rate) for seg in segments] == list(SOUND_CLASSES)  # whistle, clap, background
    other = [_sound_kind(seg, rate) for seg in _read(render_sound_sequence(tmp_path / "o.wav", ("clap", BACKGROUND, "whistle"), 2.0,
                                                                           seed=4))[0].reshape(3, -1)]
    assert other == ["clap", BACKGROUND, "whistle"]  # the order asked for
    again, _ = _read(render_sound_sequence(tmp_path / "seq2.wav", seconds_per_class=2.0, seed=3))
    assert np.array_equal(data, again)
