"""`trainer train DATA --compare-tm EXPORT`: the Teachable Machine export's accuracy next to ours, in the report.

The export is imported with `trainer import-tm`'s own importer into a temporary folder *before* training (a
bad export or a class missing on either side fails in seconds, not after the run), then scored after training
on exactly the held-out samples our run scored itself, through the same evaluation code (edge.core.evaluate,
ONNX Runtime, the device's decoding). Labels are matched by name: TM keeps the order of its page, our data set
sorts its folders, so positions differ.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.core.bundle import load_bundle, sha256_file
from edge.core.datasets import DEFAULT_VAL_FRACTION, Sample, make_splits, scan_dataset
from edge.core.evaluate import score_samples
from edge.core.session import Classifier
from trainer.tm.errors import TmImportError
from trainer.tm.importer import import_tm

log = logging.getLogger(__name__)

SECTION = "teachable_machine"  # the report's key (trainer/report.py shows it)
# TM splits off its own random 15 % for its accuracy page and records neither the split nor its seed, so the
# held-out samples of our run were, for the most part, among those it trained on.
SEEN_NOTE = ("Teachable Machine may have trained on these samples: it holds out its own random 15 % and keeps no "
             "record of which, so its accuracy here is likely flattered; ours is on samples it never trained on.")


@dataclass(frozen=True)
class TmReference:
    """An imported Teachable Machine export, ready to be scored."""

    export: Path  # what the user passed
    sha256: str  # of that file, or of the model file when a folder was passed
    files: dict[str, str]  # the export's files the importer read -> SHA-256
    export_format: str  # tflite, keras, tfjs
    labels: list[str]  # in the export's output order
    bundle: Path  # the imported bundle (temporary)


@contextlib.contextmanager
def imported_export(export: Path) -> Iterator[TmReference]:
    """The export imported into a temporary bundle for the duration of a run. Raises TmImportError with the fix."""
    with tempfile.TemporaryDirectory(prefix="edgeteach-tm-compare-") as tmp:
        result = import_tm(export, Path(tmp) / "bundle")
        if load_bundle(result.bundle).task != "image":
            raise TmImportError(f"{export}: a Teachable Machine sound export; --compare-tm compares image models "
                                "(pass the export of the image project you train from)")
        files = {f.name: f.sha256 for f in result.source_files}
        digest = sha256_file(export) if export.is_file() else result.source_files[0].sha256
        yield TmReference(export=export.resolve(), sha256=digest, files=files, export_format=result.export_format,
                          labels=list(result.labels), bundle=result.bundle)


def check_labels(reference: TmReference, labels: Sequence[str]) -> None:
    """Both models must know the same classes, by name; a class missing on either side cannot be compared."""
    ours_only = [label for label in labels if label not in reference.labels]
    tm_only = [label for label in reference.labels if label not in labels]
    if ours_only or tm_only:
        parts = ([f"class(es) {', '.join(ours_only)} are in the data set but not in the export"] if ours_only else []) + \
                ([f"class(es) {', '.join(tm_only)} are in the export but not in the data set"] if tm_only else [])
        raise TmImportError(f"{reference.export}: {'; '.join(parts)} (export: {', '.join(reference.labels)}; data set: "
                            f"{', '.join(labels)}); pass the export trained from this project, or rename the classes to match")


@contextlib.contextmanager
def reference_for(export: Path, data_dir: Path, task: str) -> Iterator[TmReference]:
    """What `trainer train --compare-tm` does before training: refuse sounds, import the export and match its
    classes to the data set's, so a wrong export fails in seconds rather than after the run."""
    if task != "image":
        raise TmImportError("--compare-tm compares image models; this data set holds sounds")
    with imported_export(export) as reference:
        check_labels(reference, scan_dataset(data_dir, "image").labels)
        yield reference


@dataclass(frozen=True)
class HeldOut:
    root: Path  # the data set's folder
    labels: tuple[str, ...]  # the data set's order: what the samples' label indices refer to
    samples: list[Sample]


def held_out_samples(data_dir: Path, report: dict[str, Any], val_split: float = DEFAULT_VAL_FRACTION, seed: int = 0) -> HeldOut:
    """The validation samples the run scored: the same deterministic split (edge.core.datasets.make_splits) of
    the same files, less the same skipped ones, with the run's seed and fraction; checked against the counts the
    report recorded, so a split that drifted is an error rather than a comparison on other samples."""
    skipped = [Path(s["path"]) for s in report["data"]["skipped"]]
    dataset = scan_dataset(data_dir, "image")
    splits = make_splits(dataset, skipped, val_split, seed)
    counts = {label: 0 for label in splits.labels}
    for sample in splits.val:
        counts[splits.labels[sample.label]] += 1
    recorded = {label: int(n) for label, n in report["data"]["counts"]["val"].items()}
    if {k: v for k, v in counts.items() if v} != {k: v for k, v in recorded.items() if v}:
        raise TmImportError(f"the held-out samples could not be found again ({counts} here, {recorded} in the report); "
                            "the comparison with Teachable Machine is left out")
    return HeldOut(dataset.root, splits.labels, splits.val)


def compare(reference: TmReference, held_out: HeldOut, threads: int = 0) -> dict[str, Any]:
    """The report's `teachable_machine` section: the export's metrics on the held-out samples, the data set's
    labels matched to the export's outputs by name (score_samples)."""
    check_labels(reference, held_out.labels)
    if not held_out.samples:
        raise TmImportError("no held-out samples to compare on (every class is too small to hold any out)")
    metrics = score_samples(Classifier(load_bundle(reference.bundle), threads=threads), held_out.samples, held_out.labels)
    root = held_out.root
    return {
        "export": str(reference.export),
        "sha256": reference.sha256,
        "files": reference.files,
        "format": reference.export_format,
        "variant": "fp32",
        "labels": reference.labels,
        "accuracy": metrics["accuracy"],
        "n": metrics["n"],
        "per_class": metrics["per_class"],
        "support": metrics["support"],
        "confusion_matrix": metrics["confusion_matrix"],
        "skipped": metrics["skipped"],
        "held_out": [s.path.relative_to(root).as_posix() if s.path.is_relative_to(root) else str(s.path) for s in held_out.samples],
        "note": SEEN_NOTE,
    }


def add_comparison(report: dict[str, Any], reference: TmReference, data_dir: Path, val_split: float, seed: int) -> dict[str, Any]:
    """Scores the export on the run's held-out samples and puts the section in `report` (returned)."""
    section = compare(reference, held_out_samples(data_dir, report, val_split, seed))
    log.info("Teachable Machine export %s: %.1f %% on the %d held-out samples (ours, fp32: %.1f %%)", reference.export,
             100 * section["accuracy"], section["n"], 100 * report["metrics"]["fp32"]["accuracy"])
    report[SECTION] = section
    return report
