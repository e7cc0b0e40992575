"""A Keras .h5 file (Keras 2.4, TensorFlow 2.x) read with h5py alone: the `model_config` JSON and the weights
as plain HDF5 datasets, keyed "layer/weight" (e.g. "Conv1/kernel"), whatever model nests the layer. Keras
itself is not used: recent releases refuse the 2.4 layer configs Teachable Machine writes."""

from __future__ import annotations

import io
import json
from typing import Any

import h5py
import numpy as np

from trainer.tm.errors import TmImportError


def read_h5(data: bytes, where: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(topology, weights by "layer/weight"). Raises TmImportError for a damaged or non-Keras file."""
    try:
        with h5py.File(io.BytesIO(data), "r") as f:
            raw = f.attrs.get("model_config")
            if raw is None:
                raise TmImportError(f"{where}: no model_config; this .h5 holds weights only, not a Keras model saved by Teachable Machine")
            config = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))
            group = f.get("model_weights", f)
            weights: dict[str, np.ndarray] = {}

            def collect(name: str, obj: object) -> None:
                if isinstance(obj, h5py.Dataset):
                    parts = name.split("/")
                    key = f"{parts[-2]}/{parts[-1].split(':')[0]}" if len(parts) >= 2 else parts[-1]
                    if key in weights:
                        raise TmImportError(f"{where}: two weights named {key!r}; import-tm cannot tell which layer each belongs to")
                    weights[key] = np.asarray(obj[()])

            group.visititems(collect)
    except TmImportError:
        raise
    except (OSError, KeyError, ValueError, UnicodeDecodeError) as exc:
        raise TmImportError(f"{where}: cannot read this Keras file ({exc.__class__.__name__}: {exc}); it is damaged or truncated — "
                            "download the export again") from exc
    if not isinstance(config, dict):
        raise TmImportError(f"{where}: model_config is not a JSON object")
    return config, weights
