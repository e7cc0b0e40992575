"""A Teachable Machine export, folder or zip, read into memory with bounds.

Nothing is extracted: a zip's members are read as bytes, so a hostile archive (`../` or absolute names,
links, a zip bomb) can never write anywhere. Names are still checked, and such an archive refused, because it
is not something Teachable Machine makes. The bounds are far above any TM export (a few MB) and far below
what would hurt a workstation.
"""

from __future__ import annotations

import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from trainer.tm.errors import TmImportError

MAX_FILE_BYTES = 64 * 1024 * 1024  # one model file; TM's are 2-6 MB
MAX_TOTAL_BYTES = 256 * 1024 * 1024
MAX_FILES = 2000  # an export with its sample photos beside it
MAX_DEPTH = 4  # TM zips hold one folder (converted_keras/, converted_tflite/); leave room for a user's own
# Only these are read: photos or anything else beside the model are listed but never loaded.
MODEL_SUFFIXES = (".tflite", ".h5", ".json", ".bin", ".txt")


@dataclass(frozen=True)
class ExportFiles:
    """The export's model files by POSIX path relative to its root, and where it came from."""

    origin: Path
    files: dict[str, bytes]

    def names(self, suffix: str = "") -> list[str]:
        return sorted(n for n in self.files if n.lower().endswith(suffix))

    def where(self, name: str) -> str:
        return f"{self.origin}:{name}" if self.origin.is_file() else str(self.origin / name)


def check_member_name(name: str, origin: Path) -> PurePosixPath:
    path = PurePosixPath(name)
    if name.startswith(("/", "\\")) or path.is_absolute() or (len(name) > 1 and name[1] == ":") or ".." in path.parts or "\\" in name:
        raise TmImportError(f"{origin}: the zip holds {name!r}, a path outside the archive's folder; Teachable Machine never "
                            "writes one — this zip is not a Teachable Machine export, do not use it")
    return path


def _wanted(path: PurePosixPath) -> bool:
    return path.suffix.lower() in MODEL_SUFFIXES and len(path.parts) <= MAX_DEPTH and not any(p.startswith(".") for p in path.parts)


def _read_zip(path: Path) -> dict[str, bytes]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise TmImportError(f"{path}: not a readable zip ({exc}); download the export from Teachable Machine again") from exc
    with archive:
        members = archive.infolist()
        if len(members) > MAX_FILES:
            raise TmImportError(f"{path}: {len(members)} entries, more than the {MAX_FILES} an export can hold")
        files: dict[str, bytes] = {}
        total = 0
        for info in members:
            name = check_member_name(info.filename, path)
            if info.is_dir():
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                raise TmImportError(f"{path}: {info.filename!r} is a symbolic link; a Teachable Machine export holds plain files only")
            if not _wanted(name):
                continue
            if info.file_size > MAX_FILE_BYTES or total + info.file_size > MAX_TOTAL_BYTES:
                raise TmImportError(f"{path}: {info.filename} unpacks to {info.file_size} bytes, beyond the {MAX_FILE_BYTES} a model "
                                    "file may have; this is not a Teachable Machine export")
            try:
                with archive.open(info) as member:
                    data = member.read(MAX_FILE_BYTES + 1)  # the header's size can lie; the read cannot
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as exc:
                raise TmImportError(f"{path}: cannot read {info.filename} ({exc}); the zip is damaged — download it again") from exc
            if len(data) > MAX_FILE_BYTES:
                raise TmImportError(f"{path}: {info.filename} is larger than {MAX_FILE_BYTES} bytes; this is not a Teachable "
                                    "Machine export")
            total += len(data)
            files[str(name)] = data
        return files


def _read_folder(root: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    total, seen = 0, 0
    for path in sorted(root.rglob("*")):
        seen += 1
        if seen > MAX_FILES:
            raise TmImportError(f"{root}: more than {MAX_FILES} files under it; point at the export folder itself")
        rel = PurePosixPath(path.relative_to(root).as_posix())
        if path.is_symlink() or not path.is_file() or not _wanted(rel):
            continue
        size = path.stat().st_size
        if size > MAX_FILE_BYTES or total + size > MAX_TOTAL_BYTES:
            raise TmImportError(f"{path}: {size} bytes, beyond the {MAX_FILE_BYTES} a Teachable Machine model file may have")
        files[str(rel)] = path.read_bytes()
        total += size
    return files


def read_export(path: Path) -> ExportFiles:
    """Reads the model files of a TM export folder or zip. Raises TmImportError with the fix."""
    if not path.exists():
        raise TmImportError(f"{path}: no such file or folder; pass the folder or the .zip Teachable Machine downloaded")
    if path.is_dir():
        files = _read_folder(path)
    elif zipfile.is_zipfile(path):
        files = _read_zip(path)
    elif path.suffix.lower() in (".tflite", ".h5") or path.name == "model.json":
        # a single model file: the files beside it (labels.txt, weights.bin, metadata.json), but no other model
        # of its kind (a folder may hold model.tflite beside model_unquant.tflite: the user chose one)
        def wanted(name: str) -> bool:
            return PurePosixPath(name).parent == PurePosixPath(".") and (name == path.name or path.suffix == ".json"
                                                                         or not name.endswith(path.suffix))

        return ExportFiles(origin=path.parent, files={n: d for n, d in _read_folder(path.parent).items() if wanted(n)})
    else:
        raise TmImportError(f"{path}: not a folder, a .zip or a Teachable Machine model file (.tflite, .h5, model.json)")
    return ExportFiles(origin=path, files=files)
