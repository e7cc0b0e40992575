"""Black box: `trainer import-tm` then `edge predict`, both as the real commands, on real Teachable Machine
exports; the label `edge predict` prints must be the reference runtime's label for the same photo (LiteRT for
TFLite, the independent numpy evaluation of tests/trainer/test_import_tm_layers.py for Keras and TF.js)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.core.images import decode_image, fit_image, model_min_side
from tests.support.paths import REPO
from tests.trainer.test_import_tm_layers import h5_reference_weights, reference_predict, tfjs_reference_weights

SIZE = (224, 224)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from {mod} import main; sys.exit(main())"
    program, rest = args[0], list(args[1:])
    module = "trainer.cli.main" if program == "trainer" else "edge.cli.main"
    return subprocess.run([sys.executable, "-c", code.format(mod=module), *rest], cwd=REPO, capture_output=True, text=True, timeout=300)


def edge_label(bundle: Path, photo: Path, variant: str = "fp32") -> str:
    done = run("edge", "predict", str(bundle), str(photo), "--json", "--variant", variant, "--threads", "1")
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["label"])


def imported(export: Path, out: Path, labels_file: Path) -> list[str]:
    """Imports with the real command; returns the export's own labels in output order (read here, not taken from
    the importer, so a reordering by the importer shows as a wrong label)."""
    done = run("trainer", "import-tm", str(export), "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr
    if labels_file.name == "metadata.json":
        return list(json.loads(labels_file.read_text())["labels"])
    return [line.split(" ", 1)[1].strip() for line in labels_file.read_text().splitlines() if line.strip()]


def pixels(photo: Path) -> np.ndarray:
    return fit_image(decode_image(photo, min_side=model_min_side(SIZE)), SIZE)[None]


def test_tflite_import_then_edge_predict_gives_litert_label(shared_dir: Path, tmp_path: Path) -> None:
    litert = pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert (the dev extra) is the TFLite reference runtime")
    from tests.trainer.test_import_tm_tflite import litert_run

    export = shared_dir / "teachable-machine" / "tflite-three-variants"
    labels = imported(export, tmp_path / "bundle", export / "converted_tflite" / "labels.txt")
    photos = [shared_dir / "photos" / "person.jpg", *sorted((shared_dir / "teachable-machine" / "keras-catdog" / "test_images").glob("*"))]
    assert litert is not None
    seen = set()
    for photo in photos:
        for variant, model in (("fp32", "converted_tflite/model_unquant.tflite"), ("int8", "converted_tflite_quantized/model.tflite")):
            reference = labels[int(litert_run(export / model, pixels(photo))[0].argmax())]
            assert edge_label(tmp_path / "bundle", photo, variant) == reference, (photo.name, variant)
            seen.add(reference)
    assert seen == set(labels)  # both classes among the answers: a constant answer would not pass


@pytest.mark.parametrize("folder,model", [("keras-catdog/model", "keras_model.h5"), ("tfjs-signs/tm-my-image-model", "model.json")])
def test_layers_import_then_edge_predict_gives_reference_label(shared_dir: Path, tmp_path: Path, folder: str, model: str) -> None:
    tm = shared_dir / "teachable-machine"
    labels = imported(tm / folder, tmp_path / "bundle", tm / folder / ("labels.txt" if model.endswith(".h5") else "metadata.json"))
    config, weights = (h5_reference_weights if model.endswith(".h5") else tfjs_reference_weights)(tm / folder / model)
    photos = sorted((tm / "keras-catdog" / "test_images").glob("*")) if "catdog" in folder else \
        [sorted((tm / "tfjs-signs" / "images" / d).iterdir())[0] for d in ("Hello", "howareyou", "ThankYou")]
    seen = set()
    for photo in photos:
        reference = labels[int(reference_predict(config, weights, pixels(photo))[0].argmax())]
        assert edge_label(tmp_path / "bundle", photo) == reference, photo.name
        seen.add(reference)
    assert len(seen) == len(photos)  # the photos are of different classes: a constant answer would not pass


def test_edge_predict_on_a_tm_export_converts_it_once(shared_dir: Path, tmp_path: Path) -> None:
    """`edge predict EXPORT` on a workstation: converted by `trainer import-tm` into EXPORT.edgeteach beside it (a log line
    says so), reused while the export is unchanged, converted again when it changes; the label is the reference's."""
    tm = shared_dir / "teachable-machine"
    export = tmp_path / "converted_keras"
    export.mkdir()
    for name in ("keras_model.h5", "labels.txt"):
        (export / name).write_bytes((tm / "keras-catdog" / "model" / name).read_bytes())
    config, weights = h5_reference_weights(export / "keras_model.h5")
    photo = tm / "keras-catdog" / "test_images" / "cat.jpg"
    labels = ["cat", "dog"]
    reference = labels[int(reference_predict(config, weights, pixels(photo))[0].argmax())]

    first = run("edge", "predict", str(export), str(photo), "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["label"] == reference
    assert "converting it once" in first.stderr and (tmp_path / "converted_keras.edgeteach" / "manifest.json").is_file()
    second = run("edge", "predict", str(export), str(photo), "--json")
    assert second.returncode == 0 and "using the bundle converted from it earlier" in second.stderr, second.stderr
    (export / "labels.txt").write_text("0 kitty\n1 doggy\n")
    third = run("edge", "predict", str(export), str(photo), "--json")
    assert third.returncode == 0 and "converting it once" in third.stderr, third.stderr
    assert json.loads(third.stdout)["label"] == {"cat": "kitty", "dog": "doggy"}[reference]


def test_edge_on_a_bad_tm_export_relays_the_reason(shared_dir: Path, tmp_path: Path) -> None:
    export = tmp_path / "tm"
    export.mkdir()
    (export / "keras_model.h5").write_bytes(b"not hdf5")
    (export / "labels.txt").write_text("0 a\n1 b\n")
    done = run("edge", "predict", str(export), str(shared_dir / "photos" / "dog.jpg"))
    assert done.returncode != 0
    assert "could not convert" in done.stderr and "damaged or truncated" in done.stderr, done.stderr
    assert not (tmp_path / "tm.edgeteach" / "manifest.json").exists()
