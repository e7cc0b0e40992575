"""A TF.js layers model: model.json's topology and its weights from the binary shards it names (weights.bin),
checked byte for byte against the manifest, so a truncated download is refused, not half-read."""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from trainer.tm.errors import TmImportError
from trainer.tm.export_reader import ExportFiles

_DTYPES = {"float32": np.float32, "int32": np.int32}
_QUANTIZED = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}


def _shard(export: ExportFiles, model_json: str, path: object) -> bytes:
    if not isinstance(path, str) or not path or path.startswith("/") or ".." in PurePosixPath(path).parts or "\\" in path:
        raise TmImportError(f"{export.where(model_json)}: weights path {path!r} is not a file beside model.json")
    name = str(PurePosixPath(model_json).parent / path)
    if name not in export.files:
        raise TmImportError(f"{export.where(model_json)}: names {path}, which is not beside it; keep model.json, weights.bin and "
                            "metadata.json of one download together")
    return export.files[name]


def _decode(spec: dict[str, Any], buffer: bytes, offset: int, where: str) -> tuple[np.ndarray, int]:
    name, shape = str(spec.get("name")), tuple(int(d) for d in spec.get("shape", []))
    count = int(np.prod(shape)) if shape else 1
    quant = spec.get("quantization")
    if quant:
        dtype = _QUANTIZED.get(str(quant.get("dtype")))
        if dtype is None:
            raise TmImportError(f"{where}: weight {name!r} is quantized as {quant.get('dtype')!r}, which import-tm does not read")
    else:
        dtype = _DTYPES.get(str(spec.get("dtype", "float32")))
        if dtype is None:
            raise TmImportError(f"{where}: weight {name!r} has dtype {spec.get('dtype')!r}, which import-tm does not read")
    size = count * np.dtype(dtype).itemsize
    if offset + size > len(buffer):
        raise TmImportError(f"{where}: the weights end at byte {len(buffer)}, but weight {name!r} needs bytes up to {offset + size}; "
                            "weights.bin is truncated — download the export again")
    raw = np.frombuffer(buffer, dtype=dtype, count=count, offset=offset)
    if quant and dtype is not np.float16:
        values = raw.astype(np.float32) * float(quant["scale"]) + float(quant["min"])
    else:
        values = raw.astype(np.float32) if dtype is not np.int32 else raw.copy()
    return values.reshape(shape), offset + size


def read_tfjs(export: ExportFiles, model_json: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(topology, weights by "layer/weight") of a TF.js layers model."""
    where = export.where(model_json)
    try:
        doc = json.loads(export.files[model_json].decode("utf-8-sig"))
        topology = doc["modelTopology"]
        config = topology.get("model_config", topology)
        groups = doc["weightsManifest"]
        weights: dict[str, np.ndarray] = {}
        for group in groups:
            buffer = b"".join(_shard(export, model_json, p) for p in group["paths"])
            offset = 0
            for spec in group["weights"]:
                weights[str(spec["name"])], offset = _decode(spec, buffer, offset, where)
            if offset != len(buffer):
                raise TmImportError(f"{where}: {len(buffer) - offset} bytes of {', '.join(group['paths'])} belong to no weight; the "
                                    "weights are from another model — keep one download's files together")
    except TmImportError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TmImportError(f"{where}: not a TF.js layers model ({exc.__class__.__name__}: {exc}); pass the model.json of a Teachable "
                            "Machine TensorFlow.js download") from exc
    if not isinstance(config, dict):
        raise TmImportError(f"{where}: modelTopology is not a Keras model")
    return config, weights
