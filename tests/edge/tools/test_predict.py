"""`edge predict`: one image or sound file through a real bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from edge.cli import main as edge_main
from edge.tools.predict import audio_windows, predict_file
from tests.support.onnx_models import color_bundle, tone, tone_bundle


def test_image_prediction_prints_label_confidence_and_all_scores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = color_bundle(tmp_path / "colors")
    Image.new("RGB", (40, 30), (250, 10, 10)).save(tmp_path / "red.png")
    assert edge_main(["predict", str(bundle), str(tmp_path / "red.png")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["red", "1.000"]
    assert [line.split()[0] for line in out[1:3]] == ["red", "blue"]
    Image.new("RGB", (40, 30), (10, 10, 250)).save(tmp_path / "blue.jpg")
    assert edge_main(["predict", str(bundle), str(tmp_path / "blue.jpg"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["label"] == "blue" and data["confidence"] > 0.99 and set(data["scores"]) == {"red", "blue"}
    assert abs(sum(data["scores"].values()) - 1) < 1e-5 and data["variant"] == "fp32"


def test_real_photo_fixture_gets_the_label_its_colours_decide(tmp_path: Path, shared_dir: Path) -> None:
    """The tiny colour model answers "red" exactly when the mean red channel is above the mean blue one
    (logits +-0.1 x (R - B)), so a real photo has a known answer: the giraffe (tawny, R - B about +50)
    is red, and the same photo with its red and blue channels swapped is blue with the mirrored score."""
    bundle = color_bundle(tmp_path / "colors")
    photo = shared_dir / "photos" / "giraffe.jpg"
    rgb = np.asarray(Image.open(photo).convert("RGB"))
    margin = float(rgb[..., 0].mean()) - float(rgb[..., 2].mean())
    assert margin > 30, margin  # the fixture's answer is clear-cut, not a coin toss
    prediction = predict_file(bundle, photo)
    assert prediction.label == "red" and prediction.confidence > 0.99, prediction
    swapped = tmp_path / "giraffe-red-blue-swapped.png"  # PNG: no new JPEG artefacts
    Image.fromarray(np.ascontiguousarray(rgb[..., ::-1])).save(swapped)
    mirrored = predict_file(bundle, swapped)
    assert mirrored.label == "blue" and mirrored.confidence > 0.99, mirrored
    assert mirrored.scores["blue"] == pytest.approx(prediction.scores["red"], abs=1e-3)
    assert mirrored.scores["red"] == pytest.approx(prediction.scores["blue"], abs=1e-3)


def test_sound_file_is_windowed_and_averaged_or_maxed(tmp_path: Path) -> None:
    bundle = tone_bundle(tmp_path / "tones", sample_rate=16000, window=8000, hop=4000)
    wav = tmp_path / "mostly-low.wav"
    # 1.5 s low tone then 0.5 s high tone at 44.1 kHz: the mean says low, the max sees the high part too
    soundfile.write(wav, np.concatenate([tone(300, 1.5, 44100), tone(4000, 0.5, 44100)]), 44100)
    mean = predict_file(bundle, wav)
    assert mean.label == "low" and mean.windows == 7 and mean.reduce == "mean"
    assert mean.scores["high"] == pytest.approx(2 / 7, abs=0.1)  # about 2 of 7 windows heard the high tone
    peak = predict_file(bundle, wav, reduce="max")
    assert peak.scores["high"] == pytest.approx(0.5, abs=0.05) and peak.reduce == "max"


def test_short_sound_is_padded_to_one_window() -> None:
    windows = audio_windows(np.ones(100, np.float32), 8000, 4000)
    assert windows.shape == (1, 8000) and windows[0, :100].sum() == 100 and windows[0, 100:].sum() == 0
    windows = audio_windows(np.arange(10000, dtype=np.float32), 8000, 4000)
    assert windows.shape == (2, 8000) and windows[-1, -1] == 9999  # the tail is covered


def test_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = color_bundle(tmp_path / "colors")
    sounds = tone_bundle(tmp_path / "tones")
    soundfile.write(tmp_path / "a.wav", tone(300, 0.2, 16000), 16000)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    Image.new("RGB", (8, 8)).save(tmp_path / "p.png")
    cases = [
        ([str(tmp_path / "nope"), str(tmp_path / "a.wav")], "no such bundle folder"),
        ([str(images), str(tmp_path / "missing.jpg")], "no such file"),
        ([str(images), str(tmp_path / "broken.jpg")], "cannot read as an image"),
        ([str(images), str(tmp_path / "a.wav")], "a sound file, but"),
        ([str(sounds), str(tmp_path / "p.png")], "pass a sound file or an image bundle"),
        ([str(images), str(tmp_path / "p.png"), "--variant", "int8"], "no 'int8' variant"),
    ]
    for argv, message in cases:
        assert edge_main(["predict", *argv]) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err, (argv, err)


def test_a_short_sound_in_a_long_quiet_recording_is_found_like_the_trainer_does(tmp_path: Path) -> None:
    bundle = tone_bundle(tmp_path / "tones", sample_rate=16000, window=8000, hop=4000)
    audio = np.zeros(32000, np.float32)
    audio[15000:18000] = tone(4000, 3000 / 16000, 16000)  # a 0.19 s beep in 2 s of near silence
    audio += tone(300, 2.0, 16000, amplitude=0.01)  # a quiet hum around it (34 dB below the beep)
    wav = tmp_path / "beep.wav"
    soundfile.write(wav, audio, 16000)
    centred = predict_file(bundle, wav)
    assert centred.label == "high" and centred.windows == 1  # one window centred on the beep
    everything = predict_file(bundle, wav, all_windows=True)
    assert everything.windows == 7 and everything.label == "low"  # the hum dominates the whole-file average
