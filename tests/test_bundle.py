"""The bundle contract: what load_bundle accepts and what it refuses, with real ONNX models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edge.runtime.bundle import BundleError, load_bundle, read_labels, write_labels, write_manifest
from edge.runtime.session import Classifier


def _tiny_image_model(path: Path, classes: int, size: int = 8) -> None:
    """uint8 NHWC image -> mean colour -> linear -> softmax, built directly with ONNX (no torch)."""
    x = helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", size, size, 3])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes])
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, classes], np.linspace(-1, 1, 3 * classes).astype(np.float32).tolist())
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2])
    nodes = [
        helper.make_node("Cast", ["image"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["xf", "axes"], ["m"], keepdims=0),
        helper.make_node("MatMul", ["m", "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    graph = helper.make_graph(nodes, "tiny", [x], [y], initializer=[w, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))


def make_bundle(root: Path, labels: list[str], size: int = 8) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    _tiny_image_model(root / "model.onnx", len(labels), size)
    write_labels(root / "labels.txt", labels)
    write_manifest(
        root,
        {
            "task": "image",
            "labels": labels,
            "input": {"name": "image", "dtype": "uint8", "shape": [-1, size, size, 3]},
            "output": {"name": "probabilities", "dtype": "float32", "shape": [-1, len(labels)]},
            "preprocessing": {"resize": "center_crop_square", "size": [size, size], "color": "RGB"},
            "variants": {"fp32": "model.onnx"},
        },
    )
    return root


def test_valid_bundle_loads_and_predicts(tmp_path: Path) -> None:
    bundle = load_bundle(make_bundle(tmp_path / "b", ["cat", "dog"]))
    assert bundle.labels == ("cat", "dog")
    clf = Classifier(bundle)
    probs = clf.predict_image(np.full((30, 50, 3), 200, np.uint8))
    assert probs.shape == (2,)
    assert abs(float(probs.sum()) - 1.0) < 1e-5


def test_checksum_mismatch_is_refused(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b", ["cat", "dog"])
    with open(root / "model.onnx", "ab") as handle:
        handle.write(b"junk")
    with pytest.raises(BundleError, match="SHA-256"):
        load_bundle(root)


def test_labels_mismatch_is_refused(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b", ["cat", "dog"])
    (root / "labels.txt").write_text("dog\ncat\n")
    with pytest.raises(BundleError, match="differ"):
        load_bundle(root)


def test_newer_format_is_refused(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b", ["cat", "dog"])
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["format_version"] = 99
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="not supported"):
        load_bundle(root)


def test_model_label_count_mismatch_is_refused(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b", ["cat", "dog"])
    _tiny_image_model(root / "model.onnx", 3)
    manifest = json.loads((root / "manifest.json").read_text())
    write_manifest(root, manifest)  # checksums fine, but 3 outputs for 2 labels
    with pytest.raises(BundleError, match="3 outputs"):
        Classifier(load_bundle(root))


def test_missing_folder_and_garbage_manifest(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no such bundle"):
        load_bundle(tmp_path / "nope")
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(tmp_path / "g")


def test_teachable_machine_labels_format(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("0 Ten Rupees\n1 Twenty\n")
    assert read_labels(path) == ["Ten Rupees", "Twenty"]
