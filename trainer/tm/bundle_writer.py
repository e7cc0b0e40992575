"""Converted graphs -> a normal EdgeTeach bundle (docs/bundle.md), written through the trainer's own
`write_bundle`, then loaded back with the device's checks (`load_bundle` + an ONNX Runtime session per variant),
so an import that `edge run` would refuse fails here instead."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edge.core.bundle import MANIFEST_NAME, VARIANT_FILES, BundleError, load_bundle
from edge.core.images import RESIZE_POLICY
from edge.core.session import Classifier
from trainer.export import remove_stale, write_bundle
from trainer.tm.errors import TmImportError
from trainer.tm.sound_frontend import FRONT_END, HOP_SAMPLES, SAMPLE_RATE, WINDOW_SAMPLES

SOURCE = "teachable-machine"  # manifest `source` of every imported bundle
BACKBONE = "teachable-machine (MobileNetV2 0.35 + dense head)"


@dataclass(frozen=True)
class SourceFile:
    name: str  # path inside the export
    sha256: str
    bytes: int


def prepare_out_dir(out_dir: Path, export: Path) -> None:
    """The output folder: new, empty, or an earlier bundle (replaced). Never the export itself."""
    if out_dir.resolve() == export.resolve() or (export.is_dir() and export.resolve() in out_dir.resolve().parents):
        raise TmImportError(f"{out_dir}: inside the export {export}; write the bundle to its own folder, e.g. models/my-tm-model")
    if out_dir.exists() and not out_dir.is_dir():
        raise TmImportError(f"{out_dir}: exists and is not a folder; pick a folder name for the bundle")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST_NAME).is_file():
        raise TmImportError(f"{out_dir}: a folder that holds other files and no bundle; pick a new or empty folder so nothing of yours "
                            "is overwritten")
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale(out_dir)


def image_contract(size: tuple[int, int], normalization: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """input spec and preprocessing of an image bundle: the device centre-crops and resizes, the graph scales."""
    height, width = size
    return ({"name": "image", "dtype": "uint8", "shape": [-1, height, width, 3]},
            {"resize": RESIZE_POLICY, "size": [height, width], "color": "RGB", "normalization": normalization})


def sound_contract() -> tuple[dict[str, Any], dict[str, Any]]:
    """input spec and preprocessing of a speech-commands sound bundle: the device resamples to 44.1 kHz and cuts
    windows, the graph computes TM's browser front end."""
    return ({"name": "waveform", "dtype": "float32", "shape": [-1, WINDOW_SAMPLES]},
            {"sample_rate": SAMPLE_RATE, "window_samples": WINDOW_SAMPLES, "hop_samples": HOP_SAMPLES, "channels": 1,
             "front_end": FRONT_END})


def write_tm_bundle(
    out_dir: Path,
    *,
    variants: dict[str, onnx.ModelProto],
    labels: Sequence[str],
    task: str,
    input_spec: dict[str, Any],
    preprocessing: dict[str, Any],
    export_format: str,
    source_files: Sequence[SourceFile],
    notes: dict[str, str],
) -> Path:
    """Writes model(.int8).onnx, labels.txt and manifest.json into a prepared out_dir; checks the result."""
    for variant, model in variants.items():
        onnx.save_model(model, str(out_dir / VARIANT_FILES[variant]))
    write_bundle(
        out_dir,
        task=task,
        labels=labels,
        input_spec=input_spec,
        preprocessing=preprocessing,
        metrics={},
        extra={
            "backbone": BACKBONE,
            "source": SOURCE,
            "source_export": {
                "format": export_format,
                "files": {f.name: {"sha256": f.sha256, "bytes": f.bytes} for f in source_files},
                "variants": notes,
            },
        },
    )
    try:
        bundle = load_bundle(out_dir)
        # a grey image or digital silence: what comes out must still be probabilities
        blank = np.full([1, *input_spec["shape"][1:]], 128 if input_spec["dtype"] == "uint8" else 0, dtype=input_spec["dtype"])
        for variant in variants:
            probs = Classifier(bundle, variant=variant, threads=1).run(blank)
            if probs.shape != (1, len(labels)) or not np.isfinite(probs).all() or abs(float(probs.sum()) - 1.0) > 0.05:
                raise TmImportError(f"{out_dir}: the converted {variant} model gives {probs.tolist()} for a blank input, not "
                                    "probabilities; please report this export")
    except BundleError as exc:
        raise TmImportError(f"the converted bundle does not load ({exc}); please report this export") from exc
    return out_dir
