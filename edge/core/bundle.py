"""The model bundle: the contract between `trainer` and `edge` (documented in docs/bundle.md).

A bundle is a folder holding `manifest.json`, `labels.txt` and one ONNX file per variant. Everything
the device must know to feed the model the same pixels or samples the trainer used lives in the
manifest, so that predictions on the device match the trainer's (Teachable Machine users suffer
exactly that mismatch). `load_bundle` refuses anything inconsistent before a session is built.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT_NAME = "edgeteach-bundle"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
LABELS_NAME = "labels.txt"
VARIANT_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
TASKS = ("image", "audio")


class BundleError(ValueError):
    """A bundle that cannot be used; the message says what is wrong, where, and how to fix it."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class InputSpec:
    name: str
    dtype: str  # "uint8" for images (NHWC RGB), "float32" for audio (mono waveform)
    shape: tuple[int, ...]  # -1 marks the dynamic batch dimension


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict[str, Any]
    task: str
    labels: tuple[str, ...]
    input: InputSpec
    output_name: str
    preprocessing: dict[str, Any]
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def variants(self) -> dict[str, str]:
        return dict(self.manifest.get("variants", {}))

    def model_path(self, variant: str = "fp32") -> Path:
        variants = self.variants
        if variant not in variants:
            raise BundleError(
                f"{self.path}: no '{variant}' variant in this bundle (it has: {', '.join(sorted(variants)) or 'none'}); "
                f"pick one of those or re-export with `trainer train`"
            )
        return self.path / variants[variant]

    def sha256(self, variant: str = "fp32") -> str:
        return str(self.files[self.variants[variant]]["sha256"])

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of an image bundle's input."""
        _, height, width, _ = self.input.shape
        return height, width

    @property
    def sample_rate(self) -> int:
        return int(self.preprocessing["sample_rate"])

    @property
    def window_samples(self) -> int:
        return int(self.preprocessing["window_samples"])

    @property
    def hop_samples(self) -> int:
        return int(self.preprocessing["hop_samples"])

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.manifest.get("metrics", {}))


def _require(manifest: dict[str, Any], key: str, kind: type | tuple[type, ...], where: Path) -> Any:
    if key not in manifest:
        raise BundleError(f"{where}: manifest has no '{key}'; this is not an EdgeTeach bundle or it is damaged — "
                          "re-export it with `trainer train`")
    value = manifest[key]
    if not isinstance(value, kind):
        raise BundleError(f"{where}: manifest '{key}' should be {getattr(kind, '__name__', kind)}, got {type(value).__name__}: {value!r}")
    return value


def read_labels(path: Path) -> list[str]:
    """Reads labels.txt: one label a line, in output order. Teachable Machine's "INDEX LABEL" lines are accepted:
    a leading number is taken for an index only when it is the line's own position (0, 1, 2 ...), so a label
    such as "10 Rupees" keeps its number."""
    labels: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        head, _, rest = line.partition(" ")
        labels.append(rest.strip() if head == str(len(labels)) and rest.strip() else line)
    return labels


def write_labels(path: Path, labels: list[str] | tuple[str, ...]) -> None:
    path.write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")


# What a Teachable Machine download holds (a zip, or these files in a folder without a manifest)
TEACHABLE_MACHINE_FILES = ("model_unquant.tflite", "model.tflite", "model_edgetpu.tflite", "keras_model.h5", "model.json")


def _looks_like_teachable_machine(root: Path) -> bool:
    if root.is_file():
        return root.suffix.lower() in (".zip", ".tflite", ".h5", ".tm") or root.name == "model.json"
    return not (root / MANIFEST_NAME).is_file() and any((root / name).is_file() for name in TEACHABLE_MACHINE_FILES)


def load_bundle(path: str | Path, verify_checksums: bool = True) -> Bundle:
    """Reads and checks a bundle folder (or its manifest.json). Raises BundleError naming the problem."""
    root = Path(path)
    if root.is_file() and root.name == MANIFEST_NAME:
        root = root.parent
    if not root.exists():
        raise BundleError(f"{root}: no such bundle folder; train one with `trainer train DATA_DIR -o {root}`")
    if _looks_like_teachable_machine(root):
        from edge.core.tm_cache import ConversionError, converted_bundle  # converts once with the trainer, if installed

        try:
            root = converted_bundle(root)
        except ConversionError as exc:
            raise BundleError(str(exc)) from exc
    if not root.is_dir():
        raise BundleError(f"{root}: a bundle is a folder holding {MANIFEST_NAME}, labels.txt and model.onnx, not a single file")
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file():
        raise BundleError(f"{root}: no {MANIFEST_NAME}; a bundle made by `trainer train` has one — point at the trainer's output folder")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{manifest_path}: not valid JSON ({exc}); the file is damaged — copy the bundle again") from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"{manifest_path}: expected a JSON object at the top level")
    if manifest.get("format") != FORMAT_NAME:
        raise BundleError(f"{manifest_path}: 'format' is {manifest.get('format')!r}, expected {FORMAT_NAME!r}; this "
                          "is not an EdgeTeach bundle")
    version = _require(manifest, "format_version", int, manifest_path)
    if version > FORMAT_VERSION or version < 1:
        raise BundleError(
            f"{manifest_path}: bundle format version {version} is not supported by this edge ({FORMAT_VERSION}); "
            f"upgrade EdgeTeach on the device or re-export with a matching trainer"
        )
    task = _require(manifest, "task", str, manifest_path)
    if task not in TASKS:
        raise BundleError(f"{manifest_path}: task {task!r} is unknown; expected one of {', '.join(TASKS)}")
    labels = _require(manifest, "labels", list, manifest_path)
    if len(labels) < 2 or not all(isinstance(label, str) and label for label in labels):
        raise BundleError(f"{manifest_path}: 'labels' must list at least two non-empty names, got {labels!r}")
    labels_path = root / LABELS_NAME
    if labels_path.is_file() and read_labels(labels_path) != labels:
        raise BundleError(f"{labels_path}: labels {read_labels(labels_path)} differ from the manifest's {labels}; the bundle was "
                          "edited by hand — re-export it")
    spec = _require(manifest, "input", dict, manifest_path)
    try:
        input_spec = InputSpec(name=str(spec["name"]), dtype=str(spec["dtype"]), shape=tuple(int(d) for d in spec["shape"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{manifest_path}: 'input' needs name, dtype and shape ({exc})") from exc
    expected_rank = 4 if task == "image" else 2
    if len(input_spec.shape) != expected_rank:
        raise BundleError(f"{manifest_path}: a {task} input has rank {expected_rank}, got shape {list(input_spec.shape)}")
    output = _require(manifest, "output", dict, manifest_path)
    preprocessing = _require(manifest, "preprocessing", dict, manifest_path)
    if task == "audio":
        for key in ("sample_rate", "window_samples", "hop_samples"):
            if not isinstance(preprocessing.get(key), int) or preprocessing[key] <= 0:
                raise BundleError(f"{manifest_path}: audio preprocessing needs a positive integer '{key}', got {preprocessing.get(key)!r}")
    variants = _require(manifest, "variants", dict, manifest_path)
    if "fp32" not in variants:
        raise BundleError(f"{manifest_path}: 'variants' has no fp32 model")
    files = _require(manifest, "files", dict, manifest_path)
    for variant, filename in variants.items():
        # A manifest names files inside its own folder: "../x.onnx" or "/abs/x.onnx" would load (and
        # checksum) a file the bundle does not hold.
        if not isinstance(filename, str) or not filename or Path(filename).is_absolute() or ".." in Path(filename).parts:
            raise BundleError(
                f"{manifest_path}: the {variant} model {filename!r} is not a file inside the bundle folder; "
                f"a manifest names its files relative to the bundle (e.g. model.onnx) — re-export it"
            )
        model_file = root / filename
        if not model_file.resolve().is_relative_to(root.resolve()):  # a symlink out of the bundle
            raise BundleError(
                f"{manifest_path}: the {variant} model {filename!r} resolves outside the bundle folder (a symbolic link?); "
                f"copy the model file itself into the bundle"
            )
        if not model_file.is_file():
            raise BundleError(f"{model_file}: the {variant} model named in the manifest is missing; copy the whole bundle folder")
        if filename not in files or "sha256" not in files[filename]:
            raise BundleError(f"{manifest_path}: no checksum for {filename} under 'files'; re-export the bundle")
        if verify_checksums:
            actual = sha256_file(model_file)
            if actual != files[filename]["sha256"]:
                raise BundleError(
                    f"{model_file}: SHA-256 {actual[:12]}… does not match the manifest's {str(files[filename]['sha256'])[:12]}…; "
                    f"the file is corrupt or was replaced — copy the bundle again"
                )
    return Bundle(
        path=root,
        manifest=manifest,
        task=task,
        labels=tuple(labels),
        input=input_spec,
        output_name=str(output.get("name", "probabilities")),
        preprocessing=preprocessing,
        files=files,
    )


def write_manifest(root: Path, manifest: dict[str, Any]) -> Path:
    """Fills in format fields and checksums of every file the manifest names, then writes it."""
    manifest = dict(manifest)
    manifest["format"] = FORMAT_NAME
    manifest["format_version"] = FORMAT_VERSION
    names = set(manifest.get("variants", {}).values()) | {LABELS_NAME}
    manifest["files"] = {
        name: {"sha256": sha256_file(root / name), "bytes": (root / name).stat().st_size}
        for name in sorted(names)
        if (root / name).is_file()
    }
    path = root / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path
