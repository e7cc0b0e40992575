"""Embeddings of the frozen part of a network, computed once with ONNX Runtime and cached on disk.

Why ONNX Runtime: on a CPU it runs the frozen backbone several times faster than PyTorch eager, and it
is the runtime the device uses, so the head learns from the very features the device will compute.
Why a disk cache keyed by file content and network: retraining with other epochs, learning rate or
batch size then skips the expensive part entirely and takes seconds.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    env = os.environ.get("EDGETEACH_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgeteach"


def file_digest(path: str | Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _atomic_save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        np.save(handle, array)
    os.replace(tmp, path)


class EmbeddingCache:
    """One folder per network key; one .npy per input file content (and kind: base view or augmented)."""

    def __init__(self, root: Path, key: str) -> None:
        self.dir = Path(root) / "embeddings" / key

    def _path(self, digest: str, kind: str) -> Path:
        return self.dir / digest[:2] / f"{digest}.{kind}.npy"

    def get(self, digest: str, kind: str) -> np.ndarray | None:
        path = self._path(digest, kind)
        if not path.is_file():
            return None
        try:
            return np.load(path)
        except (OSError, ValueError):
            log.warning("ignoring a damaged cache entry %s", path)
            return None

    def put(self, digest: str, kind: str, array: np.ndarray) -> None:
        _atomic_save(self._path(digest, kind), np.asarray(array, dtype=np.float32))


class OnnxEmbedder:
    """The frozen module exported once to ONNX (cached beside the embeddings) and run in ONNX Runtime."""

    def __init__(self, frozen: nn.Module, example: torch.Tensor, cache_root: Path, key: str, threads: int = 0) -> None:
        from trainer.export import batch_session, export_onnx

        path = Path(cache_root) / "frozen" / f"{key}.onnx"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.onnx")
            export_onnx(frozen, example, tmp, input_name="input", output_name="features")
            os.replace(tmp, path)
        self.path = path
        self.session = batch_session(path, threads=threads)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: np.ascontiguousarray(batch)})[0], dtype=np.float32)


def embed_all(
    items: Sequence[tuple[str, Callable[[], np.ndarray]]],
    embed: Callable[[np.ndarray], np.ndarray],
    cache: EmbeddingCache | None,
    kind: str,
    batch_size: int = 32,
    desc: str = "embedding",
    progress: bool = True,
) -> tuple[list[np.ndarray], int]:
    """Embeddings for (digest, make_inputs) items; make_inputs returns [k, ...] model inputs for that item
    and is only called on a cache miss. Returns one [k, D] array per item and the number of cache hits."""
    results: list[np.ndarray | None] = [None] * len(items)
    missing: list[int] = []
    for i, (digest, _) in enumerate(items):
        hit = cache.get(digest, kind) if cache else None
        if hit is not None:
            results[i] = hit
        else:
            missing.append(i)
    hits = len(items) - len(missing)
    pending: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        inputs = np.concatenate([x for _, x in pending])
        out = embed(inputs)
        offset = 0
        for index, x in pending:
            results[index] = out[offset : offset + len(x)]
            offset += len(x)
            if cache:
                cache.put(items[index][0], kind, results[index])  # type: ignore[arg-type]
        pending.clear()

    with tqdm(total=len(missing), desc=desc, unit="file", disable=not progress or not missing, leave=False) as bar:
        queued = 0
        for i in missing:
            x = items[i][1]()
            pending.append((i, x))
            queued += len(x)
            if queued >= batch_size:
                flush()
                queued = 0
            bar.update(1)
        flush()
    return [r for r in results if r is not None], hits
