"""End to end on real (small) data: `trainer train` -> bundle -> `trainer evaluate --json`, with the
real EfficientNet-Lite0 weights, ONNX export, parity check, int8 quantization and ONNX Runtime."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from edge.core.bundle import load_bundle
from edge.core.images import decode_image, fit_image
from edge.core.session import Classifier
from trainer.cli import main
from trainer.demo.image_samples import write_shapes_dataset
from trainer.export import ort_predict

SHAPES = ("circle", "square")
# fp32 vs int8 of the trained bundle, max |diff| of probabilities on 12 new images: measured 0.0075 (mean
# 0.0023, no top-1 change, the same on every run); calibrated on all-zero images instead 0.17, and an
# untrained head (optimizer.step() removed) 0.014. With the issue 17 recipe (3 float convolutions,
# full-range weights) measured 0.0079 (mean 0.0027).
INT8_TOLERANCE = 0.01


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pipeline")
    data = write_shapes_dataset(root / "data", per_class=10, seed=1, size=96, shapes=SHAPES)
    (data / "circle" / "broken.jpg").write_bytes((data / "circle" / "circle_000.png").read_bytes()[:200])
    (data / "square" / "list.jpg").write_text("eggs, milk\n")
    out = root / "bundle"
    cache = root / "cache"
    rc = main(["train", str(data), "-o", str(out), "--epochs", "8", "--augment", "1", "--cache-dir", str(cache), "--quiet"])
    assert rc == 0
    return {"root": root, "data": data, "out": out, "cache": cache}


@pytest.mark.slow
def test_bundle_is_complete_and_checked(trained: dict[str, Path]) -> None:
    bundle = load_bundle(trained["out"])
    assert bundle.labels == SHAPES and bundle.task == "image"
    assert bundle.input.dtype == "uint8" and bundle.input.shape == (-1, 224, 224, 3)
    assert set(bundle.variants) == {"fp32", "int8"}
    manifest = bundle.manifest
    assert manifest["preprocessing"]["resize"] == "center_crop_square"
    assert manifest["preprocessing"]["normalization"] == "in_graph: (x - 127) / 128"
    # The trainer raises beyond its 1e-3 parity tolerance, so assert what the export really gives (measured
    # 1.7e-08 over the 4 validation images, no top-1 change).
    parity = manifest["parity"]
    assert parity["max_abs_diff"] < 1e-5 and parity["top1_disagreements"] == 0 and parity["n"] == 4, parity
    for variant in ("fp32", "int8"):
        # Circles vs squares, chance 1/2: measured 1.0 for both; with the head's optimizer.step() removed
        # 0.75 (fp32) and 0.5 (int8): pretrained features make even an untrained head better than chance.
        assert manifest["metrics"][variant]["accuracy"] == 1.0, manifest["metrics"][variant]
        assert manifest["metrics"][variant]["n"] == 4  # ceil(15 % of 10 usable) per class = 2 + 2
    assert manifest["backbone"] == "efficientnet_lite0" and manifest["trainer_version"]
    # The device's own session runs both variants and returns probabilities.
    for variant in ("fp32", "int8"):
        probs = Classifier(bundle, variant).predict_image(np.full((50, 70, 3), 128, np.uint8))
        assert probs.shape == (2,) and abs(float(probs.sum()) - 1) < 1e-3


@pytest.mark.slow
def test_report_counts_skipped_files_and_is_self_contained(trained: dict[str, Path]) -> None:
    out = trained["out"]
    report = json.loads((out / "report.json").read_text())
    skipped = sorted(Path(s["path"]).name for s in report["data"]["skipped"])
    assert skipped == ["broken.jpg", "list.jpg"]
    assert report["data"]["counts"]["train"] == {"circle": 8, "square": 8}  # 10 usable each, 2 held out
    history = report["history"]
    assert len(history) == 8 and {"train_loss", "val_loss", "train_accuracy", "val_accuracy"} <= set(history[0])
    # The head learns: measured train loss 0.44 after epoch 1, 0.008 after epoch 8 (constant without optimizer.step()).
    assert history[-1]["train_loss"] < 0.2 * history[0]["train_loss"], history
    assert report["timing"]["embed"] > 0 and report["timing"]["total"] >= report["timing"]["embed"]
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 3  # two confusion matrices and the curves, inlined
    assert "broken.jpg" in page
    for name in ("confusion_matrix.png", "confusion_matrix_int8.png", "curves.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_evaluate_json_on_new_images(trained: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    holdout = write_shapes_dataset(trained["root"] / "holdout", per_class=6, seed=99, size=96, shapes=SHAPES)
    for variant in ("fp32", "int8"):
        capsys.readouterr()
        assert main(["evaluate", str(trained["out"]), str(holdout), "--variant", variant, "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert {"accuracy", "per_class", "labels", "confusion_matrix", "n", "precision", "recall", "skipped"} <= set(result)
        assert result["labels"] == list(SHAPES) and result["n"] == 12 and result["variant"] == variant
        assert sum(map(sum, result["confusion_matrix"])) == 12
        assert set(result["per_class"]) == set(SHAPES)
        assert result["accuracy"] >= 0.75, result  # circles vs squares from 16 training images


@pytest.mark.slow
def test_int8_probabilities_stay_close_to_fp32_on_new_images(trained: dict[str, Path]) -> None:
    """The real EfficientNet-Lite0 bundle, int8 calibrated by the trainer on its training images."""
    holdout = write_shapes_dataset(trained["root"] / "holdout-int8", per_class=6, seed=99, size=96, shapes=SHAPES)
    bundle = load_bundle(trained["out"])
    images = np.stack([fit_image(decode_image(path), (224, 224)) for path in sorted(holdout.rglob("*.png"))])
    assert images.shape == (12, 224, 224, 3)
    fp32 = ort_predict(bundle.model_path("fp32"), images)
    int8 = ort_predict(bundle.model_path("int8"), images)
    diff = np.abs(fp32 - int8)
    assert float(diff.max()) <= INT8_TOLERANCE, f"max |diff| {diff.max():.5f}, mean {diff.mean():.5f}"
    assert np.array_equal(fp32.argmax(1), int8.argmax(1))


@pytest.mark.slow
def test_retraining_reuses_cached_embeddings(trained: dict[str, Path]) -> None:
    out2 = trained["root"] / "bundle2"
    rc = main(["train", str(trained["data"]), "-o", str(out2), "--epochs", "3", "--lr", "0.003", "--augment", "1",
               "--no-int8", "--cache-dir", str(trained["cache"]), "--quiet"])
    assert rc == 0
    report = json.loads((out2 / "report.json").read_text())
    assert report["data"]["embedding_cache_hits"] == 16 + 16 + 4  # train base + augmented views + val
    assert set(load_bundle(out2).variants) == {"fp32"}


def test_one_class_only_fails_before_training(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = write_shapes_dataset(tmp_path / "d", per_class=3, shapes=("circle",))
    with caplog.at_level(logging.ERROR):
        rc = main(["train", str(data), "-o", str(tmp_path / "out"), "--quiet"])
    assert rc == 2
    assert "only one class folder ('circle')" in caplog.text
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_evaluate_refuses_folders_the_bundle_does_not_know(trained: dict[str, Path], tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    other = write_shapes_dataset(tmp_path / "o", per_class=2, shapes=("circle", "triangle"))
    with caplog.at_level(logging.ERROR):
        rc = main(["evaluate", str(trained["out"]), str(other), "--json"])
    assert rc == 2 and "triangle" in caplog.text and "not labels of this bundle" in caplog.text
