"""Log-mel front end as a torch module that exports to plain ONNX operators.

The device gets raw waveform windows and must compute exactly the features the model was trained on,
so the front end lives inside the exported graph. `torch.stft` exports to the ONNX STFT op, which
TensorRT and the quantization tools lack; here the short-time Fourier transform is a strided 1-D
convolution with fixed Hann-windowed cosine/sine kernels (Conv), power is Mul/Add, the mel filterbank
a MatMul and the compression Log: every execution provider has those.

Matches `torchaudio.transforms.MelSpectrogram(n_fft, hop_length, n_mels, center=True,
pad_mode="constant", power=2, mel_scale="htk")` (tests/trainer/audio/test_frontend.py checks it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from edge.core.audio import DEFAULT_SAMPLE_RATE


@dataclass(frozen=True)
class FrontEndConfig:
    sample_rate: int = DEFAULT_SAMPLE_RATE
    n_fft: int = 512  # 32 ms at 16 kHz
    hop_length: int = 320  # 20 ms: half the frames of the usual 10 ms for half the CNN's work, no loss measured
    n_mels: int = 40
    f_min: float = 20.0
    f_max: float | None = None  # None: Nyquist
    log_eps: float = 1e-6
    mean: str = "band"  # what is subtracted: "window" (one mean per window) or "band" (per mel band, over time)

    def n_frames(self, samples: int) -> int:
        return 1 + samples // self.hop_length  # centred frames, as torchaudio's center=True

    def describe(self) -> dict[str, Any]:
        """What the graph computes, for the manifest's `front_end` entry."""
        return {
            "type": "log_mel_in_graph",
            **asdict(self),
            "f_max": self.f_max or self.sample_rate / 2,
            "window": "hann (periodic)",
            "center": "zero padding of n_fft/2 on both sides",
            "mel_scale": "htk",
            "power": 2.0,
            "compression": "log(mel + log_eps)",
            "normalization": ("per window: minus each mel band's mean over time" if self.mean == "band" else "per "
                              "window: minus its mean log-mel")
            + "; divided by `scale`, fitted on the training set",
        }


def mel_filterbank(config: FrontEndConfig) -> torch.Tensor:
    """[n_freqs, n_mels] HTK mel triangles, no area normalisation (torchaudio's defaults)."""
    import torchaudio

    return torchaudio.functional.melscale_fbanks(
        n_freqs=config.n_fft // 2 + 1,
        f_min=config.f_min,
        f_max=config.f_max or config.sample_rate / 2,
        n_mels=config.n_mels,
        sample_rate=config.sample_rate,
        norm=None,
        mel_scale="htk",
    )


class LogMel(nn.Module):
    """Waveform [batch, samples] -> log-mel power [batch, 1, n_mels, frames], ready for a 2-D CNN.

    With `normalize`, each window's mean log-mel is removed (so the microphone's gain does not matter)
    and the result divided by `scale`, a constant fitted on the training set by `fit_scale`."""

    # buffers registered in __init__ (nn.Module.__getattr__ is typed Tensor | Module)
    kernels: torch.Tensor
    mel: torch.Tensor
    scale: torch.Tensor
    window: torch.Tensor

    def __init__(self, config: FrontEndConfig = FrontEndConfig(), normalize: bool = True) -> None:
        super().__init__()
        self.config = config
        self.normalize = normalize
        n_fft = config.n_fft
        n_freqs = n_fft // 2 + 1
        n = torch.arange(n_fft, dtype=torch.float64)
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        k = torch.arange(n_freqs, dtype=torch.float64)[:, None]
        phase = 2.0 * math.pi * k * n[None, :] / n_fft
        kernels = torch.cat([torch.cos(phase) * window, -torch.sin(phase) * window], dim=0)  # [2F, n_fft]
        self.register_buffer("kernels", kernels.to(torch.float32)[:, None, :], persistent=True)
        self.register_buffer("mel", mel_filterbank(config).to(torch.float32), persistent=True)  # [F, M]
        self.register_buffer("scale", torch.ones(()), persistent=True)
        self.register_buffer("window", window.to(torch.float32), persistent=False)
        self.n_freqs = n_freqs
        self.exportable = False  # True forces the convolution path outside export too (tests, parity)

    def power_spectrogram(self, waveform: torch.Tensor) -> torch.Tensor:
        """[batch, samples] -> |STFT|^2 [batch, frames, n_freqs].

        Exported (and with `exportable`) as the fixed-kernel convolution; in training the same numbers
        come from torch.stft's FFT, several times faster on a CPU."""
        if not (self.exportable or torch.onnx.is_in_onnx_export()):
            spec = torch.stft(waveform, self.config.n_fft, self.config.hop_length, window=self.window, center=True,
                              pad_mode="constant", return_complex=True)
            return (spec.real.square() + spec.imag.square()).transpose(1, 2)
        frames = nn.functional.conv1d(waveform[:, None, :], self.kernels, stride=self.config.hop_length, padding=self.config.n_fft // 2)
        real, imag = frames[:, : self.n_freqs], frames[:, self.n_freqs :]
        return (real * real + imag * imag).transpose(1, 2)

    def mel_power(self, waveform: torch.Tensor) -> torch.Tensor:
        """[batch, samples] -> mel power [batch, n_mels, frames] (torchaudio's MelSpectrogram layout)."""
        return torch.matmul(self.power_spectrogram(waveform), self.mel).transpose(1, 2)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        logmel = torch.log(self.mel_power(waveform) + self.config.log_eps)
        if self.normalize:
            dims = (2,) if self.config.mean == "band" else (1, 2)
            logmel = (logmel - logmel.mean(dim=dims, keepdim=True)) / self.scale
        return logmel[:, None]

    @torch.no_grad()
    def fit_scale(self, waveforms: torch.Tensor) -> float:
        """Sets `scale` to the standard deviation of mean-removed log-mel over these training windows."""
        self.scale.fill_(1.0)
        features = self.forward(waveforms)
        value = float(features.std().clamp_min(1e-3))
        self.scale.fill_(value)
        return value
