"""Folder data sets: one folder per class, optionally under train/ val/ test/ split folders.

Torch-free because `trainer evaluate` and the device-side tools read the same layout. Generic over the
task (image or audio): only the accepted file suffixes differ, so the audio trainer shares the scan,
the checks and the split rules with the image trainer.

Layouts understood:

    DATA_DIR/cat/*.jpg, DATA_DIR/dog/**/*.jpg          -> one folder per class; a seeded, stratified split
    DATA_DIR/train/cat/..., DATA_DIR/val/cat/...       -> the maker's own split (test/ optional)
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edge.core.audio import AUDIO_SUFFIXES
from edge.core.images import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

SUFFIXES: dict[str, tuple[str, ...]] = {"image": IMAGE_SUFFIXES, "audio": AUDIO_SUFFIXES}
SPLIT_NAMES = {"train": ("train", "training"), "val": ("val", "valid", "validation"), "test": ("test", "testing")}
DEFAULT_VAL_FRACTION = 0.15  # as Teachable Machine
MIN_PER_CLASS = 2


class DatasetError(ValueError):
    """A data set that cannot be trained on; the message names the folder, the problem and the fix."""


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int  # index into the data set's labels


@dataclass
class ClassFolders:
    """The files of one split (or of the whole data set), by class name."""

    root: Path
    files: dict[str, list[Path]]
    ignored: list[Path] = field(default_factory=list)  # files with a suffix this task does not read


@dataclass
class FolderDataset:
    root: Path
    task: str
    layout: str  # "classes" (one folder per class) or "splits" (train/ val/ [test/])
    labels: tuple[str, ...]
    parts: dict[str, ClassFolders]  # "all" for the classes layout; "train", "val"?, "test"? for splits

    @property
    def all_files(self) -> list[Path]:
        return [path for part in self.parts.values() for paths in part.files.values() for path in paths]


@dataclass
class Splits:
    labels: tuple[str, ...]
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]
    layout: str
    skipped: list[Path] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        """Samples per class and split, for reports."""
        out: dict[str, dict[str, int]] = {}
        for name, samples in (("train", self.train), ("val", self.val), ("test", self.test)):
            per = {label: 0 for label in self.labels}
            for sample in samples:
                per[self.labels[sample.label]] += 1
            out[name] = per
        return out


def _suffixes(task: str) -> tuple[str, ...]:
    if task not in SUFFIXES:
        raise DatasetError(f"unknown task {task!r}; expected one of {', '.join(SUFFIXES)}")
    return SUFFIXES[task]


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def detect_task(root: str | Path) -> str | None:
    """'image' or 'audio' by which kind of file the folder holds most of; None when it holds neither."""
    counts = {task: 0 for task in SUFFIXES}
    for path in Path(root).rglob("*"):
        for task, suffixes in SUFFIXES.items():
            if path.suffix.lower() in suffixes:
                counts[task] += 1
    best = max(counts, key=lambda task: counts[task])
    return best if counts[best] else None


def _split_folders(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for child in _visible_dirs(root):
        for split, names in SPLIT_NAMES.items():
            if child.name.lower() in names and split not in found:
                found[split] = child
    return found


def scan_class_folders(root: Path, task: str) -> ClassFolders:
    """Files by class: each top-level folder is a class, its files are found recursively."""
    suffixes = _suffixes(task)
    files: dict[str, list[Path]] = {}
    ignored: list[Path] = []
    for class_dir in _visible_dirs(root):
        kept: list[Path] = []
        for path in _files_under(class_dir):
            (kept if path.suffix.lower() in suffixes else ignored).append(path)
        files[class_dir.name] = kept
    loose = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() in suffixes]
    if loose:
        log.warning("%s: %d %s file(s) lie directly in the data folder, outside any class folder; they are ignored "
                    "(move them into a folder named after their class)", root, len(loose), task)
        ignored.extend(sorted(loose))
    if ignored:
        log.warning("%s: ignoring %d file(s) that are not %s files (%s), e.g. %s", root, len(ignored), task,
                    ", ".join(suffixes), ignored[0])
    return ClassFolders(root=root, files=files, ignored=ignored)


def _check_classes(part: ClassFolders, task: str, what: str) -> None:
    suffixes = ", ".join(_suffixes(task))
    names = sorted(part.files)
    if len(names) < 2:
        have = f"only one class folder ({names[0]!r})" if names else "no class folders"
        raise DatasetError(
            f"{part.root}: {what} has {have}; a classifier needs at least 2 classes. "
            f"Make one sub-folder per class, named after it, each holding its {task} files ({suffixes}), "
            f"e.g. {part.root}/cat/1.jpg and {part.root}/dog/1.jpg"
        )
    for name in names:
        if not part.files[name]:
            raise DatasetError(
                f"{part.root / name}: class folder {name!r} holds no {task} files ({suffixes}); "
                f"add at least {MIN_PER_CLASS} examples to it, or delete the folder if that class is not wanted"
            )


def scan_dataset(root: str | Path, task: str = "image") -> FolderDataset:
    """Reads a data-set folder's layout and checks it has at least two non-empty classes."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: no such folder; pass the folder that holds one sub-folder per class")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder; pass the folder that holds one sub-folder per class")
    splits = _split_folders(root)
    if "train" in splits:
        parts = {name: scan_class_folders(path, task) for name, path in splits.items()}
        _check_classes(parts["train"], task, "the training split")
        labels = tuple(sorted(parts["train"].files))
        for name, part in parts.items():
            unknown = sorted(set(part.files) - set(labels))
            if unknown:
                raise DatasetError(
                    f"{part.root}: class folder(s) {', '.join(unknown)} are not in {parts['train'].root}; "
                    f"every class of the {name} split must also have training examples (add them there or remove the folder)"
                )
            for label in labels:
                part.files.setdefault(label, [])
        others = [p.name for p in _visible_dirs(root) if p not in splits.values()]
        if others:
            log.warning("%s: using the train/val split folders; ignoring the other folder(s) %s", root, ", ".join(others))
        return FolderDataset(root=root, task=task, layout="splits", labels=labels, parts=parts)
    if splits and set(splits) != {"train"}:
        raise DatasetError(
            f"{root}: found {', '.join(p.name + '/' for p in splits.values())} but no train/ folder; "
            f"either add train/ beside them or use plain class folders and let the trainer split"
        )
    part = scan_class_folders(root, task)
    _check_classes(part, task, "the data folder")
    return FolderDataset(root=root, task=task, layout="classes", labels=tuple(sorted(part.files)), parts={"all": part})


def stratified_split(files: Mapping[str, Sequence[Path]], val_fraction: float, seed: int) -> tuple[dict[str, list[Path]], dict[str,
                                                                                                                               list[Path]]]:
    """Per class: shuffle (seeded), hold out ceil(fraction * n), at least one and never all."""
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"validation fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    train: dict[str, list[Path]] = {}
    val: dict[str, list[Path]] = {}
    for label in sorted(files):
        paths = sorted(files[label])
        # A per-class generator keeps one class's split independent of the others' sizes.
        random.Random(f"{seed}:{label}").shuffle(paths)
        n_val = min(len(paths) - 1, max(1, math.ceil(val_fraction * len(paths))))
        val[label], train[label] = paths[:n_val], paths[n_val:]
    return train, val


def _check_usable(files: Mapping[str, Sequence[Path]], where: Path, task: str, minimum: int, skipped_here: Mapping[str, int]) -> None:
    for label in sorted(files):
        n = len(files[label])
        if n < minimum:
            bad = skipped_here.get(label, 0)
            why = f" ({bad} more could not be read: see the warnings above)" if bad else ""
            raise DatasetError(
                f"{where / label}: class {label!r} has {n} usable {task} file(s){why}; at least {minimum} are needed "
                f"(one to learn from, one to check). Add more examples to that folder"
            )


def _samples(files: Mapping[str, Sequence[Path]], labels: Sequence[str]) -> list[Sample]:
    index = {label: i for i, label in enumerate(labels)}
    return [Sample(path, index[label]) for label in labels for path in sorted(files.get(label, []))]


def make_splits(dataset: FolderDataset, skipped: Iterable[Path] = (), val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = 0) -> Splits:
    """Train/val(/test) samples from the usable files (those not in `skipped`), checking every class
    keeps enough of them. The classes layout is split here; the splits layout is taken as given."""
    bad = set(skipped)

    def usable(part: ClassFolders) -> tuple[dict[str, list[Path]], dict[str, int]]:
        good = {label: [p for p in paths if p not in bad] for label, paths in part.files.items()}
        lost = {label: len(paths) - len(good[label]) for label, paths in part.files.items()}
        return good, lost

    labels = dataset.labels
    if dataset.layout == "classes":
        part = dataset.parts["all"]
        good, lost = usable(part)
        _check_usable(good, part.root, dataset.task, MIN_PER_CLASS, lost)
        train, val = stratified_split(good, val_fraction, seed)
        return Splits(labels, _samples(train, labels), _samples(val, labels), [], dataset.layout, sorted(bad))
    train_files, train_lost = usable(dataset.parts["train"])
    if "val" in dataset.parts:
        val_files, val_lost = usable(dataset.parts["val"])
        combined = {label: train_files[label] + val_files.get(label, []) for label in labels}
        _check_usable(combined, dataset.parts["train"].root, dataset.task, MIN_PER_CLASS,
                      {label: train_lost.get(label, 0) + val_lost.get(label, 0) for label in labels})
        _check_usable(train_files, dataset.parts["train"].root, dataset.task, 1, train_lost)
        missing = [label for label in labels if not val_files.get(label)]
        if missing:
            log.warning("%s: no validation examples for class(es) %s; their accuracy cannot be measured",
                        dataset.parts["val"].root, ", ".join(missing))
    else:
        _check_usable(train_files, dataset.parts["train"].root, dataset.task, MIN_PER_CLASS, train_lost)
        train_files, val_files = stratified_split(train_files, val_fraction, seed)
    test_files = usable(dataset.parts["test"])[0] if "test" in dataset.parts else {}
    return Splits(labels, _samples(train_files, labels), _samples(val_files, labels), _samples(test_files, labels),
                  dataset.layout, sorted(bad))


def evaluation_samples(dataset: FolderDataset) -> tuple[str, list[Sample]]:
    """The samples `trainer evaluate` scores: every file of a classes layout, or the val split
    (test when there is one) of a splits layout. Returns (which part, samples)."""
    if dataset.layout == "classes":
        return "all", _samples(dataset.parts["all"].files, dataset.labels)
    name = "test" if "test" in dataset.parts else "val" if "val" in dataset.parts else "train"
    return name, _samples(dataset.parts[name].files, dataset.labels)
