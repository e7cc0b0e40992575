"""The in-graph log-mel front end against torchaudio's MelSpectrogram, on real (espeak-ng) speech."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torchaudio

from edge.core.audio import load_audio, resample
from trainer.audio.frontend import FrontEndConfig, LogMel

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (scripts/setup.sh installs it)")


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> torch.Tensor:
    """Two spoken phrases at 16 kHz, as a [2, samples] batch."""
    root = tmp_path_factory.mktemp("speech")
    rows = []
    for i, (voice, text) in enumerate((("en-us+f3", "seven"), ("en-gb-scotland+m2", "left right"))):
        wav = root / f"{i}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), text], check=True, capture_output=True)
        samples, rate = load_audio(wav)
        rows.append(resample(samples, rate, 16000)[:16000])
    n = min(len(r) for r in rows)
    return torch.from_numpy(np.stack([r[:n] for r in rows]))


def _reference(config: FrontEndConfig) -> torchaudio.transforms.MelSpectrogram:
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length, n_mels=config.n_mels,
        f_min=config.f_min, f_max=config.f_max, window_fn=torch.hann_window, power=2.0, center=True,
        pad_mode="constant", mel_scale="htk", norm=None,
    )


@pytest.mark.parametrize("config", [FrontEndConfig(), FrontEndConfig(n_fft=400, hop_length=160, n_mels=64)], ids=["default", "400-160-64"])
@pytest.mark.parametrize("exportable", [True, False], ids=["conv-kernels", "stft"])
def test_mel_power_matches_torchaudio_on_speech(speech: torch.Tensor, config: FrontEndConfig, exportable: bool) -> None:
    front = LogMel(config, normalize=False)
    front.exportable = exportable
    got = front.mel_power(speech)
    want = _reference(config)(speech)
    assert got.shape == want.shape
    # relative to the loudest bin, and in the log domain where the model sees it (speech is > -60 dB here)
    assert float((got - want).abs().max() / want.abs().max()) < 1e-5
    loud = want > want.max() * 1e-6
    log_error = (torch.log(got[loud] + config.log_eps) - torch.log(want[loud] + config.log_eps)).abs().max()
    assert float(log_error) < 1e-3


def test_exported_front_end_uses_only_plain_operators_and_matches(speech: torch.Tensor, tmp_path: Path) -> None:
    import onnxruntime as ort

    front = LogMel(FrontEndConfig())
    front.fit_scale(speech)
    path = tmp_path / "front.onnx"
    torch.onnx.export(front, (speech[:1],), str(path), input_names=["waveform"], output_names=["logmel"],
                      dynamic_axes={"waveform": {0: "n"}}, opset_version=17, dynamo=False)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "STFT" not in ops and "DFT" not in ops
    assert {"Conv", "MatMul", "Log"} <= ops
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"waveform": speech.numpy()})[0]
    with torch.no_grad():
        want = front(speech).numpy()
    assert got.shape == want.shape == (2, 1, 40, FrontEndConfig().n_frames(speech.shape[1]))
    assert np.abs(got - want).max() < 1e-3


def test_normalisation_removes_microphone_gain(speech: torch.Tensor) -> None:
    """A quieter microphone (-14 dB) gives the same features, as long as the room noise is above the
    log floor (log_eps, about -80 dBFS), which it is for any real microphone."""
    room = speech + 0.01 * torch.randn(speech.shape, generator=torch.Generator().manual_seed(0))
    front = LogMel(FrontEndConfig())
    front.fit_scale(room)
    with torch.no_grad():
        quiet, loud = front(room * 0.2), front(room)
    assert float((quiet - loud).abs().max()) < 0.01
    assert 0.5 < float(loud.std()) < 2.0
