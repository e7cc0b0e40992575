"""A bundle on the wire: its folder packed into a deterministic tar archive (same folder, same SHA-256, so
`trainer fleet ls` can compare models across devices), cut into numbered chunks of at most CHUNK_BYTES, each
published retained on `edgeteach/fleet/bundles/<sha256>/chunks/<n>`; the signed manifest lists every chunk's
SHA-256. On the device, `extract_archive` unpacks only regular files, within a size bound, never outside the
target folder."""

from __future__ import annotations

import hashlib
import io
import math
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from edge.fleet.protocol import CHUNK_BYTES, MAX_CHUNKS, ReleaseManifest

MAX_MEMBERS = 64  # a bundle holds a manifest, labels and a few ONNX files


class ArchiveError(ValueError):
    """A bundle that cannot be packed or an archive that must not be unpacked; the text says why."""


@dataclass(frozen=True)
class PackedBundle:
    data: bytes
    manifest: ReleaseManifest

    def chunk(self, index: int) -> bytes:
        size = self.manifest.chunk_size
        return self.data[index * size:(index + 1) * size]

    @property
    def count(self) -> int:
        return len(self.manifest.chunks)


def pack_folder(folder: Path) -> bytes:
    """The bundle folder's files (not sub-folders: a bundle has none) as an uncompressed tar with fixed owners and
    times, in name order: ONNX weights hardly compress, and the Pi's CPU is better spent classifying."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise ArchiveError(f"{folder}: no files to send; give a bundle folder (manifest.json, labels.txt, model.onnx)")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            info = tarfile.TarInfo(path.name)
            info.size = path.stat().st_size
            info.mode = 0o644
            info.mtime = 0
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    return buffer.getvalue()


def release_manifest(data: bytes, name: str, version: str, chunk_size: int = CHUNK_BYTES, created: int | None = None) -> ReleaseManifest:
    count = math.ceil(len(data) / chunk_size)
    if count > MAX_CHUNKS:
        raise ArchiveError(f"the bundle is {len(data)} bytes: more than {MAX_CHUNKS} chunks of {chunk_size} bytes "
                           f"({MAX_CHUNKS * chunk_size // (1024 * 1024)} MiB); use the int8 variant or a smaller backbone")
    return ReleaseManifest(
        name=name, version=version, sha256=hashlib.sha256(data).hexdigest(), size=len(data), chunk_size=chunk_size,
        chunks=[hashlib.sha256(data[i * chunk_size:(i + 1) * chunk_size]).hexdigest() for i in range(count)],
        created=int(time.time()) if created is None else created,
    )


def pack_bundle(folder: Path, name: str | None = None, version: str | None = None, chunk_size: int = CHUNK_BYTES) -> PackedBundle:
    data = pack_folder(folder)
    return PackedBundle(data, release_manifest(data, name or folder.name, version or time.strftime("%Y%m%d-%H%M%S"), chunk_size))


def with_http(packed: PackedBundle, url: str) -> PackedBundle:
    """The same bundle, its manifest naming where the controller serves it over HTTP (signed with the rest)."""
    return PackedBundle(packed.data, ReleaseManifest.model_validate({**packed.manifest.model_dump(), "http_url": url}))


def extract_archive(archive: Path, target: Path, max_bytes: int) -> None:
    """Unpacks `archive` into the empty folder `target`: regular files at the top level only, `max_bytes` in all
    (a small archive must not claim gigabytes), names without path separators. Raises ArchiveError."""
    target.mkdir(parents=True, exist_ok=True)
    total = 0
    try:
        with tarfile.open(archive, mode="r:") as tar:
            members = tar.getmembers()
            if len(members) > MAX_MEMBERS:
                raise ArchiveError(f"the archive holds {len(members)} entries; a bundle has a few files")
            for member in members:
                if not member.isreg() or "/" in member.name or "\\" in member.name or member.name in ("", ".", ".."):
                    raise ArchiveError(f"the archive holds {member.name!r}, which is not a plain file of a bundle")
                total += member.size
                if total > max_bytes:
                    raise ArchiveError(f"the archive unpacks to more than {max_bytes} bytes (fleet.max_bundle_bytes)")
            for member in members:
                source = tar.extractfile(member)
                if source is None:
                    raise ArchiveError(f"cannot read {member.name!r} from the archive")
                with source, (target / member.name).open("wb") as out:
                    while block := source.read(1 << 20):
                        out.write(block)
    except tarfile.TarError as exc:
        raise ArchiveError(f"not a bundle archive ({exc})") from None
