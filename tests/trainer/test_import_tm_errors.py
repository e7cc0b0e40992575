"""`trainer import-tm` on bad input: each refused with a clear message (exit 2 through the real CLI entry
point), and nothing written anywhere, the output folder included. The exports are real fixtures copied into
tmp_path and broken there (or, for the zips, built there)."""

from __future__ import annotations

import json
import shutil
import struct
import zipfile
from pathlib import Path

import h5py
import pytest

from trainer.cli.main import main as trainer_main
from trainer.tm.errors import TmImportError
from trainer.tm.importer import import_tm


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*")}


def refused(tmp_path: Path, export: Path, caplog: pytest.LogCaptureFixture, *needles: str) -> str:
    """Runs the CLI on a bad export; asserts exit 2, every needle in the message, and no file added or changed."""
    before = snapshot(tmp_path)
    out = tmp_path / "out" / "bundle"
    caplog.clear()
    assert trainer_main(["import-tm", str(export), "-o", str(out)]) == 2
    message = caplog.text
    for needle in needles:
        assert needle in message, message
    assert snapshot(tmp_path) == before
    return message


def copy(shared_dir: Path, rel: str, tmp_path: Path) -> Path:
    target = tmp_path / "export"
    shutil.copytree(shared_dir / "teachable-machine" / rel, target)
    for p in [target, *target.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)  # the fixtures are read-only
    return target


def test_pose_model_is_refused(shared_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    export = copy(shared_dir, "tfjs-signs/tm-my-image-model", tmp_path)
    meta = json.loads((export / "metadata.json").read_text())
    meta["packageName"] = "@teachablemachine/pose"
    (export / "metadata.json").write_text(json.dumps(meta))
    refused(tmp_path, export, caplog, "pose model", "not supported")


def test_sound_model_without_its_weights_is_refused(shared_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    export = shared_dir / "teachable-machine" / "tfjs-audio-architecture"  # published without its weights.bin
    refused(tmp_path, export, caplog, "names weights.bin, which is not beside it", "keep model.json, weights.bin and metadata.json")


def test_truncated_weights_bin_is_refused(shared_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    export = copy(shared_dir, "tfjs-signs/tm-my-image-model", tmp_path)
    data = (export / "weights.bin").read_bytes()
    (export / "weights.bin").write_bytes(data[: len(data) - 4096])
    refused(tmp_path, export, caplog, "weights.bin is truncated", "download the export again")


def test_weights_bin_of_another_size_is_refused(shared_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    export = copy(shared_dir, "tfjs-signs/tm-my-image-model", tmp_path)
    (export / "weights.bin").write_bytes((export / "weights.bin").read_bytes() + b"\0" * 400)
    refused(tmp_path, export, caplog, "400 bytes", "belong to no weight")


def test_truncated_h5_is_refused(shared_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    export = copy(shared_dir, "keras-catdog/model", tmp_path)
    data = (export / "keras_model.h5").read_bytes()
    (export / "keras_model.h5").write_bytes(data[: len(data) // 2])
    refused(tmp_path, export, caplog, "keras_model.h5", "damaged or truncated")


def test_truncated_tflite_is_refused(shared_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    export = copy(shared_dir, "tflite-three-variants/converted_tflite", tmp_path)
    data = (export / "model_unquant.tflite").read_bytes()
    (export / "model_unquant.tflite").write_bytes(data[: len(data) // 3])
    refused(tmp_path, export, caplog, "model_unquant.tflite", "download the export again")


@pytest.mark.parametrize("rel,labels_name", [("keras-catdog/model", "labels.txt"), ("currency-image", "labels.txt")])
def test_labels_with_another_class_count_are_refused(shared_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, rel: str,
                                                     labels_name: str) -> None:
    export = copy(shared_dir, rel, tmp_path)
    path = export / labels_name
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    path.write_text("\n".join([*lines, f"{len(lines)} Extra class"]) + "\n")
    refused(tmp_path, export, caplog, "labels", "outputs", "same Teachable Machine download")


def test_metadata_labels_with_another_class_count_are_refused(shared_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    export = copy(shared_dir, "tfjs-signs/tm-my-image-model", tmp_path)
    meta = json.loads((export / "metadata.json").read_text())
    meta["labels"] = meta["labels"][:2]
    (export / "metadata.json").write_text(json.dumps(meta))
    refused(tmp_path, export, caplog, "2 labels", "3 outputs")


def test_labels_out_of_order_are_refused(shared_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    export = copy(shared_dir, "keras-catdog/model", tmp_path)
    (export / "labels.txt").write_text("1 dog\n0 cat\n")
    refused(tmp_path, export, caplog, "index 1 where 0 was expected")


def _patch_operator_code(raw: bytes, old: int, new: int) -> bytes:
    """Every operator code `old` turned into `new`, in place (OperatorCode: deprecated_builtin_code is vtable slot 4,
    an int8; builtin_code slot 10, an int32)."""
    import tflite

    model = tflite.Model.GetRootAsModel(raw, 0)
    data = bytearray(raw)
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == old:
            for slot, fmt in ((4, "<b"), (10, "<i")):
                offset = code._tab.Offset(slot)
                if offset:
                    struct.pack_into(fmt, data, code._tab.Pos + offset, new)
    return bytes(data)


def test_unknown_tflite_op_is_refused(shared_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import tflite

    export = copy(shared_dir, "tflite-three-variants/converted_tflite", tmp_path)
    path = export / "model_unquant.tflite"
    path.write_bytes(_patch_operator_code(path.read_bytes(), tflite.BuiltinOperator.MEAN, tflite.BuiltinOperator.SQUARE))
    refused(tmp_path, export, caplog, "SQUARE", "not supported by import-tm")


def test_unknown_keras_layer_is_refused(shared_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    export = copy(shared_dir, "keras-catdog/model", tmp_path)
    with h5py.File(export / "keras_model.h5", "r+") as f:
        f.attrs["model_config"] = f.attrs["model_config"].replace("GlobalAveragePooling2D", "GlobalMaxPooling2D")
    refused(tmp_path, export, caplog, "GlobalMaxPooling2D", "does not convert")


def _zip_with(tmp_path: Path, shared_dir: Path, extra: dict[str, bytes]) -> Path:
    """A zip shaped like Teachable Machine's Keras download (converted_keras/...) plus the given members."""
    source = shared_dir / "teachable-machine" / "keras-catdog" / "model"
    path = tmp_path / "converted_keras.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.write(source / "keras_model.h5", "converted_keras/keras_model.h5")
        z.write(source / "labels.txt", "converted_keras/labels.txt")
        for name, data in extra.items():
            z.writestr(name, data)
    return path


def test_zip_as_downloaded_imports(shared_dir: Path, tmp_path: Path) -> None:
    result = import_tm(_zip_with(tmp_path, shared_dir, {}), tmp_path / "bundle")
    assert result.labels == ["cat", "dog"]
    assert {f.name for f in result.source_files} == {"converted_keras/keras_model.h5", "converted_keras/labels.txt"}


@pytest.mark.parametrize("name", ["../evil.txt", "converted_keras/../../evil.txt", "/tmp/evil.txt", "..\\evil.txt"])
def test_zip_with_paths_outside_is_refused(shared_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str) -> None:
    path = _zip_with(tmp_path, shared_dir, {name: b"not yours"})
    message = refused(tmp_path, path, caplog, "outside the archive", "not a Teachable Machine export")
    assert repr(name) in message
    assert not (tmp_path.parent / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()


def test_zip_with_a_symlink_is_refused(shared_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _zip_with(tmp_path, shared_dir, {})
    with zipfile.ZipFile(path, "a") as z:
        link = zipfile.ZipInfo("converted_keras/link.txt")
        link.external_attr = (0o120777 << 16)
        z.writestr(link, "/etc/passwd")
    refused(tmp_path, path, caplog, "symbolic link")


def test_zip_bomb_member_is_refused(shared_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from trainer.tm import export_reader

    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("weights.bin", b"\0" * (export_reader.MAX_FILE_BYTES + 1))
    assert path.stat().st_size < 1_000_000
    refused(tmp_path, path, caplog, "weights.bin", "not a Teachable Machine export")


def test_output_folder_holding_other_files_is_refused(shared_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(TmImportError, match="holds other files"):
        import_tm(shared_dir / "teachable-machine" / "keras-catdog" / "model", out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_output_folder_inside_the_export_is_refused(shared_dir: Path, tmp_path: Path) -> None:
    export = copy(shared_dir, "keras-catdog/model", tmp_path)
    with pytest.raises(TmImportError, match="inside the export"):
        import_tm(export, export / "bundle")
    assert not (export / "bundle").exists()


def test_an_earlier_bundle_is_replaced(shared_dir: Path, tmp_path: Path) -> None:
    tm = shared_dir / "teachable-machine"
    import_tm(tm / "currency-image", tmp_path / "bundle")
    result = import_tm(tm / "keras-catdog" / "model", tmp_path / "bundle")
    assert sorted(p.name for p in result.bundle.iterdir()) == ["labels.txt", "manifest.json", "model.onnx"]  # no stale int8 model


def test_several_exports_in_one_folder_are_refused_naming_them(shared_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    refused(tmp_path, shared_dir / "teachable-machine" / "tfjs-keras-same-model", caplog, "keras/keras_model.h5", "tfjs/model.json")


def test_not_an_export_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"\xff\xd8")
    refused(tmp_path, tmp_path / "photos", caplog, "no Teachable Machine model here")
    refused(tmp_path, tmp_path / "missing", caplog, "no such file or folder")


@pytest.mark.parametrize("rel", ["tfjs-signs/tm-my-image-model/model.json", "keras-catdog/model/keras_model.h5",
                                 "currency-image/model_unquant.tflite"])
def test_the_model_file_itself_may_be_given(shared_dir: Path, tmp_path: Path, rel: str) -> None:
    result = import_tm(shared_dir / "teachable-machine" / rel, tmp_path / "bundle")
    assert result.variants.keys() == {"fp32"}  # currency-image: only the float file, not model.tflite beside it
    assert Path(rel).name in {f.name for f in result.source_files}
