"""`trainer train project.tm`: a Teachable Machine project file as the data set, and our model's accuracy next
to the TM export's on the same held-out samples (the fixtures hold both a project and the export trained from it).

The comparison flatters Teachable Machine: TM trained on all but its own random 15 % of these samples, which it
does not record, so most of our held-out samples were in its training set. The figures (default training, as a
user would run it) are printed (-s) and recorded in docs/teachable-machine.md; `--compare-tm` puts the same
comparison in the training report (its own tests: test_import_tm_compare.py)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge.core.bundle import load_bundle
from edge.core.datasets import make_splits, scan_dataset
from edge.core.images import decode_image, fit_image, model_min_side
from edge.core.session import Classifier
from trainer.cli.main import main as trainer_main
from trainer.tm.errors import TmImportError
from trainer.tm.importer import import_tm
from trainer.tm.project import project_dataset, read_project

PROJECTS = [("keras-with-project/project.tm", "keras-with-project/converted_keras"),
            ("tfjs-keras-same-model/project.tm", "tfjs-keras-same-model/keras")]


def accuracy(bundle: Path, samples: list[tuple[Path, str]]) -> float:
    clf = Classifier(load_bundle(bundle), threads=1)
    size = clf.bundle.image_size
    pixels = np.stack([fit_image(decode_image(p, min_side=model_min_side(size)), size) for p, _ in samples])
    predicted = [clf.bundle.labels[i] for i in clf.predict_images(pixels).argmax(1)]
    return float(np.mean([p == truth for p, (_, truth) in zip(predicted, samples)]))


@pytest.mark.slow
@pytest.mark.parametrize("project_rel,export_rel", PROJECTS)
def test_train_from_project_and_compare_with_the_tm_export(shared_dir: Path, tmp_path: Path, project_rel: str, export_rel: str) -> None:
    tm = shared_dir / "teachable-machine"
    project = tm / project_rel
    out = tmp_path / "ours"
    assert trainer_main(["train", str(project), "-o", str(out), "--quiet", "--seed", "0", "--compare-tm", str(tm / export_rel)]) == 0
    ours = load_bundle(out)
    assert sorted(ours.labels) == sorted(read_project(project).classes)
    tm_bundle = import_tm(tm / export_rel, tmp_path / "tm").bundle
    assert sorted(load_bundle(tm_bundle).labels) == sorted(ours.labels)
    # the held-out samples of our run: the same split of the same unpacked files (make_splits, seed 0)
    with project_dataset(project) as root:
        splits = make_splits(scan_dataset(root, "image"), seed=0)
        held_out = [(s.path, splits.labels[s.label]) for s in splits.val]
        ours_acc, tm_acc = accuracy(out, held_out), accuracy(tm_bundle, held_out)
    reported = ours.metrics["fp32"]["accuracy"]
    print(f"\n{project_rel}: {len(held_out)} held-out samples: ours (efficientnet_lite0) {100 * ours_acc:.1f} %, "
          f"the Teachable Machine export {100 * tm_acc:.1f} % (it trained on most of them)")
    assert ours_acc == pytest.approx(reported)  # the same samples the training report scored
    # ... and the report's comparison (--compare-tm) says the same of the export
    assert json.loads((out / "report.json").read_text())["teachable_machine"]["accuracy"] == pytest.approx(tm_acc)
    assert ours_acc > 1 / len(ours.labels)  # better than chance (retina grades from 258 samples are hard)


def test_project_classes_keep_tm_order_and_samples_unpack(shared_dir: Path) -> None:
    project = shared_dir / "teachable-machine" / "keras-with-project" / "project.tm"
    read = read_project(project)
    assert read.classes == ["Saludo", "Asombro", "Alegria", "Enfado"]  # the order of labels.txt in the export
    with project_dataset(project) as root:
        counts = {d.name: len(list(d.iterdir())) for d in root.iterdir()}
        assert counts == {label: len(read.samples[label]) for label in read.classes}
        assert sum(counts.values()) == 194
    assert not root.exists()  # the unpacked samples are gone after the run


@pytest.mark.parametrize("bad", ["../evil-!-0.jpg", "/abs-!-0.jpg"])
def test_project_with_paths_outside_is_refused(tmp_path: Path, bad: str, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "bad.tm"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a-!-0.jpg", b"x")
        z.writestr("b-!-0.jpg", b"x")
        z.writestr(bad, b"x")
    with pytest.raises(TmImportError, match="outside the archive"):
        read_project(path)
    assert trainer_main(["train", str(path), "-o", str(tmp_path / "out"), "--quiet"]) == 2
    assert "outside the archive" in caplog.text and not (tmp_path / "out").exists()


def test_audio_project_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sounds.tm"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("manifest.json", '{"type": "audio"}')
    with pytest.raises(TmImportError, match="audio project"):
        read_project(path)
