"""`trainer train DATA --compare-tm EXPORT`: the Teachable Machine export's accuracy next to ours in the training
report, on exactly the held-out samples our run scored, labels matched by name (TM keeps its page's order, our
data set sorts its folders). Checked against an independent scoring of the same files (decode, fit, ONNX Runtime
by hand) and an independent recomputation of the split; training is kept short (3 epochs, no augmentation)."""

from __future__ import annotations

import hashlib
import json
import shutil
import wave
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge.core.bundle import load_bundle
from edge.core.datasets import make_splits, scan_dataset
from edge.core.images import decode_image, fit_image, model_min_side
from edge.core.session import Classifier
from trainer.cli.main import main as trainer_main
from trainer.tm.compare import SEEN_NOTE, held_out_samples
from trainer.tm.errors import TmImportError
from trainer.tm.importer import import_tm
from trainer.tm.project import project_dataset

SHORT = ["--quiet", "--epochs", "3", "--augment", "0", "--no-int8"]


def predicted_labels(bundle: Path, paths: list[Path]) -> list[str]:
    clf = Classifier(load_bundle(bundle), threads=1)
    size = clf.bundle.image_size
    pixels = np.stack([fit_image(decode_image(p, min_side=model_min_side(size)), size) for p in paths])
    return [clf.bundle.labels[i] for i in clf.predict_images(pixels).argmax(1)]


def zipped(folder: Path, to: Path) -> Path:
    with zipfile.ZipFile(to, "w") as z:
        for f in sorted(folder.iterdir()):
            z.write(f, f.name)
    return to


# (project, how the export is given: a folder, the zip TM downloads, the model file itself; the run's split)
CASES = [("keras-with-project", "folder", 3, 0.25), ("tfjs-keras-same-model", "zip", 0, 0.15), ("tfjs-keras-same-model", "h5", 0, 0.15)]


@pytest.mark.slow
@pytest.mark.parametrize("project_name,given,seed,val_split", CASES)
def test_report_carries_the_tm_export_on_our_held_out_samples(shared_dir: Path, tmp_path: Path, project_name: str, given: str, seed: int,
                                                              val_split: float, capsys: pytest.CaptureFixture[str]) -> None:
    tm = shared_dir / "teachable-machine" / project_name
    project = tm / "project.tm"
    export = (tm / "converted_keras" if given == "folder" else zipped(tm / "tfjs", tmp_path / "tfjs.zip") if given == "zip"
              else tm / "keras" / "keras_model.h5")
    out = tmp_path / "ours"
    split = ["--seed", str(seed), "--val-split", str(val_split)]
    assert trainer_main(["train", str(project), "-o", str(out), "--compare-tm", str(export), *split, *SHORT]) == 0
    report = json.loads((out / "report.json").read_text())
    section = report["teachable_machine"]

    # exactly the held-out samples of our run: the validation split of the unpacked project, recomputed here
    with project_dataset(project) as root:
        splits = make_splits(scan_dataset(root, "image"), val_fraction=val_split, seed=seed)
        val = sorted(s.path.relative_to(root).as_posix() for s in splits.val)
        assert sorted(section["held_out"]) == val
        paths = [root / name for name in section["held_out"]]
        truth = [name.split("/")[0] for name in section["held_out"]]
        tm_bundle = import_tm(export, tmp_path / "tm").bundle
        tm_said, ours_said = predicted_labels(tm_bundle, paths), predicted_labels(out, paths)
    assert section["n"] == len(val) == report["metrics"]["fp32"]["n"] == sum(report["data"]["counts"]["val"].values())

    # the export's accuracy, overall and per class, matches an independent scoring with labels compared as names
    tm_right = [said == t for said, t in zip(tm_said, truth)]
    assert section["accuracy"] == pytest.approx(np.mean(tm_right))
    for label in report["labels"]:
        mine = [r for r, t in zip(tm_right, truth) if t == label]
        assert section["per_class"][label] == pytest.approx(np.mean(mine)), label
    assert report["metrics"]["fp32"]["accuracy"] == pytest.approx(np.mean([s == t for s, t in zip(ours_said, truth)]))
    assert section["labels"] == list(load_bundle(tm_bundle).labels)  # TM's order, which the confusion matrix follows
    assert section["labels"] != report["labels"]  # the fixtures' orders differ, so a mapping by position would show

    expected_sha = hashlib.sha256((export / "keras_model.h5" if export.is_dir() else export).read_bytes()).hexdigest()
    assert section["sha256"] == expected_sha
    assert section["format"] == ("tfjs" if given == "zip" else "keras") and section["note"] == SEEN_NOTE

    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("class"))
    assert header.split()[-2:] == ["TM", "acc"]
    overall = next(line for line in printed.splitlines() if line.startswith("overall")).split()
    assert overall[-2:] == [f"{100 * section['accuracy']:.1f}", "%"]
    assert overall[-4:-2] == [f"{100 * report['metrics']['fp32']['accuracy']:.1f}", "%"]
    assert "Compared with the Teachable Machine export" in (out / "report.html").read_text()
    print(f"\n{project_name} ({given}): {section['n']} held-out: ours {100 * report['metrics']['fp32']['accuracy']:.1f} % "
          f"(3 epochs), TM {100 * section['accuracy']:.1f} %")


def renamed_class_export(shared_dir: Path, tmp_path: Path) -> Path:
    export = tmp_path / "export"
    shutil.copytree(shared_dir / "teachable-machine" / "keras-with-project" / "converted_keras", export)
    labels = export / "labels.txt"
    labels.write_text(labels.read_text().replace("Saludo", "Hola"))
    return export


def test_a_class_named_differently_is_an_error_before_training(shared_dir: Path, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    project = shared_dir / "teachable-machine" / "keras-with-project" / "project.tm"
    export = renamed_class_export(shared_dir, tmp_path)
    out = tmp_path / "out"
    assert trainer_main(["train", str(project), "-o", str(out), "--compare-tm", str(export), *SHORT]) == 2
    assert "Saludo are in the data set but not in the export" in caplog.text
    assert "Hola are in the export but not in the data set" in caplog.text
    assert not out.exists()  # refused before anything was trained or written


def test_a_class_only_the_export_has_is_an_error(shared_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A folder data set is accepted too; here it lacks one of the export's four classes."""
    tm = shared_dir / "teachable-machine" / "keras-with-project"
    data = tmp_path / "data"
    with project_dataset(tm / "project.tm") as root:
        shutil.copytree(root, data)
    shutil.rmtree(data / "Enfado")
    out = tmp_path / "out"
    assert trainer_main(["train", str(data), "-o", str(out), "--compare-tm", str(tm / "converted_keras"), *SHORT]) == 2
    assert "Enfado are in the export but not in the data set" in caplog.text and not out.exists()


def test_sounds_are_refused(tmp_path: Path, shared_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    for label in ("yes", "no"):
        (tmp_path / "data" / label).mkdir(parents=True)
        with wave.open(str(tmp_path / "data" / label / "1.wav"), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
            w.writeframes(np.zeros(16000, np.int16).tobytes())
    export = shared_dir / "teachable-machine" / "keras-with-project" / "converted_keras"
    out = tmp_path / "out"
    assert trainer_main(["train", str(tmp_path / "data"), "-o", str(out), "--compare-tm", str(export), *SHORT]) == 2
    assert "--compare-tm compares image models" in caplog.text and not out.exists()


def test_held_out_samples_that_drifted_from_the_report_are_an_error(shared_dir: Path) -> None:
    """The split is recomputed after the run; if its counts no longer match those the run recorded, the comparison
    would be on other samples, so it is refused."""
    with project_dataset(shared_dir / "teachable-machine" / "keras-with-project" / "project.tm") as root:
        splits = make_splits(scan_dataset(root, "image"), seed=0)
        report = {"data": {"skipped": [], "counts": splits.counts()}}
        assert len(held_out_samples(root, report, seed=0).samples) == len(splits.val)
        with pytest.raises(TmImportError, match="could not be found again"):
            held_out_samples(root, report, val_split=0.3, seed=0)  # not the fraction the run held out
