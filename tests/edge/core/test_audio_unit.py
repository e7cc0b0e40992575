"""edge/core/audio.py (decoding, band-limited resampling) and edge/core/audio_windows.py (cutting
clips into model windows), with answers worked out by hand: output lengths from ceil(n * up / down),
DC gain 1, a tone above the new Nyquist removed, window positions from the documented rules."""

from __future__ import annotations

import logging
import re
from math import ceil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from edge.core import audio as audio_mod
from edge.core.audio import AUDIO_SUFFIXES, AudioDecodeError, load_audio, resample
from edge.core.audio_windows import (
    BACKGROUND_LABEL,
    SILENCE_PEAK,
    ClipRejected,
    bundle_scorer,
    check_clip,
    clip_windows,
    cut,
    frame_energy,
    is_background_path,
    load_clip,
    plan_windows,
    score_files,
)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def sine(freq: float, rate: int, n: int, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)


def reference_resample(x: np.ndarray, rate_in: int, rate_out: int, half_width: int = 16) -> np.ndarray:
    """The documented windowed-sinc (Hann window, cutoff min(1, out/in) of the input Nyquist), evaluated
    output sample by output sample in float64: slow but obviously right."""
    cutoff = min(1.0, rate_out / rate_in)
    n_out = ceil(len(x) * rate_out / rate_in)
    out = np.zeros(n_out)
    for k in range(n_out):
        pos = k * rate_in / rate_out  # position in input samples
        base = int(np.floor(pos + 1e-9))
        for i in range(base - half_width + 1, base + half_width + 1):
            if 0 <= i < len(x):
                d = pos - i
                window = 0.5 + 0.5 * np.cos(np.pi * np.clip(d / half_width, -1.0, 1.0))
                out[k] += x[i] * cutoff * np.sinc(cutoff * d) * window
    return out


# -- resample ---------------------------------------------------------------------------------------


def test_a_10khz_tone_is_removed_when_resampling_48k_to_16k() -> None:
    # planted bug: cutoff 1.0 (no anti-aliasing) -> the tone folds to 6 kHz and keeps rms 0.354
    x = sine(10_000, 48_000, 48_000)
    assert rms(x) == pytest.approx(0.5 / np.sqrt(2), abs=1e-4)
    y = resample(x, 48_000, 16_000)
    assert len(y) == 16_000
    assert rms(y) < 0.02  # measured 0.010


def test_a_tone_below_the_new_nyquist_keeps_its_level() -> None:
    y = resample(sine(1_000, 48_000, 48_000), 48_000, 16_000)
    assert rms(y[100:-100]) == pytest.approx(0.3536, abs=2e-3)
    assert rms(resample(sine(1_000, 8_000, 8_000), 8_000, 16_000)[100:-100]) == pytest.approx(0.3536, abs=2e-3)


@pytest.mark.parametrize(
    "rate_in, rate_out, n, expected",
    [
        (48_000, 16_000, 1000, 334),  # 1000 / 3 = 333.3 -> 334
        (48_000, 16_000, 999, 333),
        (44_100, 16_000, 441, 160),  # 441 * 160 / 441
        (44_100, 16_000, 442, 161),  # 160.36 -> 161
        (8_000, 16_000, 100, 200),
        (16_000, 48_000, 7, 21),
        (22_050, 16_000, 1, 1),  # 0.73 -> 1
    ],
)
def test_output_length_is_ceil_of_n_times_the_rate_ratio(rate_in, rate_out, n, expected) -> None:
    y = resample(np.zeros(n, np.float32), rate_in, rate_out)
    assert len(y) == expected and y.dtype == np.float32


@pytest.mark.parametrize("rate_in, rate_out", [(48_000, 16_000), (44_100, 16_000), (8_000, 16_000), (22_050, 16_000), (16_000, 48_000)])
def test_dc_is_preserved_away_from_the_edges(rate_in, rate_out) -> None:
    y = resample(np.full(4800, 0.25, np.float32), rate_in, rate_out)
    edge = int(np.ceil(17 * max(1, rate_out / rate_in)))  # the kernel reaches 16 input samples past the signal
    assert np.allclose(y[edge:-edge], 0.25, rtol=1e-3)


def test_upsampling_by_two_passes_through_the_original_samples() -> None:
    x = np.random.default_rng(0).uniform(-1, 1, 64).astype(np.float32)
    y = resample(x, 8_000, 16_000)
    assert np.allclose(y[0::2], x, atol=1e-6)  # the kernel is 1 at distance 0 and 0 at other integers


@pytest.mark.parametrize("rate_in, rate_out, n", [(48_000, 16_000, 90), (44_100, 16_000, 200), (8_000, 16_000, 40), (44_100, 16_000, 3),
                                                  (16_000, 44_100, 5)])
def test_matches_the_windowed_sinc_formula(rate_in, rate_out, n) -> None:
    x = np.random.default_rng(n).uniform(-1, 1, n).astype(np.float32)
    assert np.allclose(resample(x, rate_in, rate_out), reference_resample(x, rate_in, rate_out), atol=2e-5)


def test_a_single_sample_is_filtered_not_copied() -> None:
    # one output sample at distance 0 from the input: kernel value cutoff * sinc(0) * hann(0) = 1/3
    assert resample(np.array([0.9], np.float32), 48_000, 16_000).tolist() == pytest.approx([0.3])


def test_half_width_sets_the_kernel_length() -> None:
    x = np.random.default_rng(1).uniform(-1, 1, 50).astype(np.float32)
    assert np.allclose(resample(x, 48_000, 16_000, half_width=4), reference_resample(x, 48_000, 16_000, half_width=4), atol=2e-5)


def test_blocks_give_the_same_answer_as_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(2).uniform(-1, 1, 300).astype(np.float32)
    whole = resample(x, 44_100, 16_000)
    monkeypatch.setattr(audio_mod, "RESAMPLE_BLOCK", 7)
    assert np.array_equal(resample(x, 44_100, 16_000), whole)
    assert np.allclose(whole, reference_resample(x, 44_100, 16_000), atol=2e-5)


def test_same_rate_or_empty_input_is_a_float32_copy() -> None:
    x = np.array([0.5, -0.25], np.float64)
    y = resample(x, 16_000, 16_000)
    assert y.dtype == np.float32 and np.array_equal(y, [0.5, -0.25])
    y32 = np.array([0.5], np.float32)
    out = resample(y32, 16_000, 16_000)
    out[0] = 9
    assert y32[0] == 0.5  # a copy, not a view
    pulse = np.array([0.0, 1.0, 0.0, 0.0], np.float32)
    assert np.array_equal(resample(pulse, 44_100, 44_100), pulse)  # bit-exact: no kernel leakage into the zeros
    empty = resample(np.zeros(0), 48_000, 16_000)
    assert empty.size == 0 and empty.dtype == np.float32


# -- load_audio -------------------------------------------------------------------------------------


def test_load_audio_mixes_channels_and_keeps_the_rate(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    soundfile.write(str(path), np.array([[0.5, 0.25], [-0.5, 0.0]], np.float32), 22_050, subtype="FLOAT")
    samples, rate = load_audio(path)
    assert rate == 22_050 and type(rate) is int
    assert samples.dtype == np.float32 and samples.flags["C_CONTIGUOUS"]
    assert np.array_equal(samples, [0.375, -0.25])


def test_load_audio_scales_int16_to_minus_one_one(tmp_path: Path) -> None:
    path = tmp_path / "pcm.wav"
    soundfile.write(str(path), np.array([16384, -32768], np.int16), 8_000, subtype="PCM_16")
    samples, _ = load_audio(str(path))
    assert np.array_equal(samples, [0.5, -1.0])


def test_load_audio_refuses_non_audio_and_empty_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not a wav file")
    with pytest.raises(AudioDecodeError, match=r"junk.wav: cannot read as audio \(.*\); supported: WAV, FLAC, OGG$"):
        load_audio(junk)
    empty = tmp_path / "empty.wav"
    soundfile.write(str(empty), np.zeros(0, np.float32), 16_000)
    with pytest.raises(AudioDecodeError, match=r"empty.wav: the file holds no samples$"):
        load_audio(empty)


def test_audio_suffixes() -> None:
    assert AUDIO_SUFFIXES == (".wav", ".flac", ".ogg", ".oga")


# -- windows ----------------------------------------------------------------------------------------

RATE = 1000  # 1 kHz keeps the arithmetic readable: a 10 ms frame is 10 samples


def clip_with(n: int, *parts: tuple[int, int, float]) -> np.ndarray:
    x = np.zeros(n, np.float32)
    for start, stop, level in parts:
        x[start:stop] = level
    return x


def test_frame_energy_is_mean_square_per_frame_zero_padded() -> None:
    assert np.array_equal(frame_energy(np.array([1, 1, 0, 0, 2], np.float32), 2), [1.0, 0.0, 2.0])
    assert frame_energy(np.array([2, 0, 0], np.float32), 3).tolist() == pytest.approx([4 / 3])
    assert np.array_equal(frame_energy(np.zeros(0, np.float32), 4), [0.0])
    assert frame_energy(np.ones(3, np.float32), 2).dtype == np.float32


def test_check_clip_length_boundary_and_message() -> None:
    check_clip(np.full(50, 0.5, np.float32), RATE, "ok.wav")  # exactly 50 ms
    with pytest.raises(ClipRejected,
                       match=r"^short.wav: only 49 ms long \(at least 50 ms are needed\); record the sound again or delete the file$"):
        check_clip(np.full(49, 0.5, np.float32), RATE, "short.wav")
    with pytest.raises(ClipRejected, match=r"only 48 ms long \(at least 50 ms"):
        check_clip(np.full(1212, 0.5, np.float32), 25_000, "x.wav")  # 48.48 ms
    with pytest.raises(ClipRejected, match="only 0 ms"):
        check_clip(np.zeros(0, np.float32), RATE, "none.wav", background=True)


def test_check_clip_silence() -> None:
    quiet = np.full(100, 0.0005, np.float32)  # -66 dBFS, below the -60 dBFS floor
    with pytest.raises(ClipRejected,
                       match=r"^q.wav: silent \(peak -66 dBFS\); check the microphone and record again, or move it "
                       rf"to {BACKGROUND_LABEL}/ if"):
        check_clip(quiet, RATE, "q.wav")
    with pytest.raises(ClipRejected, match=r"silent \(peak digital silence\)"):
        check_clip(np.zeros(100, np.float32), RATE, "z.wav")
    check_clip(np.zeros(100, np.float32), RATE, "bg.wav", background=True)  # silence is a background example
    check_clip(np.full(100, -0.001, np.float32), RATE, "edge.wav")  # -60 dBFS (negative peak) is a sound
    check_clip(np.full(100, SILENCE_PEAK, np.float64), RATE, "exact.wav")  # exactly at the floor: a sound
    with pytest.raises(ClipRejected, match="silent"):
        check_clip(np.full(100, SILENCE_PEAK * 0.999, np.float64), RATE, "under.wav")


def test_background_shorter_than_a_window_is_centred() -> None:
    plan = plan_windows(np.ones(30, np.float32), RATE, window=50, hop=20, background=True)
    assert plan.starts.tolist() == [-10] and plan.shift_min.tolist() == [-10] and plan.shift_max.tolist() == [10]
    plan = plan_windows(np.ones(31, np.float32), RATE, window=50, hop=21, background=True)
    assert plan.starts.tolist() == [-10]  # -(19) // 2
    assert plan.shift_min.tolist() == [-10] and plan.shift_max.tolist() == [10]
    assert plan_windows(np.ones(50, np.float32), RATE, 50, 20, background=True).starts.tolist() == [0]


def test_background_is_cut_end_to_end_hop_apart_with_a_last_window_at_the_end() -> None:
    plan = plan_windows(np.zeros(100, np.float32), RATE, window=40, hop=25, background=True)
    assert plan.starts.tolist() == [0, 25, 50, 60]  # 50 + 40 < 100: one more window ending at the end
    assert plan.shift_min.tolist() == [-12] * 4 and plan.shift_max.tolist() == [12] * 4
    assert plan.starts.dtype == np.int64 and plan.shift_min.dtype == np.int64
    assert plan_windows(np.zeros(90, np.float32), RATE, 40, 25, background=True).starts.tolist() == [0, 25, 50]
    # 91: the last hop start (50) ends 1 short of the end -> one more at 51
    assert plan_windows(np.zeros(91, np.float32), RATE, 40, 25, background=True).starts.tolist() == [0, 25, 50, 51]
    # 89: a start at 50 would run past the end; the last window starts at 49
    assert plan_windows(np.zeros(89, np.float32), RATE, 40, 25, background=True).starts.tolist() == [0, 25, 49]


def test_background_windowing_arrays_are_int64() -> None:
    for n in (30, 100):
        plan = plan_windows(np.zeros(n, np.float32), RATE, 40, 25, background=True)
        assert plan.starts.dtype == plan.shift_min.dtype == plan.shift_max.dtype == np.int64


def test_one_event_is_centred_on_its_energy() -> None:
    # loud frames 10 and 11 (samples 100..119), equal energy: centre 110, window 50 -> start 85
    plan = plan_windows(clip_with(200, (100, 120, 0.5)), RATE, window=50, hop=25)
    assert plan.starts.tolist() == [85]
    assert plan.shift_min.tolist() == [120 - 50 - 85] and plan.shift_max.tolist() == [100 - 85]


def test_the_centre_is_energy_weighted() -> None:
    # frame 10 energy 1, frame 11 energy 0.25: centre = 100 + 10 * (0.25 / 1.25 + 0.5) = 107 -> start 82
    plan = plan_windows(clip_with(200, (100, 110, 1.0), (110, 120, 0.5)), RATE, window=50, hop=25)
    assert plan.starts.tolist() == [82]
    assert plan.shift_min.tolist() == [-12] and plan.shift_max.tolist() == [18]


def test_the_window_never_cuts_the_loud_span() -> None:
    # loud frame 10 (energy 1) and a faint frame 14 (0.04, within 20 dB): span 100..150 = one window.
    # The energy centre (106.5) would start the window at 82 and cut the end: clamped to 100.
    plan = plan_windows(clip_with(200, (100, 110, 1.0), (140, 150, 0.2)), RATE, window=50, hop=25)
    assert plan.starts.tolist() == [100] and plan.shift_min.tolist() == [0] and plan.shift_max.tolist() == [0]
    # mirrored: the window would start too late and cut the beginning
    plan = plan_windows(clip_with(200, (100, 110, 0.2), (140, 150, 1.0)), RATE, window=50, hop=25)
    assert plan.starts.tolist() == [100]


def test_frames_more_than_20_db_under_the_loudest_are_not_the_loud_part() -> None:
    # frame 5 at 0.0925 (energy 0.0086 < 1 * 10^-2) is ignored: the event is frame 10 alone
    plan = plan_windows(clip_with(200, (50, 60, 0.0925), (100, 110, 1.0)), RATE, window=30, hop=10)
    assert plan.starts.tolist() == [90]  # centre 105 - 15
    # at 0.1 (energy 0.01, exactly -20 dB) it counts: span 50..110 > 30 -> several windows
    assert len(plan_windows(clip_with(200, (50, 60, 0.1), (100, 110, 1.0)), RATE, window=30, hop=10).starts) > 1


def test_the_centre_weighs_only_the_loud_frames() -> None:
    # at 10 kHz a frame is 100 samples. Frames 10 (energy 1) and 11 (0.25) are loud, frame 12 (0.0081) is not:
    # centre = 1000 + 100 * (0.25 / 1.25 + 0.5) = 1070 -> start 1070 - 150 = 920 (frame 12 would pull it to 921)
    plan = plan_windows(clip_with(3000, (1000, 1100, 1.0), (1100, 1200, 0.5), (1200, 1300, 0.09)), 10_000, window=300, hop=150)
    assert plan.starts.tolist() == [920] and plan.shift_min.tolist() == [1200 - 300 - 920] and plan.shift_max.tolist() == [80]


def test_at_100_hz_a_frame_is_one_sample() -> None:
    # one loud sample at 11: span 11..12, centre 11.5 -> start round(9.0) = 9 (2-sample frames: 8)
    plan = plan_windows(clip_with(20, (11, 12, 1.0)), 100, window=5, hop=2)
    assert plan.starts.tolist() == [9] and plan.shift_min.tolist() == [-2] and plan.shift_max.tolist() == [2]


def test_a_silent_clip_is_one_window_over_all_of_it() -> None:
    plan = plan_windows(np.zeros(50, np.float32), RATE, window=100, hop=50)
    assert plan.starts.tolist() == [-45]  # centre 5 (the first frame's middle) - 50, clamped to >= -50


def test_a_long_sound_gives_windows_hop_apart_over_its_loud_span() -> None:
    plan = plan_windows(clip_with(1000, (100, 400, 0.5)), RATE, window=100, hop=50)
    assert plan.starts.tolist() == [100, 150, 200, 250, 300]  # the last ends exactly at 400
    assert plan.shift_min.tolist() == [-25] * 5 and plan.shift_max.tolist() == [25] * 5
    plan = plan_windows(clip_with(1000, (100, 420, 0.5)), RATE, window=100, hop=50)
    assert plan.starts.tolist() == [100, 150, 200, 250, 300, 320]  # plus one ending at the span's end
    assert plan.starts.dtype == np.int64
    # span 100..401: the hop start 300 ends 1 short of the span's end, so 301 is added
    assert plan_windows(clip_with(401, (100, 401, 0.5)), RATE, 100, 50).starts.tolist() == [100, 150, 200, 250, 300, 301]
    # span 100..399: 300 would run past it; the last window starts at 299
    assert plan_windows(clip_with(399, (100, 399, 0.5)), RATE, 100, 50).starts.tolist() == [100, 150, 200, 250, 299]


def test_quiet_windows_of_a_long_recording_are_dropped() -> None:
    # two claps (100..150 and 350..400) with silence between: windows holding neither are dropped
    plan = plan_windows(clip_with(1000, (100, 150, 0.5), (350, 400, 0.5)), RATE, window=100, hop=50)
    assert plan.starts.tolist() == [100, 300]
    assert plan.shift_min.dtype == np.int64


def test_windows_of_a_faint_hum_between_claps_are_dropped() -> None:
    # the hum (0.0925: 20.7 dB under the claps) lies inside the loud span but its windows are too quiet
    plan = plan_windows(clip_with(1000, (100, 150, 1.0), (150, 350, 0.0925), (350, 400, 1.0)), RATE, window=100, hop=50)
    assert plan.starts.tolist() == [100, 300]


def test_a_window_at_exactly_20_db_under_is_kept() -> None:
    # second clap at 0.1 of the first's amplitude: energy ratio exactly 10^-2 -> part of the loud span and
    # its window kept; at 0.09 it is not loud: the span is the first clap alone
    kept = plan_windows(clip_with(1000, (100, 150, 1.0), (350, 400, 0.1)), RATE, window=100, hop=50)
    assert kept.starts.tolist() == [100, 300]
    gone = plan_windows(clip_with(1000, (100, 150, 1.0), (350, 400, 0.09)), RATE, window=100, hop=50)
    assert gone.starts.tolist() == [75]  # a single event again, centred at 125


def test_cut_pads_with_zeros_outside_the_clip() -> None:
    x = np.array([1, 2, 3], np.float32)
    assert cut(x, -2, 5).tolist() == [0, 0, 1, 2, 3]
    assert cut(x, 1, 5).tolist() == [2, 3, 0, 0, 0]
    assert cut(x, 0, 3).tolist() == [1, 2, 3]
    assert cut(x, 3, 2).tolist() == [0, 0]
    assert cut(x, -5, 2).tolist() == [0, 0]
    assert cut(x, -1, 2).tolist() == [0, 1]
    assert cut(x, 1, 1).dtype == np.float32


def test_clip_windows_stacks_the_planned_windows() -> None:
    x = clip_with(200, (100, 120, 0.5))
    w = clip_windows(x, RATE, 50, 25)
    assert w.shape == (1, 50) and w.dtype == np.float32
    assert np.array_equal(w[0], x[85:135])
    bg = clip_windows(np.arange(100, dtype=np.float32), RATE, 40, 25, background=True)
    assert bg.shape == (4, 40) and bg[3, 0] == 60 and bg[1, 0] == 25


def test_is_background_path_looks_at_whole_folder_names() -> None:
    assert is_background_path(f"data/{BACKGROUND_LABEL}/hum.wav")
    assert is_background_path(Path("x") / "train" / BACKGROUND_LABEL / "sub" / "a.wav")
    assert not is_background_path(f"data/{BACKGROUND_LABEL}x/hum.wav")
    assert not is_background_path("data/clap/_background_noise_.wav.txt/a")
    assert BACKGROUND_LABEL == "_background_noise_"


def _wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), samples, rate, subtype="FLOAT")
    return path


def test_load_clip_checks_then_resamples(tmp_path: Path) -> None:
    path = _wav(tmp_path / "a.wav", sine(440, 48_000, 4800), 48_000)
    clip = load_clip(path, 16_000)
    assert len(clip) == 1600 and clip.dtype == np.float32
    short = _wav(tmp_path / "short.wav", sine(440, 48_000, 2000), 48_000)  # 41.7 ms at the file's rate
    with pytest.raises(ClipRejected, match=rf"^{re.escape(str(short))}: only 42 ms"):
        load_clip(short, 16_000)
    silent = _wav(tmp_path / BACKGROUND_LABEL / "s.wav", np.zeros(4800, np.float32), 48_000)
    with pytest.raises(ClipRejected, match="silent"):
        load_clip(silent, 16_000)
    assert len(load_clip(silent, 16_000, background=True)) == 1600


def test_score_files_averages_window_probabilities_per_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def predict(batch: np.ndarray) -> np.ndarray:  # [mean level of the window, window's first sample]
        calls.append(len(batch))
        return np.stack([batch.mean(axis=1), batch[:, 0]], axis=1).astype(np.float64)

    rate = 1000
    long_bg = _wav(tmp_path / BACKGROUND_LABEL / "bg.wav", np.arange(100, dtype=np.float32) / 100, rate)
    event = _wav(tmp_path / "clap" / "one.wav", clip_with(200, (100, 120, 0.5)), rate)
    junk = tmp_path / "clap" / "junk.wav"
    junk.write_bytes(b"junk")
    silent = _wav(tmp_path / "clap" / "silent.wav", np.zeros(200, np.float32), rate)
    pre = tmp_path / "clap" / "pre.wav"  # not on disk: supplied decoded
    quiet_bg = _wav(tmp_path / BACKGROUND_LABEL / "quiet.wav", np.zeros(60, np.float32), rate)  # silence is a background example
    with caplog.at_level(logging.WARNING, logger="edge.core.audio_windows"):
        kept, probs, skipped = score_files([long_bg, junk, event, silent, pre, quiet_bg], predict, rate, 40, 25, batch_size=3,
                                           preloaded={pre: np.full(80, 0.25, np.float32)})
    assert kept == [0, 2, 4, 5]
    assert probs[3].tolist() == [0.0, 0.0]
    # background: windows at 0, 25, 50, 60 of a ramp i/100 -> means 0.195, 0.445, 0.695, 0.795
    assert probs[0] == pytest.approx([np.mean([0.195, 0.445, 0.695, 0.795]), np.mean([0.0, 0.25, 0.5, 0.6])], abs=1e-6)
    # event: one 40-sample window at 90 (centre 110 - 20): 20 loud samples of 0.5 -> mean 0.25
    assert probs[1] == pytest.approx([0.25, 0.0])
    # preloaded constant, 80 samples, all of it loud: windows at 0, 25 and 40, each of mean 0.25
    assert probs[2] == pytest.approx([0.25, 0.25])
    assert [s["path"] for s in skipped] == [str(junk), str(silent)]
    assert "cannot read as audio" in skipped[0]["reason"] and "silent" in skipped[1]["reason"]
    assert [r.getMessage() for r in caplog.records] == [f"skipping {skipped[0]['reason']}", f"skipping {skipped[1]['reason']}"]
    assert calls == [3, 3, 3, 1]  # 4 + 1 + 3 + 2 windows in batches of 3
    assert all(p.dtype == np.float32 for p in probs)


def test_score_files_predicts_32_windows_at_a_time_by_default(tmp_path: Path) -> None:
    calls: list[int] = []

    def predict(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return np.ones((len(batch), 2), np.float32)

    path = tmp_path / "long.wav"
    score_files([path], predict, 1000, 10, 10, preloaded={path: np.full(400, 0.5, np.float32)})
    assert calls == [32, 8]  # 40 windows of 10 over 400 samples


def test_score_files_with_nothing_usable(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"")
    kept, probs, skipped = score_files([junk], lambda b: b, 1000, 40, 20)
    assert (kept, probs) == ([], []) and len(skipped) == 1


def test_bundle_scorer_passes_the_bundle_windowing_and_batch_size(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from edge.core import audio_windows
    from edge.core.datasets import Sample

    seen = {}

    def spy(paths, predict, rate, window, hop, batch_size=32):
        seen.update(paths=paths, predict=predict, rate=rate, window=window, hop=hop, batch_size=batch_size)
        return [0, 1], ["p0", "p1"], [{"path": "c.wav", "reason": "silent"}]

    monkeypatch.setattr(audio_windows, "score_files", spy)
    bundle = SimpleNamespace(sample_rate=8000, window_samples=4000, hop_samples=1000)
    clf = SimpleNamespace(bundle=bundle, run=lambda batch: batch)
    result = bundle_scorer(clf, [Sample(Path("a.wav"), 0), Sample(Path("b.wav"), 1)], batch_size=5)
    assert result == ([0, 1], ["p0", "p1"], ["c.wav"])
    assert seen == {"paths": [Path("a.wav"), Path("b.wav")], "predict": clf.run, "rate": 8000, "window": 4000, "hop": 1000, "batch_size": 5}


def test_bundle_scorer_uses_the_manifest_windowing(tmp_path: Path) -> None:
    from edge.core.bundle import load_bundle
    from edge.core.datasets import Sample
    from edge.core.session import Classifier
    from tests.support.onnx_models import make_audio_bundle

    clf = Classifier(load_bundle(make_audio_bundle(tmp_path / "b", sample_rate=8000, window_s=0.25, hop_s=0.125)))
    loud = _wav(tmp_path / "loud.wav", sine(300, 16_000, 16_000, amplitude=0.8), 16_000)
    quiet = _wav(tmp_path / "quiet.wav", sine(300, 16_000, 16_000, amplitude=0.01), 16_000)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"no")
    kept, probs, skipped = bundle_scorer(clf, [Sample(quiet, 0), Sample(junk, 0), Sample(loud, 1)], batch_size=2)
    assert kept == [0, 2] and skipped == [str(junk)]
    assert [int(np.argmax(p)) for p in probs] == [0, 1]
