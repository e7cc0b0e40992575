"""`trainer import-tm` on the real Teachable Machine Keras (.h5) and TF.js exports in
../shared/fixtures/teachable-machine, against an independent reference.

The reference is a plain numpy evaluation of the export, written here in channels-last like Keras and sharing
no code with trainer/tm: it reads the .h5 with h5py and weights.bin with the byte layout of model.json itself,
walks the layer configs and computes each layer with numpy (convolutions as sums over sliding windows). Why
not TF.js itself: it would need Node packages installed at setup for a test whose question is "does the ONNX
graph compute what the layer configs and weights say", which an independent evaluator answers without a second
runtime; the TF.js and Keras exports of one model are also checked against each other. The pixels are the
device's own (edge/core/images.py), scaled as Teachable Machine does ((x / 127.5) - 1).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from edge.core.bundle import load_bundle
from edge.core.images import decode_image, fit_image, model_min_side
from edge.core.session import Classifier
from trainer.tm.importer import import_tm

SIZE = (224, 224)
# The issue asks for 0.01; the conversion is exact up to float rounding (about 1e-5 measured), and a bound this
# tight also catches small slips such as dividing the pixels by 128 instead of 127.5.
FLOAT_TOLERANCE = 1e-3


# -- the independent reference -----------------------------------------------------------------------------


def h5_reference_weights(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])
        weights: dict[str, dict[str, np.ndarray]] = {}
        f["model_weights"].visititems(
            lambda name, obj: weights.setdefault(name.split("/")[-2], {}).__setitem__(name.split("/")[-1].split(":")[0], obj[()])
            if isinstance(obj, h5py.Dataset) else None)
    return config, weights


def tfjs_reference_weights(model_json: Path) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    doc = json.loads(model_json.read_text())
    weights: dict[str, dict[str, np.ndarray]] = {}
    for group in doc["weightsManifest"]:
        data = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        values = np.frombuffer(data, dtype="<f4")
        at = 0
        for spec in group["weights"]:
            n = int(np.prod(spec["shape"]))
            layer, weight = spec["name"].rsplit("/", 1)
            weights.setdefault(layer, {})[weight] = values[at : at + n].reshape(spec["shape"])
            at += n
    return doc["modelTopology"]["model_config"] if "model_config" in doc["modelTopology"] else doc["modelTopology"], weights


def _pad_same(x: np.ndarray, k: tuple[int, int], s: tuple[int, int]) -> np.ndarray:
    pads = []
    for size, kk, ss in zip(x.shape[1:3], k, s):
        total = max((-(-size // ss) - 1) * ss + kk - size, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))


def _windows(x: np.ndarray, k: tuple[int, int], s: tuple[int, int]) -> np.ndarray:
    """[N, OH, OW, C, kh, kw] views of the kh x kw windows every s pixels."""
    return sliding_window_view(x, k, axis=(1, 2))[:, :: s[0], :: s[1]]


def _act(x: np.ndarray, name: str) -> np.ndarray:
    if name == "relu":
        return np.maximum(x, 0)
    if name == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    assert name == "linear", name
    return x


def reference_layer(layer: dict[str, Any], xs: list[np.ndarray], w: dict[str, dict[str, np.ndarray]]) -> np.ndarray:
    kind, cfg = layer["class_name"], layer["config"]
    x = xs[0]
    lw = w.get(cfg.get("name", ""), {})
    if kind in ("InputLayer", "Dropout"):
        return x
    if kind == "ZeroPadding2D":
        (t, b), (left, r) = cfg["padding"]
        return np.pad(x, ((0, 0), (t, b), (left, r), (0, 0)))
    if kind in ("Conv2D", "DepthwiseConv2D"):
        k, s = tuple(cfg["kernel_size"]), tuple(cfg["strides"])
        if cfg["padding"] == "same":
            x = _pad_same(x, k, s)
        win = _windows(x, k, s)  # [N, OH, OW, C, kh, kw]
        if kind == "Conv2D":
            y = np.einsum("nhwcij,ijco->nhwo", win, lw["kernel"], optimize=True)
        else:
            y = np.einsum("nhwcij,ijc->nhwc", win, lw["depthwise_kernel"][..., 0], optimize=True)
        if cfg.get("use_bias"):
            y = y + lw["bias"]
        return _act(y, cfg["activation"])
    if kind == "BatchNormalization":
        return (x - lw["moving_mean"]) / np.sqrt(lw["moving_variance"] + cfg["epsilon"]) * lw["gamma"] + lw["beta"]
    if kind == "ReLU":
        return np.minimum(np.maximum(x, 0), cfg["max_value"] if cfg.get("max_value") is not None else np.inf)
    if kind == "Add":
        return sum(xs[1:], xs[0])
    if kind == "MaxPooling2D":
        return _windows(x, tuple(cfg["pool_size"]), tuple(cfg["strides"])).max(axis=(4, 5))
    if kind == "Flatten":
        return x.reshape(len(x), -1)
    if kind == "GlobalAveragePooling2D":
        return x.mean(axis=(1, 2))
    if kind == "Dense":
        y = x @ lw["kernel"]
        if cfg.get("use_bias"):
            y = y + lw["bias"]
        return _act(y, cfg["activation"])
    raise AssertionError(f"reference has no {kind}")


def reference_model(config: dict[str, Any], x: np.ndarray, w: dict[str, dict[str, np.ndarray]]) -> np.ndarray:
    layers = config["config"]["layers"] if isinstance(config["config"], dict) else config["config"]
    if config["class_name"] == "Sequential":
        for layer in layers:
            nested = layer["class_name"] in ("Sequential", "Functional", "Model")
            x = reference_model(layer, x, w) if nested else reference_layer(layer, [x], w)
        return x
    values = {config["config"]["input_layers"][0][0]: x}
    for layer in layers:
        if layer["name"] in values:
            continue
        inputs = [values[e[0]] for e in layer["inbound_nodes"][0]]
        nested = layer["class_name"] in ("Sequential", "Functional", "Model")
        values[layer["name"]] = reference_model(layer, inputs[0], w) if nested else reference_layer(layer, inputs, w)
    return values[config["config"]["output_layers"][0][0]]


def reference_predict(config: dict[str, Any], weights: dict[str, dict[str, np.ndarray]], pixels: np.ndarray) -> np.ndarray:
    scaled = pixels.astype(np.float64) / 127.5 - 1.0  # Teachable Machine's scaling
    return np.concatenate([reference_model(config, scaled[i : i + 8], weights) for i in range(0, len(scaled), 8)]).astype(np.float32)


# -- the fixtures --------------------------------------------------------------------------------------------


def fit(path_or_bytes: Path | bytes) -> np.ndarray:
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    return fit_image(decode_image(source, min_side=model_min_side(SIZE)), SIZE)  # type: ignore[arg-type]


def folder_samples(folder: Path, every: int, names: dict[str, str] | None = None) -> list[tuple[str, np.ndarray]]:
    """(true label, pixels) of every `every`-th photo of each class folder."""
    out = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for photo in sorted(class_dir.iterdir())[::every]:
            out.append(((names or {}).get(class_dir.name, class_dir.name), fit(photo)))
    return out


def project_samples(project: Path, every: int) -> list[tuple[str, np.ndarray]]:
    """(class, pixels) of every `every`-th sample of a Teachable Machine project file (`<Class>-!-<n>.jpg`)."""
    with zipfile.ZipFile(project) as z:
        names = sorted((n for n in z.namelist() if "-!-" in n), key=lambda n: (n.split("-!-")[0], int(n.split("-!-")[1].split(".")[0])))
        return [(n.split("-!-")[0], fit(z.read(n))) for n in names[::every]]


# (export folder, model file, photos with their true class or None, photo source)
FIXTURES = {
    "keras-catdog": ("keras-catdog/model", "keras_model.h5"),
    "keras-handsign": ("keras-handsign", "keras_model.h5"),
    "keras-with-project": ("keras-with-project/converted_keras", "keras_model.h5"),
    "tfjs-signs": ("tfjs-signs/tm-my-image-model", "model.json"),
    "tfjs-keras-same-model/tfjs": ("tfjs-keras-same-model/tfjs", "model.json"),
    "tfjs-keras-same-model/keras": ("tfjs-keras-same-model/keras", "keras_model.h5"),
}


def samples_for(name: str, tm: Path) -> list[tuple[str | None, np.ndarray]]:
    general: list[tuple[str | None, np.ndarray]] = [(None, fit(p)) for p in sorted((tm.parent / "photos").glob("*.jpg"))]
    if name == "keras-catdog":
        return general + [(p.stem, fit(p)) for p in sorted((tm / "keras-catdog" / "test_images").glob("*.jpg"))]
    if name == "keras-handsign":
        return general + list(folder_samples(tm / "keras-handsign" / "images", 5))
    if name == "tfjs-signs":
        renamed = {"howareyou": "How Are You ?", "ThankYou": "Thank You"}
        return general + list(folder_samples(tm / "tfjs-signs" / "images", 5, renamed))
    project = tm / name.split("/")[0] / "project.tm"
    return general + list(project_samples(project, 12))


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_layers_export_matches_numpy_reference(shared_dir: Path, tmp_path: Path, name: str) -> None:
    tm = shared_dir / "teachable-machine"
    folder, model_file = FIXTURES[name]
    result = import_tm(tm / folder, tmp_path / "bundle")
    assert result.export_format == ("keras" if model_file.endswith(".h5") else "tfjs")
    samples = samples_for(name, tm)
    pixels = np.stack([p for _, p in samples])
    bundle = load_bundle(result.bundle)
    ours = Classifier(bundle, threads=1).predict_images(pixels)
    loader = h5_reference_weights if model_file.endswith(".h5") else tfjs_reference_weights
    config, weights = loader(tm / folder / model_file)
    reference = reference_predict(config, weights, pixels)
    diff = float(np.abs(ours - reference).max())
    labelled = [(i, truth) for i, (truth, _) in enumerate(samples) if truth is not None]
    correct = sum(bundle.labels[int(ours[i].argmax())] == truth for i, truth in labelled)
    print(f"\n{name}: fp32 vs numpy reference on {len(samples)} photos, max |dp| {diff:.1e}; accuracy on {len(labelled)} "
          f"labelled samples {correct}/{len(labelled)}")
    assert diff < FLOAT_TOLERANCE
    assert (ours.argmax(1) == reference.argmax(1)).all()
    # The model's own training photos: a preprocessing unlike Teachable Machine's would lose most of them.
    assert correct >= 0.8 * len(labelled)


def test_tfjs_labels_come_from_metadata_in_output_order(shared_dir: Path, tmp_path: Path) -> None:
    result = import_tm(shared_dir / "teachable-machine" / "tfjs-signs" / "tm-my-image-model", tmp_path / "b")
    bundle = load_bundle(result.bundle)
    assert list(bundle.labels) == ["Hello", "How Are You ?", "Thank You"]
    assert bundle.manifest["source"] == "teachable-machine"
    assert set(bundle.manifest["source_export"]["files"]) == {"model.json", "weights.bin", "metadata.json"}
    assert set(bundle.variants) == {"fp32"}
    # not alphabetical: the order of metadata.json is the output order
    other = import_tm(shared_dir / "teachable-machine" / "tfjs-keras-same-model" / "tfjs", tmp_path / "c")
    assert list(load_bundle(other.bundle).labels) == ["NO DR", "MILD DR", "MODERATE DR", "PROLIFERATIVE DR", "SEVERE DR"]


def test_keras_and_tfjs_exports_of_one_model_agree(shared_dir: Path, tmp_path: Path) -> None:
    tm = shared_dir / "teachable-machine"
    pixels = np.stack([p for _, p in project_samples(tm / "tfjs-keras-same-model" / "project.tm", 20)])
    runs = []
    for kind in ("keras", "tfjs"):
        result = import_tm(tm / "tfjs-keras-same-model" / kind, tmp_path / kind)
        runs.append(Classifier(load_bundle(result.bundle), threads=1).predict_images(pixels))
    assert float(np.abs(runs[0] - runs[1]).max()) < 1e-6
