"""A Teachable Machine export given where a bundle is expected: converted once into a bundle beside it.

`load_bundle` (so `edge run`, `edge predict`, reload, the checks) calls `converted_bundle` when it is pointed
at a TM download (folder, zip or model file). The conversion is `trainer import-tm`, run as a command: it needs
the trainer's packages (ONNX, the TFLite schema, h5py), which a device does not install, and edge never imports
the trainer. On a workstation with both, the first use converts and logs it; later uses reuse the bundle while
the export's files are unchanged (a stamp holds their SHA-256). On a device without the trainer, a bundle
converted earlier (copied along with the export) is used; otherwise the error says what to run where.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

STAMP_NAME = "teachable-machine-source.json"  # inside the converted bundle: what it was made from
CONVERT_TIMEOUT_S = 600
# the files of a download that decide the model (photos and notes beside them do not)
MODEL_SUFFIXES = (".tflite", ".h5", ".json", ".bin", ".txt")


class ConversionError(ValueError):
    """The export could not be converted here; the message says what to do."""


def cache_dir(export: Path) -> Path:
    """Where the converted bundle lives: beside the export (`my-model.zip` -> `my-model.edgeteach/`), or, when that
    folder cannot be written, under $EDGETEACH_CACHE (default ~/.cache/edgeteach)/tm-bundles."""
    export = export.resolve()
    beside = export.parent / f"{export.stem if export.is_file() else export.name}.edgeteach"
    if os.access(export.parent, os.W_OK) or beside.is_dir():
        return beside
    digest = hashlib.sha256(str(export).encode()).hexdigest()[:16]
    root = Path(os.environ.get("EDGETEACH_CACHE", Path.home() / ".cache" / "edgeteach"))
    return root / "tm-bundles" / f"{export.stem}-{digest}"


def export_digest(export: Path) -> str:
    """SHA-256 over the export's model files (names and contents), so an edited or replaced export is converted again."""
    digest = hashlib.sha256()
    if export.is_dir():
        root, files = export, sorted(p for p in export.rglob("*") if p.is_file() and p.suffix.lower() in MODEL_SUFFIXES)
    elif export.suffix.lower() == ".zip":
        root, files = export.parent, [export]
    else:  # a model file: labels.txt, weights.bin and metadata.json beside it count too
        root, files = export.parent, sorted(p for p in export.parent.iterdir() if p.is_file() and p.suffix.lower() in MODEL_SUFFIXES)
    for path in files:
        digest.update(str(path.relative_to(root)).encode())
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def find_trainer() -> str | None:
    """The `trainer` command of this installation (beside this Python), else one on PATH."""
    beside = Path(sys.executable).with_name("trainer")
    return str(beside) if beside.is_file() else shutil.which("trainer")


def converted_bundle(export: Path) -> Path:
    """The bundle converted from a Teachable Machine export, converting it first when needed."""
    if export.suffix.lower() == ".tm":
        raise ConversionError(f"{export}: a Teachable Machine project (its samples), not a model; train a bundle from it with "
                              f"`trainer train {export} -o BUNDLE_DIR`, or export the model from Teachable Machine "
                              "(docs/teachable-machine.md)")
    target = cache_dir(export)
    digest = export_digest(export)
    stamp = target / STAMP_NAME
    try:
        if json.loads(stamp.read_text(encoding="utf-8")).get("sha256") == digest:
            log.info("%s: Teachable Machine export; using the bundle converted from it earlier, %s", export, target)
            return target
    except (OSError, ValueError, AttributeError):
        pass
    trainer = find_trainer()
    if trainer is None:
        raise ConversionError(f"{export}: a Teachable Machine export, not a bundle; convert it once on the workstation with "
                              f"`trainer import-tm {export} -o BUNDLE_DIR` and point at BUNDLE_DIR (docs/teachable-machine.md)")
    log.info("%s: Teachable Machine export; converting it once with `trainer import-tm` into %s", export, target)
    try:
        done = subprocess.run([trainer, "import-tm", str(export), "-o", str(target)], capture_output=True, text=True,
                              timeout=CONVERT_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConversionError(f"{export}: `trainer import-tm` could not run ({exc}); convert it by hand: "
                              f"`trainer import-tm {export} -o BUNDLE_DIR`") from exc
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit code {done.returncode}"
        raise ConversionError(f"{export}: a Teachable Machine export that `trainer import-tm` could not convert: {reason}")
    stamp.write_text(json.dumps({"export": str(export), "sha256": digest}) + "\n", encoding="utf-8")
    log.info("%s: converted into %s; later runs reuse it while the export is unchanged", export, target)
    return target
