"""A Teachable Machine project file (`project.tm`, what *Save project to file* downloads) as a data set.

It is a zip of `<Class>-!-<n>.jpg` samples (224 x 224, already cropped by TM) plus `manifest.json` (type,
version, training settings). `trainer train project.tm` unpacks the samples into class folders in a temporary
folder and trains on those, so a class can take its Teachable Machine samples to our trainer. Classes keep TM's
order (the order of the samples in the file, which is the order of the classes on TM's page).
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from trainer.tm.errors import TmImportError
from trainer.tm.export_reader import check_member_name

PROJECT_SUFFIX = ".tm"
SAMPLE = re.compile(r"^(?P<label>.+)-!-(?P<index>\d+)\.(?P<ext>jpe?g|png)$", re.IGNORECASE)
MAX_SAMPLES = 20000
MAX_SAMPLE_BYTES = 16 * 1024 * 1024
MAX_TOTAL_BYTES = 2 * 1024 * 1024 * 1024


@dataclass(frozen=True)
class TmProject:
    path: Path
    kind: str  # "image" (audio projects are refused)
    classes: list[str]  # in TM's order
    samples: dict[str, list[str]]  # class -> member names, by sample number


def is_project(path: Path) -> bool:
    return path.suffix.lower() == PROJECT_SUFFIX and path.is_file()


def read_project(path: Path) -> TmProject:
    """Lists a project's classes and samples (nothing is unpacked). Raises TmImportError with the fix."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise TmImportError(f"{path}: not a readable Teachable Machine project ({exc}); save it from Teachable Machine again "
                            "(the menu: Save project to file)") from exc
    with archive:
        members = archive.infolist()
        if len(members) > MAX_SAMPLES + 10:
            raise TmImportError(f"{path}: {len(members)} entries, more than the {MAX_SAMPLES} samples a project may have here")
        names = [info.filename for info in members]
        for name in names:
            check_member_name(name, path)
        try:
            manifest = json.loads(archive.read("manifest.json")) if "manifest.json" in names else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise TmImportError(f"{path}: manifest.json is not valid JSON ({exc})") from exc
        kind = str(manifest.get("type", "image")) if isinstance(manifest, dict) else "image"
        if kind != "image":
            raise TmImportError(f"{path}: a Teachable Machine {kind} project; `trainer train` reads image projects (for sounds, "
                                "record WAV files into class folders: docs/audio.md)")
        total = sum(info.file_size for info in members)
        if total > MAX_TOTAL_BYTES or any(info.file_size > MAX_SAMPLE_BYTES for info in members):
            raise TmImportError(f"{path}: unpacks to more than a Teachable Machine project can hold; this is not one")
        samples: dict[str, list[tuple[int, str]]] = {}
        for name in names:
            match = SAMPLE.match(name) if "/" not in name else None
            if match:
                samples.setdefault(match["label"], []).append((int(match["index"]), name))
    if len(samples) < 2:
        raise TmImportError(f"{path}: {len(samples)} class(es) of `<Class>-!-<n>.jpg` samples; a project to train from needs at least "
                            "two — is this a Teachable Machine image project?")
    return TmProject(path=path, kind=kind, classes=list(samples),
                     samples={label: [n for _, n in sorted(items)] for label, items in samples.items()})


def folder_name(label: str) -> str:
    """A class name as a folder name: the data set takes its labels from the folders, so keep it as it is
    unless the file system cannot hold it."""
    if label in (".", "..") or any(c in label for c in "/\\\0") or any(ord(c) < 32 for c in label):
        raise TmImportError(f"class {label!r} cannot be a folder name; rename the class in Teachable Machine and save the project again")
    return label


@contextlib.contextmanager
def project_dataset(path: Path) -> Iterator[Path]:
    """The project's samples unpacked as `<tmp>/<class>/<n>.jpg` for the duration of a training run."""
    project = read_project(path)
    with tempfile.TemporaryDirectory(prefix="edgeteach-tm-project-") as tmp, zipfile.ZipFile(path) as archive:
        root = Path(tmp) / "data"
        for label in project.classes:
            folder = root / folder_name(label)
            folder.mkdir(parents=True)
            for name in project.samples[label]:
                with archive.open(name) as member:
                    data = member.read(MAX_SAMPLE_BYTES + 1)
                if len(data) > MAX_SAMPLE_BYTES:
                    raise TmImportError(f"{path}: {name} is larger than {MAX_SAMPLE_BYTES} bytes; this is not a Teachable Machine sample")
                (folder / PurePosixPath(name).name.split("-!-")[-1]).write_bytes(data)
        yield root
