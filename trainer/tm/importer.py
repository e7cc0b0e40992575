"""The whole `trainer import-tm` run: read the export, pick its files, convert, write and check the bundle."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import onnx

from trainer.tm.bundle_writer import SourceFile, image_contract, prepare_out_dir, sound_contract, write_tm_bundle
from trainer.tm.detect import LayersExport, TfliteExport, detect
from trainer.tm.errors import TmImportError
from trainer.tm.export_reader import ExportFiles, read_export
from trainer.tm.graph import TM_NORMALIZATION
from trainer.tm.h5_weights import read_h5
from trainer.tm.keras_layers import layers_to_onnx
from trainer.tm.labels import check_class_count, parse_labels_txt, parse_metadata_labels
from trainer.tm.tfjs_weights import read_tfjs
from trainer.tm.tflite_onnx import input_normalization, tflite_to_onnx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportResult:
    bundle: Path
    export_format: str  # tflite, keras, tfjs
    labels: list[str]
    variants: dict[str, str]  # variant -> how it was made
    source_files: list[SourceFile]


def _source(export: ExportFiles, name: str) -> SourceFile:
    data = export.files[name]
    return SourceFile(name=name, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))


Converted = tuple[dict[str, onnx.ModelProto], dict[str, str], tuple[int, int], str, int]  # graphs, notes, size, normalization, classes


def _convert_tflite(export: ExportFiles, plan: TfliteExport) -> Converted:
    graphs: dict[str, onnx.ModelProto] = {}
    notes: dict[str, str] = {}
    size, classes, normalization = (0, 0), 0, TM_NORMALIZATION
    if plan.float_model is not None and plan.float_name is not None:
        graphs["fp32"], size, classes = tflite_to_onnx(plan.float_model, export.where(plan.float_name), quantized=False)
        notes["fp32"] = f"{plan.float_name}: float32, converted op by op"
    if plan.quant_model is not None and plan.quant_name is not None:
        where = export.where(plan.quant_name)
        graphs["int8"], qsize, qclasses = tflite_to_onnx(plan.quant_model, where, quantized=True)
        notes["int8"] = f"{plan.quant_name}: int8 weights and activations with the file's own scales (QDQ)"
        if "fp32" in graphs:
            if (qsize, qclasses) != (size, classes):
                raise TmImportError(f"{where}: input {qsize} / {qclasses} classes, but {plan.float_name} has {size} / {classes}; they are "
                                    "not the same model — import one folder at a time")
        else:
            # Only the quantized file was exported: fp32 (which every bundle has) is the same network with its
            # weights dequantized once and float activations.
            graphs["fp32"], size, classes = tflite_to_onnx(plan.quant_model, where, quantized=False)
            notes["fp32"] = f"{plan.quant_name}: weights dequantized to float32, float activations"
            normalization = input_normalization(plan.quant_model)
    return graphs, notes, size, normalization, classes


def _convert_layers(export: ExportFiles, plan: LayersExport) -> Converted:
    where = export.where(plan.model_name)
    config, weights = read_h5(export.files[plan.model_name], where) if plan.kind == "keras" else read_tfjs(export, plan.model_name)
    graph, size, classes = layers_to_onnx(config, weights, where, sound=plan.kind == "tfjs-sound")
    # No int8 variant: a float Keras/TF.js export carries no quantization, and static int8 needs calibration
    # photos an export does not have; the quantized TFLite export is the way to an int8 model.
    return {"fp32": graph}, {"fp32": f"{plan.model_name}: float32, converted layer by layer"}, size, TM_NORMALIZATION, classes


def import_tm(export_path: Path, out_dir: Path) -> ImportResult:
    """Turns a Teachable Machine export (folder, zip or model file) into a bundle in out_dir."""
    export = read_export(export_path)
    plan = detect(export)
    if isinstance(plan, TfliteExport):
        graphs, notes, size, normalization, classes = _convert_tflite(export, plan)
        task, (input_spec, preprocessing) = "image", image_contract(size, normalization)
        labels = parse_labels_txt(export.files[plan.labels_name], export.where(plan.labels_name))
        model_names = [n for n in (plan.float_name, plan.quant_name) if n]
        export_format = "tflite"
    else:
        assert isinstance(plan, LayersExport)
        graphs, notes, size, normalization, classes = _convert_layers(export, plan)
        sound = plan.kind == "tfjs-sound"
        task, (input_spec, preprocessing) = ("audio", sound_contract()) if sound else ("image", image_contract(size, normalization))
        labels_data, labels_where = export.files[plan.labels_name], export.where(plan.labels_name)
        if plan.kind == "keras":
            labels = parse_labels_txt(labels_data, labels_where)
        else:
            labels = parse_metadata_labels(labels_data, labels_where, "wordLabels" if sound else "labels")
        model_names = [plan.model_name, *plan.weight_files]
        export_format = plan.kind
    check_class_count(labels, classes, export.where(plan.labels_name), export.where(model_names[0]))
    prepare_out_dir(out_dir, export_path)
    sources = [_source(export, n) for n in [*model_names, plan.labels_name]]
    write_tm_bundle(out_dir, variants=graphs, labels=labels, task=task, input_spec=input_spec, preprocessing=preprocessing,
                    export_format=export_format, source_files=sources, notes=notes)
    for variant, note in notes.items():
        log.info("%s variant: %s", variant, note)
    return ImportResult(bundle=out_dir, export_format=export_format, labels=labels, variants=notes, source_files=sources)
