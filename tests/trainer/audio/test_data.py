"""Sound files the trainer meets: silent, too short, stereo, 48 kHz, unsupported, long recordings, short clips."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile

from edge.core.audio_windows import clip_windows, load_clip, plan_windows
from edge.core.datasets import DatasetError, make_splits, scan_dataset
from trainer.audio.data import AudioSettings, build_windows, decode_clips

RATE = 16000


def _tone(seconds: float, rate: int, freq: float = 440.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _write(path: Path, samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), samples, rate, subtype=subtype)
    return path


def test_silent_clip_in_a_class_is_skipped_with_a_warning_naming_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    silent = _write(tmp_path / "yes" / "silent.wav", np.zeros(8000, np.float32), 8000)
    good = _write(tmp_path / "yes" / "tone.wav", _tone(0.5, 8000), 8000)
    with caplog.at_level(logging.WARNING):
        clips, skipped = decode_clips([silent, good], RATE, progress=False)
    assert list(clips) == [good]
    assert skipped[0]["path"] == str(silent) and "silent" in skipped[0]["reason"]
    assert str(silent) in caplog.text and "_background_noise_" in caplog.text  # says where silence belongs


def test_silence_is_kept_as_a_background_example(tmp_path: Path) -> None:
    silent = _write(tmp_path / "_background_noise_" / "quiet_room.wav", np.zeros(3 * RATE, np.float32), RATE)
    clips, skipped = decode_clips([silent], RATE, progress=False)
    assert skipped == [] and clips[silent].size == 3 * RATE


def test_clip_shorter_than_50_ms_is_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    short = _write(tmp_path / "no" / "click.wav", _tone(0.04, 8000), 8000)
    just_enough = _write(tmp_path / "no" / "blip.wav", _tone(0.06, 8000), 8000)
    with caplog.at_level(logging.WARNING):
        clips, skipped = decode_clips([short, just_enough], RATE, progress=False)
    assert list(clips) == [just_enough]
    assert "40 ms" in skipped[0]["reason"] and str(short) in caplog.text


def test_stereo_48k_is_mixed_to_mono_and_resampled_to_the_model_rate(tmp_path: Path) -> None:
    left, right = _tone(0.5, 48000, 440.0), _tone(0.5, 48000, 1000.0)
    path = _write(tmp_path / "stereo48k.flac", np.stack([left, right], axis=1), 48000)
    clip = load_clip(path, RATE)
    assert clip.shape == (RATE // 2,)
    spectrum = np.abs(np.fft.rfft(clip))
    freqs = np.fft.rfftfreq(clip.size, 1 / RATE)
    peaks = sorted(freqs[np.argsort(spectrum)[-2:]])
    assert peaks == pytest.approx([440.0, 1000.0], abs=4.0)  # both channels, pitch unchanged
    assert 0.1 < float(np.abs(clip).max()) < 0.35  # averaged, not summed


def test_unsupported_files_are_skipped_or_ignored_with_warnings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for label in ("yes", "no"):
        for i in range(3):
            _write(tmp_path / label / f"{i}.wav", _tone(0.3, 8000, 300.0 + 100 * i + (50 if label == "no" else 0)), 8000)
    fake = tmp_path / "yes" / "notes.wav"
    fake.write_text("this is not a recording")
    mp3 = tmp_path / "no" / "clip.mp3"
    mp3.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00")
    with caplog.at_level(logging.WARNING):
        dataset = scan_dataset(tmp_path, "audio")
        clips, skipped = decode_clips(dataset.all_files, RATE, progress=False)
        splits = make_splits(dataset, [Path(s["path"]) for s in skipped], 0.34, seed=0)
    assert mp3 not in dataset.all_files and "clip.mp3" in caplog.text  # the scan names what it ignores
    assert [s["path"] for s in skipped] == [str(fake)]
    assert "WAV, FLAC, OGG" in skipped[0]["reason"]
    assert fake not in {s.path for s in splits.train + splits.val}
    assert len(splits.train) + len(splits.val) == 6


def test_a_class_left_with_only_silent_files_is_a_clear_error(tmp_path: Path) -> None:
    for i in range(2):
        _write(tmp_path / "clap" / f"{i}.wav", _tone(0.3, 8000), 8000)
        _write(tmp_path / "whistle" / f"{i}.wav", np.zeros(4000, np.float32), 8000)
    dataset = scan_dataset(tmp_path, "audio")
    _, skipped = decode_clips(dataset.all_files, RATE, progress=False)
    with pytest.raises(DatasetError, match="whistle.*0 usable audio file"):
        make_splits(dataset, [Path(s["path"]) for s in skipped], 0.15, seed=0)


def test_short_clip_is_centred_on_its_loud_part_and_never_cut() -> None:
    window = RATE
    # 2.5 s recording: silence, a 0.3 s word at 1.8 s, silence (a recorder left running)
    clip = np.zeros(int(2.5 * RATE), np.float32)
    start = int(1.8 * RATE)
    clip[start : start + int(0.3 * RATE)] = _tone(0.3, RATE)
    plan = plan_windows(clip, RATE, window, hop=RATE // 2)
    assert plan.starts.size == 1
    first = int(plan.starts[0])
    assert first <= start and first + window >= start + int(0.3 * RATE)
    assert abs((first + window / 2) - (start + 0.15 * RATE)) < 0.02 * RATE  # centred on the word
    # every shift the trainer may apply keeps the whole word inside the window
    for shift in (int(plan.shift_min[0]), int(plan.shift_max[0])):
        assert first + shift <= start and first + shift + window >= start + int(0.3 * RATE)
    # a 0.2 s clip (shorter than the window) is zero-padded around, intact
    tiny = _tone(0.2, RATE)
    (only,) = clip_windows(tiny, RATE, window, RATE // 2)
    assert np.count_nonzero(only) == np.count_nonzero(tiny)


def test_long_recording_becomes_several_windows_and_quiet_stretches_are_dropped() -> None:
    # six claps, one every 0.7 s, then 3 s of near silence
    clip = np.full(int(7.2 * RATE), 1e-5, np.float32)
    for k in range(6):
        s = int((0.2 + 0.7 * k) * RATE)
        clip[s : s + 800] = _tone(0.05, RATE, 2000.0, 0.8)
    windows = clip_windows(clip, RATE, RATE, RATE // 2)
    assert 6 <= len(windows) <= 8
    assert all(np.abs(w).max() > 0.5 for w in windows)  # each window holds a clap


def test_windows_of_a_data_set_carry_their_labels(tmp_path: Path) -> None:
    long_noise = _write(tmp_path / "_background_noise_" / "fan.wav",
                        0.05 * np.random.default_rng(0).standard_normal(5 * RATE).astype(np.float32), RATE)
    word = _write(tmp_path / "go" / "a.wav", _tone(0.4, 8000), 8000)
    from edge.core.datasets import Sample

    clips, _ = decode_clips([long_noise, word], RATE, progress=False)
    windows = build_windows([Sample(long_noise, 0), Sample(word, 1)], clips, AudioSettings(hop_seconds=0.5))
    assert windows.labels.count(0) == 9 and windows.labels.count(1) == 1  # 5 s every 0.5 s; one word
    batch = windows.windows(range(len(windows)), RATE, np.random.default_rng(0))
    assert batch.shape == (10, RATE) and np.abs(batch[-1]).max() > 0.2
