"""The bundle contract: what load_bundle accepts and what it refuses, with real ONNX models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.core.bundle import BundleError, load_bundle, read_labels, write_manifest
from edge.core.session import Classifier
from tests.support.onnx_models import make_bundle
from tests.support.onnx_models import tiny_image_model as _tiny_image_model


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
