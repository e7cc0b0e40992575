"""The device's downloaded models: `models_dir/<sha256>/` per bundle, holding `chunks/<n>` while it downloads
(each chunk checked against the signed manifest before it is kept, written whole or not at all, so a download
cut by a reboot or a dropped link resumes where it stopped), then `bundle/` once the archive checked out.
Disk use is bounded (fleet.max_disk_bytes): older models are pruned, never the ones the caller keeps (the
active and previous). `fleet-state.json` remembers the active model across restarts. Only folders named by
a SHA-256 are ever removed: models_dir may hold the owner's own bundles too."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from collections.abc import Collection
from pathlib import Path

from pydantic import ValidationError

from edge.fleet.chunks import ArchiveError, extract_archive
from edge.fleet.protocol import FleetState, ReleaseManifest, to_bytes

log = logging.getLogger(__name__)

STATE_FILE = "fleet-state.json"
SHA_DIR = re.compile(r"^[0-9a-f]{64}$")


class StoreError(ValueError):
    """A download that cannot be stored or a bundle that did not check out; the text says why."""


def _tree_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:
                pass
    return total


class ModelStore:
    def __init__(self, models_dir: Path, max_disk_bytes: int) -> None:
        self.root = Path(models_dir)
        self.max_disk_bytes = max_disk_bytes

    # -- layout ------------------------------------------------------------------------------------

    def folder(self, sha256: str) -> Path:
        if not SHA_DIR.match(sha256):
            raise StoreError(f"{sha256!r} is not a SHA-256")
        return self.root / sha256

    def bundle_dir(self, sha256: str) -> Path:
        return self.folder(sha256) / "bundle"

    def ready(self, sha256: str) -> Path | None:
        """The unpacked bundle of `sha256` when it is complete on disk."""
        path = self.bundle_dir(sha256)
        return path if (path / "manifest.json").is_file() else None

    def _chunk_path(self, manifest: ReleaseManifest, index: int) -> Path:
        return self.folder(manifest.sha256) / "chunks" / str(index)

    # -- downloading -------------------------------------------------------------------------------

    def missing(self, manifest: ReleaseManifest) -> list[int]:
        """The chunk numbers not yet on disk, in order."""
        out = []
        for index in range(len(manifest.chunks)):
            path = self._chunk_path(manifest, index)
            expected = min(manifest.chunk_size, manifest.size - index * manifest.chunk_size)
            try:
                if path.stat().st_size == expected:
                    continue
            except OSError:
                pass
            out.append(index)
        return out

    def write_chunk(self, manifest: ReleaseManifest, index: int, data: bytes) -> None:
        """Keeps chunk `index` when its SHA-256 is the manifest's; raises StoreError otherwise."""
        if not 0 <= index < len(manifest.chunks):
            raise StoreError(f"chunk {index} is not part of a {len(manifest.chunks)}-chunk bundle")
        if hashlib.sha256(data).hexdigest() != manifest.chunks[index]:
            raise StoreError(f"chunk {index} does not match the signed manifest (damaged or forged); it is fetched again")
        path = self._chunk_path(manifest, index)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{index}.part")
        partial.write_bytes(data)
        os.replace(partial, path)  # whole or not at all: a reboot mid-write leaves no short chunk

    def unpack(self, manifest: ReleaseManifest, max_bytes: int) -> Path:
        """Joins the chunks, checks the archive's SHA-256 against the manifest, unpacks it into bundle/ and drops
        the chunks. Raises StoreError (and forgets the chunks when the archive is wrong, so it is fetched anew)."""
        done = self.ready(manifest.sha256)
        if done is not None:
            return done
        folder = self.folder(manifest.sha256)
        archive = folder / "bundle.tar"
        digest = hashlib.sha256()
        with archive.open("wb") as out:
            for index in range(len(manifest.chunks)):
                data = self._chunk_path(manifest, index).read_bytes()
                digest.update(data)
                out.write(data)
        if digest.hexdigest() != manifest.sha256:
            shutil.rmtree(folder, ignore_errors=True)
            raise StoreError(f"the joined archive's SHA-256 is {digest.hexdigest()[:12]}..., the manifest says {manifest.sha256[:12]}...")
        staging = folder / ".bundle.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            extract_archive(archive, staging, max_bytes)
        except ArchiveError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise StoreError(str(exc)) from None
        os.replace(staging, folder / "bundle")
        archive.unlink(missing_ok=True)
        shutil.rmtree(folder / "chunks", ignore_errors=True)
        return folder / "bundle"

    def discard(self, sha256: str) -> None:
        shutil.rmtree(self.folder(sha256), ignore_errors=True)

    # -- disk use ----------------------------------------------------------------------------------

    def stored(self) -> dict[str, int]:
        """sha256 -> bytes on disk, for every downloaded (or downloading) model."""
        if not self.root.is_dir():
            return {}
        return {p.name: _tree_bytes(p) for p in self.root.iterdir() if p.is_dir() and SHA_DIR.match(p.name)}

    def prune(self, keep: Collection[str | None]) -> list[str]:
        """Removes every stored model but those in `keep`; returns the ones removed."""
        removed = []
        for sha in sorted(self.stored()):
            if sha not in keep:
                shutil.rmtree(self.root / sha, ignore_errors=True)
                removed.append(sha)
        if removed:
            log.info("fleet: pruned %d old model(s): %s", len(removed), ", ".join(s[:12] for s in removed))
        return removed

    def make_room(self, manifest: ReleaseManifest, keep: Collection[str | None]) -> None:
        """Makes sure the download fits in max_disk_bytes (chunks and archive, then archive and unpacked files: twice
        its size at the peak), pruning what is not kept; raises StoreError when even that is not enough."""
        need = 2 * manifest.size
        used = sum(size for sha, size in self.stored().items() if sha != manifest.sha256)
        if used + need > self.max_disk_bytes:
            self.prune({*keep, manifest.sha256})
            used = sum(size for sha, size in self.stored().items() if sha != manifest.sha256)
        if used + need > self.max_disk_bytes:
            raise StoreError(f"no room: a {manifest.size}-byte bundle needs {need} bytes while downloading, the kept models take "
                             f"{used} of fleet.max_disk_bytes ({self.max_disk_bytes})")

    # -- what runs ---------------------------------------------------------------------------------

    def load_state(self) -> FleetState:
        path = self.root / STATE_FILE
        try:
            return FleetState.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return FleetState()
        except (OSError, ValidationError) as exc:
            log.error("fleet: %s is unreadable (%s); starting from the config's model", path, exc.__class__.__name__)
            return FleetState()

    def save_state(self, state: FleetState) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / STATE_FILE
        partial = path.with_name(f".{STATE_FILE}.part")
        partial.write_bytes(to_bytes(state))
        os.replace(partial, path)
