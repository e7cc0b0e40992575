"""edge/core/bundle.py: what `load_bundle` accepts and refuses, one rule at a time.

The model files here are placeholder bytes (load_bundle checks files and checksums; ONNX Runtime only
opens them later, in edge.core.session), so every case is a few small files and no inference."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge.core.bundle import (
    FORMAT_NAME,
    FORMAT_VERSION,
    LABELS_NAME,
    MANIFEST_NAME,
    TASKS,
    VARIANT_FILES,
    Bundle,
    BundleError,
    InputSpec,
    load_bundle,
    read_labels,
    sha256_file,
    write_labels,
    write_manifest,
)

IMAGE = {
    "task": "image",
    "labels": ["cat", "dog"],
    "input": {"name": "image", "dtype": "uint8", "shape": [-1, 8, 6, 3]},
    "output": {"name": "probs", "dtype": "float32", "shape": [-1, 2]},
    "preprocessing": {"resize": "center_crop_square", "size": [8, 6]},
    "variants": {"fp32": "model.onnx", "int8": "model.int8.onnx"},
    "metrics": {"fp32": {"accuracy": 0.9}},
}
AUDIO = {
    "task": "audio",
    "labels": ["low", "high", "noise"],
    "input": {"name": "waveform", "dtype": "float32", "shape": [-1, 8000]},
    "output": {"name": "probabilities"},
    "preprocessing": {"sample_rate": 16000, "window_samples": 8000, "hop_samples": 4000},
    "variants": {"fp32": "model.onnx"},
}


def make(root: Path, manifest: dict[str, Any] = IMAGE, labels_txt: bool = True) -> Path:
    """A bundle folder with placeholder model files, labels.txt and a manifest with real checksums."""
    root.mkdir(parents=True, exist_ok=True)
    for name in manifest["variants"].values():
        (root / name).write_bytes(f"weights of {name}".encode())
    if labels_txt:
        write_labels(root / LABELS_NAME, manifest["labels"])
    write_manifest(root, manifest)
    return root


def edit(root: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    path = root / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))
    return root


def refused(root: Path, pattern: str, **kw: Any) -> BundleError:
    with pytest.raises(BundleError, match=pattern) as info:
        load_bundle(root, **kw)
    assert str(info.value).startswith(str(root))  # every refusal names the file or folder at fault
    return info.value


# -- a good bundle ----------------------------------------------------------------------------------


def test_an_image_bundle_loads_with_everything_the_device_needs(tmp_path: Path) -> None:
    root = make(tmp_path / "b")
    b = load_bundle(root)
    assert isinstance(b, Bundle) and b.path == root
    assert b.task == "image" and b.labels == ("cat", "dog")
    assert b.input == InputSpec(name="image", dtype="uint8", shape=(-1, 8, 6, 3))
    assert b.output_name == "probs"
    assert b.preprocessing == IMAGE["preprocessing"]
    assert b.image_size == (8, 6)
    assert b.variants == {"fp32": "model.onnx", "int8": "model.int8.onnx"}
    assert b.model_path() == root / "model.onnx" and b.model_path("int8") == root / "model.int8.onnx"
    assert b.sha256() == hashlib.sha256(b"weights of model.onnx").hexdigest()
    assert b.sha256("int8") == hashlib.sha256(b"weights of model.int8.onnx").hexdigest()
    assert b.metrics == {"fp32": {"accuracy": 0.9}}
    assert b.manifest["format"] == FORMAT_NAME and set(b.files) == {"model.onnx", "model.int8.onnx", "labels.txt"}


def test_an_audio_bundle_loads_with_its_windowing(tmp_path: Path) -> None:
    b = load_bundle(make(tmp_path / "a", AUDIO))
    assert (b.sample_rate, b.window_samples, b.hop_samples) == (16000, 8000, 4000)
    assert b.output_name == "probabilities"
    assert b.labels == ("low", "high", "noise") and b.metrics == {}


def test_the_manifest_file_itself_may_be_given(tmp_path: Path) -> None:
    root = make(tmp_path / "b")
    assert load_bundle(str(root / MANIFEST_NAME)).path == root


def test_labels_txt_is_optional(tmp_path: Path) -> None:
    root = make(tmp_path / "b", labels_txt=False)
    assert load_bundle(root).labels == ("cat", "dog")


def test_output_name_defaults_to_probabilities(tmp_path: Path) -> None:
    root = edit(make(tmp_path / "b"), lambda m: m.update(output={}))
    assert load_bundle(root).output_name == "probabilities"


def test_metrics_and_variants_are_copies(tmp_path: Path) -> None:
    b = load_bundle(make(tmp_path / "b"))
    b.metrics["x"] = 1
    b.variants["x"] = "y"
    assert "x" not in b.manifest["metrics"] and "x" not in b.manifest["variants"]


def test_model_path_of_a_missing_variant_names_the_ones_there_are(tmp_path: Path) -> None:
    b = load_bundle(make(tmp_path / "b"))
    with pytest.raises(BundleError, match=r"b: no 'fp16' variant in this bundle \(it has: fp32, int8\); pick one of those or re-export"):
        b.model_path("fp16")
    empty = Bundle(path=tmp_path, manifest={}, task="image", labels=("a", "b"), input=InputSpec("x", "uint8", (1,)), output_name="p",
                   preprocessing={})
    with pytest.raises(BundleError, match=r"\(it has: none\)"):
        empty.model_path()
    assert empty.files == {} and empty.variants == {}


# -- checksums: every variant -------------------------------------------------------------------------


@pytest.mark.parametrize("variant, filename", [("fp32", "model.onnx"), ("int8", "model.int8.onnx")])
def test_a_corrupt_model_file_of_any_variant_is_refused(tmp_path: Path, variant: str, filename: str) -> None:
    # planted bug: the checksum was checked for the fp32 variant only -> a corrupt int8 file loaded
    root = make(tmp_path / "b")
    good = sha256_file(root / filename)
    (root / filename).write_bytes(b"corrupted")
    bad = hashlib.sha256(b"corrupted").hexdigest()
    err = refused(root,
                  rf"{filename}: SHA-256 {bad[:12]}… does not match the manifest's {good[:12]}…; the file is corrupt or was replaced "
                  r"— copy the bundle again$")
    assert str(root / filename) in str(err)
    assert load_bundle(root, verify_checksums=False).variants[variant] == filename  # explicitly not verified


@pytest.mark.parametrize("filename", ["model.onnx", "model.int8.onnx"])
def test_a_variant_without_a_checksum_is_refused(tmp_path: Path, filename: str) -> None:
    root = edit(make(tmp_path / "b"), lambda m: m["files"].pop(filename))
    refused(root, rf"manifest.json: no checksum for {filename} under 'files'; re-export the bundle$")
    refused(root, "no checksum", verify_checksums=False)  # a checksum must exist even when not verified
    root = edit(make(tmp_path / "c"), lambda m: m["files"][filename].pop("sha256"))
    refused(root, rf"no checksum for {filename}")


@pytest.mark.parametrize("filename, variant", [("model.onnx", "fp32"), ("model.int8.onnx", "int8")])
def test_a_missing_model_file_is_refused(tmp_path: Path, filename: str, variant: str) -> None:
    root = make(tmp_path / "b")
    (root / filename).unlink()
    refused(root, rf"{filename}: the {variant} model named in the manifest is missing; copy the whole bundle folder$")


# -- files outside the bundle -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../outside.onnx", "sub/../../outside.onnx", "ABSOLUTE", "", 7, None])
def test_a_manifest_naming_a_model_outside_the_bundle_is_refused(tmp_path: Path, name: Any) -> None:
    outside = tmp_path / "outside.onnx"
    outside.write_bytes(b"someone else's model")
    root = make(tmp_path / "b")
    if name == "ABSOLUTE":
        name = str(outside)

    def point_outside(m: dict[str, Any]) -> None:
        m["variants"]["int8"] = name
        m["files"][str(name)] = {"sha256": sha256_file(outside)}  # even with a matching checksum

    edit(root, point_outside)
    refused(root,
            rf"manifest.json: the int8 model {name!r} is not a file inside the bundle folder; a manifest names its "
            r"files relative to the bundle")


def test_a_model_file_that_is_a_symlink_out_of_the_bundle_is_refused(tmp_path: Path) -> None:
    # The name stays inside, the file it resolves to does not (issue 12 item 1: "resolve outside the bundle").
    outside = tmp_path / "outside.onnx"
    outside.write_bytes(b"someone else's model")
    root = make(tmp_path / "b")
    (root / "model.int8.onnx").unlink()
    (root / "model.int8.onnx").symlink_to(outside)
    edit(root, lambda m: m["files"]["model.int8.onnx"].update(sha256=sha256_file(outside)))  # even with a matching checksum
    refused(root, r"manifest.json: the int8 model 'model.int8.onnx' resolves outside the bundle folder")


def test_a_symlink_that_stays_inside_the_bundle_is_fine(tmp_path: Path) -> None:
    root = make(tmp_path / "b")
    (root / "real.onnx").write_bytes((root / "model.int8.onnx").read_bytes())
    (root / "model.int8.onnx").unlink()
    (root / "model.int8.onnx").symlink_to("real.onnx")
    assert load_bundle(root).model_path("int8") == root / "model.int8.onnx"


def test_a_model_in_a_sub_folder_of_the_bundle_is_fine(tmp_path: Path) -> None:
    manifest = dict(IMAGE, variants={"fp32": "models/fp32.onnx"})
    (tmp_path / "b" / "models").mkdir(parents=True)
    root = make(tmp_path / "b", manifest)
    assert load_bundle(root).model_path() == root / "models" / "fp32.onnx"


# -- refusals, one rule each ----------------------------------------------------------------------------


def test_a_missing_folder_or_a_plain_file(tmp_path: Path) -> None:
    refused(tmp_path / "nope", rf"nope: no such bundle folder; train one with `trainer train DATA_DIR -o {tmp_path / 'nope'}`$")
    f = tmp_path / "model.onnx"
    f.write_bytes(b"x")
    refused(f, r"model.onnx: a bundle is a folder holding manifest.json, labels.txt and model.onnx, not a single file$")
    (tmp_path / "empty").mkdir()
    refused(tmp_path / "empty", r"empty: no manifest.json; a bundle made by `trainer train` has one")


@pytest.mark.parametrize(
    "content, pattern",
    [
        (b"{not json", r"manifest.json: not valid JSON \(.*\); the file is damaged — copy the bundle again$"),
        (b"\xff\xfe\x00", r"not valid JSON"),
        (b"[1, 2]", r"manifest.json: expected a JSON object at the top level$"),
        (b'{"format": "other"}', r"manifest.json: 'format' is 'other', expected 'edgeteach-bundle'; this is not an EdgeTeach bundle$"),
        (b"{}", r"'format' is None"),
    ],
)
def test_unreadable_or_foreign_manifests(tmp_path: Path, content: bytes, pattern: str) -> None:
    (tmp_path / MANIFEST_NAME).write_bytes(content)
    refused(tmp_path, pattern)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda m: m.__setitem__(key, value)


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda m: m.pop(key)


@pytest.mark.parametrize(
    "change, pattern",
    [
        (_drop("format_version"),
         r"manifest.json: manifest has no 'format_version'; this is not an EdgeTeach bundle or it is damaged — re-export "
         r"it with `trainer train`$"),
        (_set("format_version", "1"), r"manifest.json: manifest 'format_version' should be int, got str: '1'$"),
        (_set("format_version", 2),
         r"bundle format version 2 is not supported by this edge \(1\); upgrade EdgeTeach on the device or re-export"),
        (_set("format_version", 0), r"bundle format version 0 is not supported"),
        (_drop("task"), r"manifest has no 'task'"),
        (_set("task", 3), r"manifest 'task' should be str, got int: 3$"),
        (_set("task", "text"), r"manifest.json: task 'text' is unknown; expected one of image, audio$"),
        (_set("labels", "cat,dog"), r"'labels' should be list, got str"),
        (_set("labels", ["cat"]), r"manifest.json: 'labels' must list at least two non-empty names, got \['cat'\]$"),
        (_set("labels", ["cat", ""]), r"at least two non-empty names"),
        (_set("labels", ["cat", 2]), r"at least two non-empty names"),
        (_drop("input"), r"manifest has no 'input'"),
        (_set("input", ["image"]), r"'input' should be dict, got list"),
        (_set("input", {"name": "image", "dtype": "uint8"}), r"manifest.json: 'input' needs name, dtype and shape \('shape'\)$"),
        (_set("input", {"name": "image", "shape": [1, 8, 8, 3]}), r"'input' needs name, dtype and shape"),
        (_set("input", {"dtype": "uint8", "shape": [1, 8, 8, 3]}), r"'input' needs name, dtype and shape"),
        (_set("input", {"name": "i", "dtype": "uint8", "shape": 5}), r"'input' needs name, dtype and shape"),
        (_set("input", {"name": "i", "dtype": "uint8", "shape": [-1, "x", 8, 3]}), r"'input' needs name, dtype and shape"),
        (_set("input", {"name": "i", "dtype": "uint8", "shape": [-1, 8, 8]}),
         r"manifest.json: a image input has rank 4, got shape \[-1, 8, 8\]$"),
        (_drop("output"), r"manifest has no 'output'"),
        (_set("output", "probs"), r"'output' should be dict"),
        (_drop("preprocessing"), r"manifest has no 'preprocessing'"),
        (_set("variants", ["model.onnx"]), r"'variants' should be dict"),
        (_set("variants", {"int8": "model.int8.onnx"}), r"manifest.json: 'variants' has no fp32 model$"),
        (_drop("files"), r"manifest has no 'files'"),
        (_set("files", []), r"'files' should be dict"),
    ],
)
def test_each_manifest_rule(tmp_path: Path, change: Callable[[dict[str, Any]], None], pattern: str) -> None:
    refused(edit(make(tmp_path / "b"), change), pattern)


@pytest.mark.parametrize(
    "preprocessing, pattern",
    [
        ({"window_samples": 8000, "hop_samples": 4000},
         r"manifest.json: audio preprocessing needs a positive integer 'sample_rate', got None$"),
        ({"sample_rate": 16000, "window_samples": 0, "hop_samples": 4000}, r"positive integer 'window_samples', got 0$"),
        ({"sample_rate": 16000, "window_samples": 8000, "hop_samples": -1}, r"positive integer 'hop_samples', got -1$"),
        ({"sample_rate": 16000.0, "window_samples": 8000, "hop_samples": 1}, r"positive integer 'sample_rate', got 16000.0$"),
    ],
)
def test_audio_preprocessing_rules(tmp_path: Path, preprocessing: dict[str, Any], pattern: str) -> None:
    refused(edit(make(tmp_path / "a", AUDIO), _set("preprocessing", preprocessing)), pattern)


def test_audio_preprocessing_of_one_sample_is_positive_enough(tmp_path: Path) -> None:
    root = edit(make(tmp_path / "a", AUDIO), _set("preprocessing", {"sample_rate": 1, "window_samples": 1, "hop_samples": 1}))
    assert load_bundle(root).hop_samples == 1


def test_an_audio_input_has_rank_two(tmp_path: Path) -> None:
    root = edit(make(tmp_path / "a", AUDIO), _set("input", {"name": "w", "dtype": "float32", "shape": [-1, 1, 8000]}))
    refused(root, r"a audio input has rank 2, got shape \[-1, 1, 8000\]$")
    root = edit(make(tmp_path / "b", AUDIO), _set("input", {"name": "w", "dtype": "float32", "shape": [1, 8000]}))
    assert load_bundle(root).input.shape == (1, 8000)


def test_labels_txt_must_agree_with_the_manifest(tmp_path: Path) -> None:
    root = make(tmp_path / "b")
    write_labels(root / LABELS_NAME, ["dog", "cat"])
    refused(root,
            r"labels.txt: labels \['dog', 'cat'\] differ from the manifest's \['cat', 'dog'\]; the bundle was "
            r"edited by hand — re-export it$", verify_checksums=False)


def test_format_version_one_is_the_current_one() -> None:
    assert (FORMAT_NAME, FORMAT_VERSION, MANIFEST_NAME, LABELS_NAME) == ("edgeteach-bundle", 1, "manifest.json", "labels.txt")
    assert VARIANT_FILES == {"fp32": "model.onnx", "int8": "model.int8.onnx"} and TASKS == ("image", "audio")
    assert issubclass(BundleError, ValueError)


# -- labels.txt, manifest writing, checksums ----------------------------------------------------------


def test_read_labels_plain_and_teachable_machine_lines(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("0 Class 1\n\n  1 dog  \n7\nbig cat\n12 \n", encoding="utf-8")
    # "0 Class 1" -> index stripped; "7" alone is a label; "12 " is stripped to "12" first
    assert read_labels(path) == ["Class 1", "dog", "7", "big cat", "12"]


def test_write_labels_one_a_line(tmp_path: Path) -> None:
    write_labels(tmp_path / "l.txt", ("a", "b c"))
    assert (tmp_path / "l.txt").read_bytes() == b"a\nb c\n"
    write_labels(tmp_path / "e.txt", [])
    assert (tmp_path / "e.txt").read_bytes() == b""


def test_write_manifest_fills_format_and_checksums_of_files_that_exist(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"abc")
    write_labels(tmp_path / LABELS_NAME, ["a", "b"])
    manifest = {"task": "image", "variants": {"fp32": "model.onnx", "int8": "model.int8.onnx"}, "format": "old"}
    path = write_manifest(tmp_path, manifest)
    assert path == tmp_path / MANIFEST_NAME
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n") and text.startswith('{\n  "task": "image"')
    data = json.loads(text)
    assert data["format"] == "edgeteach-bundle" and data["format_version"] == 1
    assert data["files"] == {
        "labels.txt": {"sha256": hashlib.sha256(b"a\nb\n").hexdigest(), "bytes": 4},
        "model.onnx": {"sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "bytes": 3},
    }  # model.int8.onnx does not exist: no entry
    assert list(data["files"]) == ["labels.txt", "model.onnx"]
    assert manifest["format"] == "old" and "files" not in manifest  # the caller's dict is not changed


def test_write_manifest_without_variants_checksums_labels_only(tmp_path: Path) -> None:
    write_labels(tmp_path / LABELS_NAME, ["a"])
    data = json.loads(write_manifest(tmp_path, {}).read_text())
    assert list(data["files"]) == ["labels.txt"]


@pytest.fixture()
def latin1_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    """pathlib text I/O without an explicit encoding behaves as on a device with a Latin-1 locale."""
    real_read, real_write = Path.read_text, Path.write_text

    def read_text(self: Path, encoding: str | None = None, errors: str | None = None) -> str:
        return real_read(self, encoding=encoding or "latin-1", errors=errors)

    def write_text(self: Path, data: str, encoding: str | None = None, errors: str | None = None, newline: str | None = None) -> int:
        return real_write(self, data, encoding=encoding or "latin-1", errors=errors, newline=newline)

    monkeypatch.setattr(Path, "read_text", read_text)
    monkeypatch.setattr(Path, "write_text", write_text)


def test_labels_and_manifest_are_utf8_whatever_the_locale(tmp_path: Path, latin1_locale: None) -> None:
    labels = ["café", "naïve"]
    write_labels(tmp_path / LABELS_NAME, labels)
    assert (tmp_path / LABELS_NAME).read_bytes() == "café\nnaïve\n".encode()
    assert read_labels(tmp_path / LABELS_NAME) == labels
    root = make(tmp_path / "b", dict(IMAGE, labels=labels))
    manifest = json.loads((root / MANIFEST_NAME).read_bytes().decode("utf-8"))
    (root / MANIFEST_NAME).write_bytes(json.dumps(manifest, ensure_ascii=False).encode("utf-8"))  # raw UTF-8, as other tools write it
    assert load_bundle(root).labels == ("café", "naïve")


def test_sha256_file_reads_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = bytes(range(256)) * 9000  # 2.3 MB: three 1 MiB chunks
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


# -- Teachable Machine (issue 13) -------------------------------------------------------------------------


def test_a_leading_number_is_an_index_only_at_its_own_position(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("10 Rupees\nRupees 10\n2 100 Rupees\n3 Rupees 100\n4\n", encoding="utf-8")
    assert read_labels(path) == ["10 Rupees", "Rupees 10", "100 Rupees", "Rupees 100", "4"]
    path.write_text("0 cat\n1 dog\n", encoding="utf-8")
    assert read_labels(path) == ["cat", "dog"]


@pytest.fixture()
def no_trainer(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a device: no `trainer` command to convert a Teachable Machine export with."""
    from edge.core import tm_cache

    monkeypatch.setattr(tm_cache, "find_trainer", lambda: None)


@pytest.mark.parametrize("name", ["model_unquant.tflite", "model.tflite", "model_edgetpu.tflite", "keras_model.h5", "model.json"])
def test_a_teachable_machine_export_folder_says_how_to_convert_it(tmp_path: Path, name: str, no_trainer: None) -> None:
    (tmp_path / name).write_bytes(b"x")
    error = refused(tmp_path, "a Teachable Machine export, not a bundle")
    assert f"trainer import-tm {tmp_path} -o BUNDLE_DIR" in str(error)


@pytest.mark.parametrize("name", ["converted_keras.zip", "model.TFLITE", "keras_model.h5", "model.json"])
def test_a_teachable_machine_file_says_how_to_convert_it(tmp_path: Path, name: str, no_trainer: None) -> None:
    (tmp_path / name).write_bytes(b"x")
    refused(tmp_path / name, "a Teachable Machine export, not a bundle")


def test_a_teachable_machine_project_says_to_train_from_it(tmp_path: Path) -> None:
    (tmp_path / "project.tm").write_bytes(b"x")
    refused(tmp_path / "project.tm", f"a Teachable Machine project .*trainer train {tmp_path / 'project.tm'}")


def test_a_converted_teachable_machine_export_is_used_without_the_trainer(tmp_path: Path, no_trainer: None) -> None:
    """A device gets the export with the bundle converted beside it: the stamp matches, so that bundle loads."""
    from edge.core import tm_cache

    export = tmp_path / "tm"
    export.mkdir()
    (export / "keras_model.h5").write_bytes(b"weights")
    converted = make(tmp_path / "tm.edgeteach")
    (converted / tm_cache.STAMP_NAME).write_text(json.dumps({"sha256": tm_cache.export_digest(export)}))
    assert load_bundle(export).path == converted
    (export / "labels.txt").write_text("0 a\n1 b\n")  # the export changed: the old conversion is not used
    refused(export, "a Teachable Machine export, not a bundle")


def test_a_bundle_beside_teachable_machine_files_still_loads(tmp_path: Path, no_trainer: None) -> None:
    make(tmp_path)
    (tmp_path / "model.json").write_text("{}")
    assert load_bundle(tmp_path).labels == ("cat", "dog")


def test_other_single_files_are_not_taken_for_teachable_machine(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"x")
    refused(tmp_path / "model.onnx", "not a single file")
