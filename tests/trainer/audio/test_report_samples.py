"""The sound report's per-sample listing (report.json `validation_samples`, trainer/finish.py): one entry per
scored validation file, named relative to the data folder, with the label the bundle really gives that file
through the device's own windowing (edge.core.audio_windows), and as many per (true, predicted) pair as the
confusion matrix counts. Trains the espeak-ng words of test_job.py once more (a few seconds of epochs)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from edge.core.audio_windows import score_files
from edge.core.bundle import load_bundle
from edge.core.session import Classifier
from tests.trainer.audio.test_job import bundle_dir, pytestmark, speech_set  # noqa: F401  (fixtures, the skip mark)


def test_the_report_lists_each_validation_clip_with_its_prediction(bundle_dir: Path, speech_set: Path) -> None:  # noqa: F811
    report = json.loads((bundle_dir / "report.json").read_text())
    listing = report["validation_samples"]
    metrics = report["metrics"]["fp32"]
    labels = report["labels"]
    assert len(listing) == metrics["n"] > 0
    assert all((speech_set / entry["file"]).is_file() and entry["file"].startswith("val/") for entry in listing)
    # as many per cell as the confusion matrix says
    cells = Counter((entry["true"], entry["predicted"]) for entry in listing)
    matrix = metrics["confusion_matrix"]
    assert {(labels[t], labels[p]): n for t, row in enumerate(matrix) for p, n in enumerate(row) if n} == dict(cells)
    # and each one is what the bundle says of that file, windowed as on the device
    bundle = load_bundle(bundle_dir)
    clf = Classifier(bundle, variant="fp32")
    paths = [speech_set / entry["file"] for entry in listing]
    kept, probs, _ = score_files(paths, clf.run, bundle.sample_rate, bundle.window_samples, bundle.hop_samples)
    assert kept == list(range(len(paths)))
    assert [bundle.labels[int(np.argmax(p))] for p in probs] == [entry["predicted"] for entry in listing]
    assert [Path(entry["file"]).parts[1] for entry in listing] == [entry["true"] for entry in listing]
