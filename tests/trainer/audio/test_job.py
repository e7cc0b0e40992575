"""End to end: espeak-ng words -> `trainer train` (task detected) -> bundle -> `trainer evaluate` and the
device's code in a process where torch cannot be imported."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from edge.core.bundle import load_bundle
from tests.support.paths import REPO
from trainer.cli import main as trainer_main

WORDS = ("yes", "no", "stop")
VAL_WINDOWS = 9  # 3 words x 2 takes, one window each, and 3 windows of the 2 s background recording
# fp32 vs int8 of the trained bundle, max |diff| of probabilities on the validation windows: measured
# 0.00077 (mean 0.00016, no top-1 change, the same on every run); calibrated on all-zero windows: 0.27.
INT8_TOLERANCE = 0.002

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="espeak-ng and sox are needed (scripts/setup.sh installs them)",
)

# Makes `import torch` (and torchaudio/torchvision) fail, as on a Raspberry Pi with only the edge extra.
NO_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'torchaudio', 'torchvision'):
            raise ImportError('torch is not installed on this device (blocked by the test)')
        return None
sys.meta_path.insert(0, _NoTorch())
"""


@pytest.fixture(scope="session")
def speech_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train/ (3 speakers) and val/ (a 4th, unseen speaker) of three words at 8 kHz, two background
    recordings, and the problem files a maker's folder has: silent, 30 ms, stereo 48 kHz, not audio."""
    from tests.support.speech_synth import generate_words, make_background, make_speakers

    root = tmp_path_factory.mktemp("speech") / "data"
    speakers = make_speakers(4, seed=3)
    generate_words(root / "train", WORDS, speakers[:3], takes=3, seed=1, workers=2)
    generate_words(root / "val", WORDS, speakers[3:], takes=2, seed=2, workers=2)
    for i, kind in enumerate(("brown_noise", "pink_noise_hum")):
        make_background(kind, root / "train" / "_background_noise_" / f"{kind}.wav", seconds=4.0, seed=i)
    make_background("fan", root / "val" / "_background_noise_" / "fan.wav", seconds=2.0)
    bad = root / "train" / "yes"
    soundfile.write(str(bad / "silent.wav"), np.zeros(8000, np.float32), 8000, subtype="PCM_16")
    soundfile.write(str(bad / "click.wav"), 0.5 * np.ones(240, np.float32), 8000, subtype="PCM_16")  # 30 ms
    (bad / "readme.wav").write_text("not a recording")
    mono, rate = soundfile.read(str(sorted((root / "train" / "no").glob("*.wav"))[0]), dtype="float32")
    from edge.core.audio import resample

    up = resample(mono, rate, 48000)
    soundfile.write(str(root / "train" / "no" / "stereo48k.wav"), np.stack([up, 0.5 * up], axis=1), 48000, subtype="PCM_16")
    return root


@pytest.fixture(scope="session")
def bundle_dir(speech_set: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "words"
    rc = trainer_main(["train", str(speech_set), "-o", str(out), "--epochs", "3", "--quiet"])
    assert rc == 0
    return out


def test_generated_speech_is_the_same_on_every_run(tmp_path: Path) -> None:
    """The seeded set is reproducible (sox runs with -R: its dither and synth noise are seeded), so the
    measured accuracy and int8 error above are the same on every run."""
    from tests.support.speech_synth import generate_words, make_background, make_speakers

    speaker = make_speakers(1, seed=3)
    for run in ("a", "b"):
        generate_words(tmp_path / run, ("stop",), speaker, takes=1, seed=1, workers=1)
        make_background("brown_noise", tmp_path / run / "noise.wav", seconds=0.5)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.wav"))
    assert len(files) == 2
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


@pytest.mark.slow
def test_training_detects_sound_and_writes_an_audio_bundle(bundle_dir: Path) -> None:
    bundle = load_bundle(bundle_dir)
    assert bundle.task == "audio"
    assert bundle.labels == ("_background_noise_", "no", "stop", "yes")
    assert (bundle.sample_rate, bundle.window_samples, bundle.hop_samples) == (16000, 16000, 8000)
    assert bundle.input.dtype == "float32" and bundle.input.shape == (-1, 16000)
    assert bundle.preprocessing["channels"] == 1
    front = bundle.preprocessing["front_end"]
    assert front["type"] == "log_mel_in_graph" and front["n_mels"] == 40 and front["sample_rate"] == 16000
    assert set(bundle.variants) == {"fp32", "int8"}
    # The trainer raises beyond its 1e-3 parity tolerance, so assert what the export really gives: measured
    # 6e-08 over the 9 validation windows, no top-1 change.
    parity = bundle.manifest["parity"]
    assert parity["max_abs_diff"] < 1e-5 and parity["top1_disagreements"] == 0 and parity["n"] == VAL_WINDOWS, parity
    # Chance is 1/4. Measured 4/7 after 3 epochs on the unseen speaker, 2/7 with optimizer.step() removed
    # (tests/trainer/test_learning.py checks learning on a clearly separable set).
    for variant in ("fp32", "int8"):
        assert bundle.manifest["metrics"][variant]["accuracy"] >= 3 / 7, bundle.manifest["metrics"][variant]
    assert bundle.manifest["backbone"] == "compact_cnn"
    report = json.loads((bundle_dir / "report.json").read_text())
    skipped = {Path(s["path"]).name: s["reason"] for s in report["data"]["skipped"]}
    assert set(skipped) == {"silent.wav", "click.wav", "readme.wav"}
    assert "silent" in skipped["silent.wav"] and "30 ms" in skipped["click.wav"] and "cannot read" in skipped["readme.wav"]
    assert report["data"]["counts"]["train"]["no"] == 10  # 9 takes + the stereo 48 kHz file, kept
    assert len(report["history"]) == 3 and (bundle_dir / "report.html").is_file()


@pytest.mark.slow
def test_int8_keeps_the_front_end_float(bundle_dir: Path) -> None:
    import onnx

    graph = onnx.load(str(bundle_dir / "model.int8.onnx")).graph
    quantized_inputs = {i for n in graph.node if n.op_type == "DequantizeLinear" for i in n.output}
    front = [n for n in graph.node if n.name.startswith("/model/front_end/")]
    assert front and not any(i in quantized_inputs for n in front for i in n.input)
    assert any(n.op_type == "QuantizeLinear" for n in graph.node)  # the CNN is quantized


def test_int8_probabilities_stay_close_to_fp32_on_the_unseen_speaker(bundle_dir: Path, speech_set: Path) -> None:
    from edge.core.audio_windows import clip_windows, is_background_path, load_clip
    from trainer.export import ort_predict

    bundle = load_bundle(bundle_dir)
    files = sorted((speech_set / "val").rglob("*.wav"))
    windows = np.concatenate([
        clip_windows(load_clip(path, bundle.sample_rate, background=is_background_path(path)), bundle.sample_rate, bundle.window_samples,
                     bundle.hop_samples)
        for path in files
    ]).astype(np.float32)
    assert len(windows) == VAL_WINDOWS
    fp32 = ort_predict(bundle.model_path("fp32"), windows)
    int8 = ort_predict(bundle.model_path("int8"), windows)
    diff = np.abs(fp32 - int8)
    assert float(diff.max()) <= INT8_TOLERANCE, f"max |diff| {diff.max():.5f}, mean {diff.mean():.5f}"
    assert np.array_equal(fp32.argmax(1), int8.argmax(1))


def _run_without_torch(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", NO_TORCH + code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
def test_bundle_runs_and_evaluates_in_a_process_without_torch(bundle_dir: Path, speech_set: Path) -> None:
    wav = sorted((speech_set / "val" / "stop").glob("*.wav"))[0]
    out = _run_without_torch(f"""
import json, sys
try:
    import torch
    print('torch importable'); sys.exit(1)
except ImportError:
    pass
from edge.core.audio import load_audio, resample
from edge.core.audio_windows import clip_windows
from edge.core.bundle import load_bundle
from edge.core.evaluate import evaluate_bundle
from edge.core.session import Classifier
bundle = load_bundle({str(bundle_dir)!r})
samples, rate = load_audio({str(wav)!r})
window = clip_windows(resample(samples, rate, bundle.sample_rate), bundle.sample_rate, bundle.window_samples, bundle.hop_samples)[0]
result = {{}}
for variant in ('fp32', 'int8'):
    probs = Classifier(bundle, variant, threads=1).predict_waveform(window)
    metrics = evaluate_bundle(bundle, {str(speech_set)!r}, variant=variant, threads=1)
    result[variant] = {{'probs': probs.tolist(), 'accuracy': metrics['accuracy'], 'n': metrics['n'],
                        'confusion': metrics['confusion_matrix'], 'part': metrics['data']['part']}}
print(json.dumps({{'torch_loaded': 'torch' in sys.modules, **result}}))
""")
    result = json.loads(out.strip().splitlines()[-1])
    assert result["torch_loaded"] is False
    manifest = load_bundle(bundle_dir).manifest
    for variant in ("fp32", "int8"):
        probs = np.array(result[variant]["probs"])
        assert probs.shape == (4,) and abs(probs.sum() - 1) < 1e-4
        # the device's evaluation of the val split is exactly what the trainer recorded in the manifest
        assert result[variant]["part"] == "val"
        assert result[variant]["n"] == manifest["metrics"][variant]["n"] == 7  # 3 words x 2 takes + 1 background
        assert result[variant]["confusion"] == manifest["metrics"][variant]["confusion_matrix"]
    # the device's int8 session agrees with its fp32 one on this window (measured 0.00077)
    assert np.abs(np.array(result["int8"]["probs"]) - np.array(result["fp32"]["probs"])).max() <= INT8_TOLERANCE


@pytest.mark.slow
def test_trainer_evaluate_json_on_an_audio_folder(bundle_dir: Path, speech_set: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert trainer_main(["evaluate", str(bundle_dir), str(speech_set / "train"), "--variant", "int8", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(metrics["labels"]) == {"_background_noise_", "no", "stop", "yes"}
    assert metrics["n"] == 3 * 9 + 2 + 1  # every readable, non-silent file of the class folders
    assert sorted(Path(p).name for p in metrics["skipped"]) == ["click.wav", "readme.wav", "silent.wav"]
    assert set(metrics["per_class"]) == set(metrics["labels"]) and len(metrics["confusion_matrix"]) == 4  # every class has files
    confusion = np.array(metrics["confusion_matrix"])
    # the numbers agree with each other: every file counted once, accuracy = diagonal / n (measured 13 / 30)
    assert confusion.shape == (4, 4) and confusion.sum() == metrics["n"]
    assert metrics["accuracy"] == pytest.approx(np.trace(confusion) / metrics["n"])


def test_image_backbone_or_bad_window_for_sound_is_a_clear_error(speech_set: Path, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    assert trainer_main(["train", str(speech_set), "-o", str(tmp_path / "a"), "--backbone", "mobilenet_v3_small", "--quiet"]) == 2
    assert "image backbone" in caplog.text and "compact_cnn" in caplog.text
    assert trainer_main(["train", str(speech_set), "-o", str(tmp_path / "b"), "--hop", "2", "--quiet"]) == 2
    assert "--hop 2.0 s must be positive and at most the window" in caplog.text
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # nothing written


@pytest.mark.slow
def test_one_long_background_recording_is_enough(speech_set: Path, tmp_path: Path) -> None:
    """Teachable Machine users bring one background recording: its first 80 % trains, its last 20 % validates."""
    data = tmp_path / "data"
    for word in ("yes", "no"):
        shutil.copytree(speech_set / "train" / word, data / word)
    (data / "_background_noise_").mkdir()
    shutil.copy(speech_set / "train" / "_background_noise_" / "brown_noise.wav", data / "_background_noise_")
    out = tmp_path / "out"
    assert trainer_main(["train", str(data), "-o", str(out), "--epochs", "1", "--no-int8", "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["counts"]["train"]["_background_noise_"] == 1 and report["data"]["counts"]["val"]["_background_noise_"] == 1
    assert report["metrics"]["fp32"]["support"]["_background_noise_"] == 1  # the held-out 20 % was scored
    assert sorted(p.name for p in data.rglob("*") if p.is_file() and "_background_noise_" in p.parts) == ["brown_noise.wav"]
