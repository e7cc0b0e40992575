"""Folder data sets: layouts, the seeded stratified split and the errors makers see (torch-free)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge.core.datasets import DatasetError, detect_task, make_splits, scan_dataset, stratified_split


def _png(path: Path, colour: tuple[int, int, int] = (200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 10), colour).save(path)
    return path


def _classes(root: Path, counts: dict[str, int]) -> Path:
    for label, n in counts.items():
        for i in range(n):
            _png(root / label / f"{i}.png")
    return root


def test_class_folders_layout_is_split_stratified_with_ceil_15_percent(tmp_path: Path) -> None:
    root = _classes(tmp_path / "d", {"cat": 20, "dog": 7, "owl": 2})
    dataset = scan_dataset(root)
    assert dataset.layout == "classes" and dataset.labels == ("cat", "dog", "owl")
    splits = make_splits(dataset, seed=3)
    counts = splits.counts()
    assert counts["val"] == {"cat": math.ceil(0.15 * 20), "dog": math.ceil(0.15 * 7), "owl": 1}
    assert counts["train"] == {"cat": 17, "dog": 5, "owl": 1}
    assert not set(s.path for s in splits.train) & set(s.path for s in splits.val)


def test_split_is_reproducible_by_seed_and_changes_with_it(tmp_path: Path) -> None:
    files = {"a": [tmp_path / f"a{i}.png" for i in range(40)], "b": [tmp_path / f"b{i}.png" for i in range(40)]}
    first = stratified_split(files, 0.15, seed=1)[1]
    assert first == stratified_split(files, 0.15, seed=1)[1]
    assert first != stratified_split(files, 0.15, seed=2)[1]


def test_nested_folders_belong_to_their_top_level_class_and_other_files_are_ignored(tmp_path: Path,
                                                                                    caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "d"
    _png(root / "cat" / "indoor" / "a.png")
    _png(root / "cat" / "outdoor" / "deep" / "b.png")
    _png(root / "dog" / "c.png")
    _png(root / "dog" / "d.png")
    (root / "dog" / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.WARNING):
        dataset = scan_dataset(root)
    assert sorted(p.name for p in dataset.parts["all"].files["cat"]) == ["a.png", "b.png"]
    assert [p.name for p in dataset.parts["all"].ignored] == ["notes.txt"]
    assert "notes.txt" in caplog.text


def test_train_val_test_folders_are_used_as_given(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _classes(root / "train", {"cat": 5, "dog": 4})
    _classes(root / "val", {"cat": 2, "dog": 1})
    _classes(root / "test", {"cat": 1, "dog": 1})
    dataset = scan_dataset(root)
    assert dataset.layout == "splits" and dataset.labels == ("cat", "dog")
    splits = make_splits(dataset)
    assert splits.counts() == {"train": {"cat": 5, "dog": 4}, "val": {"cat": 2, "dog": 1}, "test": {"cat": 1, "dog": 1}}
    assert all("/val/" in str(s.path) for s in splits.val)


def test_train_folder_alone_is_split_by_the_trainer(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _classes(root / "train", {"cat": 10, "dog": 10})
    splits = make_splits(scan_dataset(root))
    assert splits.counts()["val"] == {"cat": 2, "dog": 2}


def test_val_class_unknown_to_train_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _classes(root / "train", {"cat": 3, "dog": 3})
    _classes(root / "val", {"cat": 1, "horse": 1})
    with pytest.raises(DatasetError, match=r"horse.*not in .*train"):
        scan_dataset(root)


def test_one_class_only_is_an_error_that_says_how_to_lay_out_folders(tmp_path: Path) -> None:
    root = _classes(tmp_path / "d", {"cat": 5})
    with pytest.raises(DatasetError, match=r"only one class folder \('cat'\).*at least 2 classes.*one sub-folder per class"):
        scan_dataset(root)


def test_no_class_folders_is_an_error(tmp_path: Path) -> None:
    _png(tmp_path / "d" / "loose.png")
    with pytest.raises(DatasetError, match="no class folders"):
        scan_dataset(tmp_path / "d")


def test_empty_class_is_an_error_naming_the_folder(tmp_path: Path) -> None:
    root = _classes(tmp_path / "d", {"cat": 3, "dog": 3})
    (root / "bird").mkdir()
    (root / "bird" / "readme.txt").write_text("todo")
    with pytest.raises(DatasetError, match=r"d/bird: class folder 'bird' holds no image files.*add at least 2"):
        scan_dataset(root)


def test_class_left_with_one_usable_file_is_an_error_before_training(tmp_path: Path) -> None:
    root = _classes(tmp_path / "d", {"cat": 3, "dog": 2})
    dataset = scan_dataset(root)
    bad = root / "dog" / "0.png"
    with pytest.raises(DatasetError, match=r"d/dog: class 'dog' has 1 usable image file\(s\) \(1 more could not be read"):
        make_splits(dataset, skipped=[bad])


def test_missing_folder_and_bad_fraction(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such folder"):
        scan_dataset(tmp_path / "nope")
    with pytest.raises(DatasetError, match="between 0 and 1"):
        stratified_split({"a": [tmp_path / "x", tmp_path / "y"]}, 1.0, 0)


def test_detect_task_by_files(tmp_path: Path) -> None:
    _classes(tmp_path / "img", {"a": 2, "b": 1})
    (tmp_path / "snd" / "a").mkdir(parents=True)
    import soundfile

    soundfile.write(str(tmp_path / "snd" / "a" / "x.wav"), np.zeros(800, np.float32), 8000)
    assert detect_task(tmp_path / "img") == "image"
    assert detect_task(tmp_path / "snd") == "audio"
    (tmp_path / "empty").mkdir()
    assert detect_task(tmp_path / "empty") is None
