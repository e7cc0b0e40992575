"""Sound classifiers: the in-graph log-mel front end followed by a backbone over the log-mel image.

- `compact_cnn` (default): four 3x3 conv blocks trained from scratch, ~15 M multiply-adds per
  1 s window. Measured best on speakers never heard (bench/bench_audio_trainer.py) and a few ms on one core.
- `efficientnet_lite0`: the image trainer's ImageNet-pretrained EfficientNet-Lite0 (`trainer.image.backbones`)
  over the log-mel image (resized to 96x96, copied to 3 channels), frozen, with the image trainer's
  head trained on cached embeddings (trainer.audio.loops.train_frozen_backbone).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from trainer.audio.frontend import FrontEndConfig, LogMel

AUDIO_BACKBONES = ("compact_cnn", "efficientnet_lite0")
DEFAULT_AUDIO_BACKBONE = "compact_cnn"


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CompactCNN(nn.Module):
    """Log-mel image [n, 1, mels, frames] -> features [n, dim]."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv_block(1, w), nn.MaxPool2d(2),
            _conv_block(w, 2 * w), nn.MaxPool2d(2),
            _conv_block(2 * w, 4 * w), nn.MaxPool2d(2),
            _conv_block(4 * w, 6 * w),
        )
        self.feature_dim: int = 6 * w
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's Module.to overloads omit memory_format, which it accepts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels-last runs these small convolutions ~1.5x faster on CPU (measured); same numbers
        return self.features(x.contiguous(memory_format=torch.channels_last)).mean(dim=(2, 3))


class LogMelImageBackbone(nn.Module):
    """An ImageNet CNN over the log-mel image: resized to `size`, copied into 3 channels."""

    def __init__(self, name: str, size: tuple[int, int] = (96, 96), weights: str | None = None) -> None:
        super().__init__()
        from trainer.image.backbones import GlobalPool, build_backbone

        backbone = build_backbone(name, weights)
        self.size = size
        self.body = nn.Sequential(backbone.stem, *backbone.blocks, backbone.head_conv, GlobalPool())
        self.feature_dim = backbone.feature_dim
        self.weights = backbone.weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return self.body(x.expand(-1, 3, -1, -1))


BUILDERS: dict[str, Callable[[int], CompactCNN | LogMelImageBackbone]] = {
    "compact_cnn": lambda width: CompactCNN(width),
    "efficientnet_lite0": lambda width: LogMelImageBackbone("efficientnet_lite0"),
}


class AudioClassifier(nn.Module):
    """Waveform [n, samples] -> logits [n, classes]; `probabilities` is what gets exported."""

    def __init__(self, backbone: str, n_classes: int, front_end: FrontEndConfig = FrontEndConfig(), dropout: float = 0.2,
                 width: int = 16) -> None:
        super().__init__()
        if backbone not in BUILDERS:
            raise ValueError(f"unknown sound backbone {backbone!r}; choose one of {', '.join(AUDIO_BACKBONES)}")
        self.backbone_name = backbone
        self.front_end = LogMel(front_end)
        self.backbone = BUILDERS[backbone](width)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.backbone.feature_dim, n_classes)

    def features(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.backbone(logmel)))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.features(self.front_end(waveform))


class AudioProbabilityModel(nn.Module):
    """What the bundle holds: waveform in, softmax probabilities out (the image counterpart is
    trainer.image.backbones.ImageProbabilityModel)."""

    def __init__(self, model: AudioClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(waveform), dim=-1)
