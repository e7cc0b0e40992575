"""Which Teachable Machine export a folder or zip holds, and which of its files make the bundle.

A TM download holds one export (converted_tflite/, converted_keras/, a TF.js folder); a folder may hold the
float and the quantized TFLite files of one model side by side, and then both are used (fp32 from the float
file, int8 from the quantized one). Anything else ambiguous is refused with the candidates named, rather
than guessed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import PurePosixPath

from trainer.tm.errors import TmImportError
from trainer.tm.export_reader import ExportFiles
from trainer.tm.labels import parse_metadata
from trainer.tm.tflite_reader import TfModel, read_tflite

IMAGE_PACKAGE = "@teachablemachine/image"
POSE_PACKAGE = "@teachablemachine/pose"
FLOAT_TFLITE = "model_unquant.tflite"


@dataclass(frozen=True)
class TfliteExport:
    float_name: str | None
    float_model: TfModel | None
    quant_name: str | None
    quant_model: TfModel | None
    labels_name: str


@dataclass(frozen=True)
class LayersExport:
    """A Keras (.h5) or TF.js (model.json + weights) export: the same tfjs-layers/Keras topology."""

    kind: str  # "keras", "tfjs" (image) or "tfjs-sound" (speech-commands)
    model_name: str  # keras_model.h5 or model.json
    labels_name: str  # labels.txt (keras) or metadata.json (tfjs)
    weight_files: tuple[str, ...] = ()  # tfjs: the shards model.json names (weights.bin)


Plan = TfliteExport | LayersExport


def _folder(name: str) -> PurePosixPath:
    return PurePosixPath(name).parent


def _beside(export: ExportFiles, model_name: str, wanted: str, hint: str) -> str:
    name = str(_folder(model_name) / wanted)
    if name not in export.files:
        raise TmImportError(f"{export.where(model_name)}: no {wanted} beside it; {hint}")
    return name


def _pose_or_sound(export: ExportFiles) -> None:
    """Models import-tm does not convert (yet), refused by what their metadata says."""
    for name in export.names("metadata.json"):
        try:
            meta = parse_metadata(export.files[name], export.where(name))
        except TmImportError:
            continue
        package = str(meta.get("packageName", ""))
        if package == POSE_PACKAGE or "pose" in package:
            raise TmImportError(f"{export.where(name)}: a Teachable Machine pose model ({package}); pose models need PoseNet key "
                                "points before the classifier and are not supported — train an image model instead")



def _tflite(export: ExportFiles, names: list[str]) -> TfliteExport:
    floats: list[tuple[str, TfModel]] = []
    quants: list[tuple[str, TfModel]] = []
    edge_tpu: list[str] = []
    for name in names:
        model = read_tflite(export.files[name], export.where(name))
        if model.is_edge_tpu:
            edge_tpu.append(name)
        elif len(model.tensors[model.inputs[0]].shape) != 4:
            raise TmImportError(f"{export.where(name)}: input shape {list(model.tensors[model.inputs[0]].shape)} is not an image: a "
                                "Teachable Machine sound model as TFLite, which import-tm does not convert; export the sound model "
                                "as TensorFlow.js instead (docs/teachable-machine.md)")
        elif model.is_quantized:
            quants.append((name, model))
        else:
            floats.append((name, model))
    if not floats and not quants:
        raise TmImportError(f"{export.where(edge_tpu[0])}: an Edge TPU model: it runs only on a Coral accelerator with its own runtime. "
                            f"Export the float model instead (Teachable Machine: Export Model > Tensorflow Lite > Floating point, "
                            f"the {FLOAT_TFLITE} file) and import that")
    for kind, found in (("float", floats), ("quantized", quants)):
        if len(found) > 1:
            raise TmImportError(f"{export.origin}: holds {len(found)} {kind} TFLite models ({', '.join(n for n, _ in found)}); pass the "
                                "folder of the one to import")
    float_name, float_model = floats[0] if floats else (None, None)
    quant_name, quant_model = quants[0] if quants else (None, None)
    model_name = str(float_name or quant_name)
    labels = _beside(export, model_name, "labels.txt", "Teachable Machine writes labels.txt into the same download — keep them together")
    if float_name and quant_name:
        other = _beside(export, str(quant_name), "labels.txt", "keep labels.txt beside each model")
        if export.files[other] != export.files[labels]:
            raise TmImportError(f"{export.origin}: the float and quantized models have different labels.txt files; they are not the "
                                "same model — import one folder at a time")
    return TfliteExport(float_name, float_model, quant_name, quant_model, labels)


def _tfjs_kind(export: ExportFiles, model_json: str) -> tuple[str, str]:
    """("tfjs" or "tfjs-sound", metadata.json's name)."""
    metadata = _beside(export, model_json, "metadata.json", "Teachable Machine's TF.js download has model.json, weights.bin and "
                       "metadata.json together — unzip the whole download")
    meta = parse_metadata(export.files[metadata], export.where(metadata))
    if "wordLabels" in meta or "tfjsSpeechCommandsVersion" in meta:
        return "tfjs-sound", metadata
    package = str(meta.get("packageName", ""))
    if package and package != IMAGE_PACKAGE:
        raise TmImportError(f"{export.where(metadata)}: made by {package!r}, not {IMAGE_PACKAGE}; import-tm converts Teachable Machine "
                            "image and sound models")
    return "tfjs", metadata


def detect(export: ExportFiles) -> Plan:
    """The one export to import. Raises TmImportError naming what was found and what to pass instead."""
    _pose_or_sound(export)
    tflites = export.names(".tflite")
    h5s = export.names(".h5")
    model_jsons = [n for n in export.names(".json") if PurePosixPath(n).name == "model.json"]
    kinds = [(k, v) for k, v in (("TFLite", tflites), ("Keras", h5s), ("TF.js", model_jsons)) if v]
    if not kinds:
        raise TmImportError(f"{export.origin}: no Teachable Machine model here (looked for *.tflite, keras_model.h5, model.json); "
                            "pass the folder or zip Teachable Machine's Export Model downloaded")
    if len(kinds) > 1:
        listed = "; ".join(f"{k}: {', '.join(v)}" for k, v in kinds)
        raise TmImportError(f"{export.origin}: holds several exports ({listed}); pass the folder of the one to import")
    kind, names = kinds[0]
    if kind == "TFLite":
        return _tflite(export, names)
    if len(names) > 1:
        raise TmImportError(f"{export.origin}: holds {len(names)} {kind} models ({', '.join(names)}); pass the folder of the one to import")
    if kind == "Keras":
        labels = _beside(export, names[0], "labels.txt", "Teachable Machine's Keras download has keras_model.h5 and labels.txt "
                         "together — unzip the whole download")
        return LayersExport("keras", names[0], labels)
    try:
        manifest = json.loads(export.files[names[0]]).get("weightsManifest", [])
        shards = tuple(str(PurePosixPath(names[0]).parent / p) for group in manifest for p in group.get("paths", []))
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, TypeError) as exc:
        raise TmImportError(f"{export.where(names[0])}: not a TF.js model.json ({exc}); download the export again") from exc
    kind, metadata = _tfjs_kind(export, names[0])
    return LayersExport(kind, names[0], metadata, tuple(s for s in shards if s in export.files))
