"""edge/core/evaluate.py: the metrics `trainer evaluate` and the manifest report, checked against a tiny
3-class example worked out by hand, and the scoring path (decode -> fit -> batch -> predict) with a
recording fake classifier plus one run through a real ONNX bundle."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from edge.core import evaluate
from edge.core.audio_windows import bundle_scorer
from edge.core.bundle import load_bundle
from edge.core.datasets import DatasetError, Sample
from edge.core.evaluate import SCORERS, _image_batches, classification_metrics, evaluate_bundle, score_samples
from tests.support.onnx_models import make_color_bundle

LABELS = ["cat", "dog", "owl"]
# 9 samples. By hand, rows = true class, columns = predicted class:
#             pred cat  dog  owl    support (row sum)
#   true cat       2    1    1      4
#   true dog       1    2    0      3
#   true owl       0    1    1      2
#   predicted      3    4    2      (column sums)
Y_TRUE = [0, 0, 0, 0, 1, 1, 1, 2, 2]
Y_PRED = [0, 0, 1, 2, 1, 1, 0, 2, 1]


def test_confusion_matrix_rows_are_true_classes_columns_predicted() -> None:
    m = classification_metrics(Y_TRUE, Y_PRED, LABELS)
    assert m["confusion_matrix"] == [[2, 1, 1], [1, 2, 0], [0, 1, 1]]  # transposed: [[2,1,0],[1,2,1],[1,0,1]]
    assert type(m["confusion_matrix"][0][0]) is int


def test_accuracy_precision_recall_per_class_by_hand() -> None:
    m = classification_metrics(Y_TRUE, Y_PRED, LABELS)
    assert m["n"] == 9 and type(m["n"]) is int
    assert m["accuracy"] == pytest.approx(5 / 9)  # diagonal 2 + 2 + 1
    # recall = per-class accuracy = diagonal / row sum
    assert m["recall"] == pytest.approx({"cat": 2 / 4, "dog": 2 / 3, "owl": 1 / 2})
    assert m["per_class"] == pytest.approx({"cat": 0.5, "dog": 2 / 3, "owl": 0.5})
    # precision = diagonal / column sum (computed as recall, cat would be 0.5 and dog 2/3)
    assert m["precision"] == pytest.approx({"cat": 2 / 3, "dog": 2 / 4, "owl": 1 / 2})
    assert m["support"] == {"cat": 4, "dog": 3, "owl": 2}
    assert m["labels"] == LABELS
    assert set(m) == {"accuracy", "n", "labels", "per_class", "precision", "recall", "support", "confusion_matrix"}


def test_recall_is_a_copy_of_per_class() -> None:
    m = classification_metrics(Y_TRUE, Y_PRED, LABELS)
    m["recall"]["cat"] = 99.0
    assert m["per_class"]["cat"] == 0.5


def test_classes_without_examples_or_predictions() -> None:
    # 'bat' is predicted once but has no examples; 'eel' neither has examples nor is predicted.
    labels = ["cat", "dog", "bat", "eel"]
    m = classification_metrics([0, 0, 1, 1], [0, 2, 1, 0], labels)
    assert m["confusion_matrix"] == [[1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert m["per_class"] == {"cat": 0.5, "dog": 0.5}  # no examples: left out
    assert m["recall"] == {"cat": 0.5, "dog": 0.5}
    assert m["precision"] == {"cat": 0.5, "dog": 1.0, "bat": 0.0}  # predicted but never right
    assert m["support"] == {"cat": 2, "dog": 2, "bat": 0, "eel": 0}
    assert m["accuracy"] == 0.5


def test_a_class_with_examples_never_predicted_has_precision_zero() -> None:
    m = classification_metrics([0, 1], [0, 0], ["a", "b"])
    assert m["precision"] == {"a": 0.5, "b": 0.0}
    assert m["recall"] == {"a": 1.0, "b": 0.0}


def test_no_samples_gives_zero_accuracy_not_a_division_error() -> None:
    m = classification_metrics([], [], ["a", "b"])
    assert m["accuracy"] == 0.0 and m["n"] == 0
    assert m["per_class"] == {} and m["precision"] == {} and m["confusion_matrix"] == [[0, 0], [0, 0]]


def test_perfect_predictions() -> None:
    m = classification_metrics([0, 1, 2], [0, 1, 2], LABELS)
    assert m["accuracy"] == 1.0 and m["precision"] == {"cat": 1.0, "dog": 1.0, "owl": 1.0}
    assert all(type(v) is float for v in [m["accuracy"], *m["precision"].values(), *m["per_class"].values()])


# -- scoring path -----------------------------------------------------------------------------------

COLORS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


class FakeImageClassifier:
    """Answers by the dominant colour channel of each fitted image; records every batch."""

    def __init__(self, labels=("red", "green", "blue"), size=(8, 8), preprocessing=None, task="image") -> None:
        self.bundle = SimpleNamespace(task=task, labels=tuple(labels), image_size=size,
                                      preprocessing=preprocessing if preprocessing is not None else {})
        self.variant = "fake"
        self.batches: list[np.ndarray] = []

    def predict_images(self, fitted: np.ndarray) -> np.ndarray:
        self.batches.append(fitted.copy())
        means = fitted.reshape(len(fitted), -1, 3).mean(axis=1)
        return np.eye(3, dtype=np.float32)[np.argmax(means, axis=1)][:, : len(self.bundle.labels)]


def _png(path: Path, color, size=(8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def test_image_batches_fits_every_file_and_batches_by_batch_size(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    paths = [_png(tmp_path / f"{i}.png", COLORS[c]) for i, c in enumerate(["red", "green", "blue", "red", "blue"])]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    samples = [Sample(p, 0) for p in paths[:2]] + [Sample(bad, 0)] + [Sample(p, 0) for p in paths[2:]]
    clf = FakeImageClassifier()
    with caplog.at_level(logging.WARNING, logger="edge.core.evaluate"):
        kept, probs, skipped = _image_batches(clf, samples, batch_size=2)
    assert kept == [0, 1, 3, 4, 5]  # indices into samples; the unreadable one (2) is skipped
    assert skipped == [str(bad)]
    (record,) = caplog.records
    assert record.getMessage().startswith(f"skipping {bad}: cannot read as an image")
    assert [len(b) for b in clf.batches] == [2, 2, 1]
    assert all(b.shape[1:] == (8, 8, 3) and b.dtype == np.uint8 for b in clf.batches)
    assert [int(np.argmax(p)) for p in probs] == [0, 1, 2, 0, 2]


def test_image_batches_with_nothing_readable(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    clf = FakeImageClassifier()
    assert _image_batches(clf, [Sample(bad, 0)], 4) == ([], [], [str(bad)])
    assert clf.batches == []


def test_image_batches_crops_the_centre_square_by_default(tmp_path: Path) -> None:
    # 24 x 8 image: left and right thirds blue, centre square red. Centre crop -> red; stretch -> blue.
    img = np.zeros((8, 24, 3), np.uint8)
    img[:, :8] = COLORS["blue"]
    img[:, 8:16] = COLORS["red"]
    img[:, 16:] = COLORS["blue"]
    path = tmp_path / "wide.png"
    Image.fromarray(img).save(path)
    _, probs, _ = _image_batches(FakeImageClassifier(preprocessing={}), [Sample(path, 0)], 4)
    assert int(np.argmax(probs[0])) == 0
    _, probs, _ = _image_batches(FakeImageClassifier(preprocessing={"resize": "stretch"}), [Sample(path, 0)], 4)
    assert int(np.argmax(probs[0])) == 2


def test_image_batches_decodes_at_twice_the_model_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    real = evaluate.decode_image

    def spy(path, min_side=None):
        seen.append(min_side)
        return real(path, min_side=min_side)

    monkeypatch.setattr(evaluate, "decode_image", spy)
    path = _png(tmp_path / "r.png", COLORS["red"], (20, 20))
    _image_batches(FakeImageClassifier(size=(6, 10)), [Sample(path, 0)], 4)
    assert seen == [20]  # 2 * max(6, 10)


def test_score_samples_maps_data_set_labels_to_bundle_labels(tmp_path: Path) -> None:
    # The data set's labels are in another order than the bundle's: indices must be translated.
    data_labels = ["blue", "green", "red"]
    files = [("red", "red"), ("red", "blue"), ("green", "green"), ("blue", "blue")]  # (folder = truth, colour)
    samples = [Sample(_png(tmp_path / f"{i}.png", COLORS[c]), data_labels.index(t)) for i, (t, c) in enumerate(files)]
    m = score_samples(FakeImageClassifier(), samples, data_labels, batch_size=3)
    # bundle order red, green, blue; rows true, columns predicted
    assert m["confusion_matrix"] == [[1, 0, 1], [0, 1, 0], [0, 0, 1]]
    assert m["accuracy"] == 0.75 and m["skipped"] == [] and m["variant"] == "fake"
    assert m["labels"] == ["red", "green", "blue"]


def test_score_samples_refuses_folders_that_are_not_bundle_labels(tmp_path: Path) -> None:
    samples = [Sample(tmp_path / "x.png", 0), Sample(tmp_path / "y.png", 1), Sample(tmp_path / "z.png", 2)]
    with pytest.raises(DatasetError, match=r"^class folder\(s\) cyan, magenta are not labels of this bundle \(red, green, blue\); rename"):
        score_samples(FakeImageClassifier(), samples, ["magenta", "red", "cyan"])


def test_score_samples_refuses_unsupported_tasks() -> None:
    with pytest.raises(DatasetError, match=r"^evaluating video bundles is not supported yet$"):
        score_samples(FakeImageClassifier(task="video"), [], ["red"])


def test_scorers_cover_both_tasks() -> None:
    assert {"image": _image_batches, "audio": bundle_scorer} == SCORERS


def test_evaluate_bundle_through_onnx_runtime(tmp_path: Path) -> None:
    bundle = make_color_bundle(tmp_path / "bundle", labels=("red", "green", "blue"))
    data = tmp_path / "data"
    _png(data / "red" / "1.png", COLORS["red"])
    _png(data / "red" / "2.png", COLORS["green"])  # a mistake of the model
    _png(data / "green" / "1.png", COLORS["green"])
    _png(data / "blue" / "1.png", COLORS["blue"])
    (data / "blue" / "broken.png").write_bytes(b"\x89PNG broken")
    m = evaluate_bundle(bundle, data, batch_size=2)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert m["accuracy"] == 0.75 and m["n"] == 4
    assert m["precision"] == {"red": 1.0, "green": 0.5, "blue": 1.0}
    assert m["recall"] == {"red": 0.5, "green": 1.0, "blue": 1.0}
    assert m["skipped"] == [str(data / "blue" / "broken.png")]
    assert m["variant"] == "fp32"
    assert m["data"] == {"root": str(data), "part": "all"}
    assert m["bundle"] == str(bundle)
    # an already loaded bundle is used as it is
    assert evaluate_bundle(load_bundle(bundle), data)["confusion_matrix"] == m["confusion_matrix"]


def test_score_samples_batches_16_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def scorer(clf, samples, batch_size):
        seen.append(batch_size)
        return [], [], []

    monkeypatch.setitem(evaluate.SCORERS, "image", scorer)
    score_samples(FakeImageClassifier(), [], ["red"])
    score_samples(FakeImageClassifier(), [], ["red"], batch_size=3)
    assert seen == [16, 3]


def test_evaluate_bundle_passes_variant_threads_and_batch_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from edge.core.bundle import write_manifest

    bundle = make_color_bundle(tmp_path / "bundle", labels=("red", "green", "blue"))
    shutil.copy(bundle / "model.onnx", bundle / "model.int8.onnx")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["variants"]["int8"] = "model.int8.onnx"
    write_manifest(bundle, manifest)
    data = tmp_path / "data"
    for color in COLORS:
        _png(data / color / "1.png", COLORS[color])
    made, batches = [], []
    real_classifier, real_scorer = evaluate.Classifier, evaluate.SCORERS["image"]

    def classifier(loaded, **kw):
        made.append(kw)
        return real_classifier(loaded, **kw)

    def scorer(clf, samples, batch_size):
        batches.append(batch_size)
        return real_scorer(clf, samples, batch_size)

    monkeypatch.setattr(evaluate, "Classifier", classifier)
    monkeypatch.setitem(evaluate.SCORERS, "image", scorer)
    assert evaluate_bundle(bundle, data)["variant"] == "fp32"
    m = evaluate_bundle(bundle, data, variant="int8", threads=1, batch_size=2)
    assert m["variant"] == "int8" and m["accuracy"] == 1.0
    assert made == [{"variant": "fp32", "threads": 0}, {"variant": "int8", "threads": 1}]
    assert batches == [16, 2]


def test_evaluate_an_audio_bundle_on_sound_folders(tmp_path: Path) -> None:
    import soundfile

    from tests.support.onnx_models import make_audio_bundle

    bundle = make_audio_bundle(tmp_path / "bundle", sample_rate=8000, window_s=0.25, hop_s=0.125)
    data = tmp_path / "data"
    t = np.arange(8000) / 8000
    for label, level in (("quiet", 0.01), ("loud", 0.8)):
        (data / label).mkdir(parents=True)
        soundfile.write(str(data / label / "1.wav"), (level * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 8000)
    m = evaluate_bundle(bundle, data)
    assert m["labels"] == ["quiet", "loud"] and m["confusion_matrix"] == [[1, 0], [0, 1]]
    assert m["data"]["part"] == "all"
