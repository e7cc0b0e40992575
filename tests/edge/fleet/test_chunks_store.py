"""A bundle packed, cut into chunks, stored chunk by chunk (resumable), joined, checked and unpacked; disk use
bounded by pruning, never the kept models; archives that try to escape or balloon are refused."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from edge.core.bundle import load_bundle
from edge.fleet.chunks import ArchiveError, extract_archive, pack_bundle, pack_folder, release_manifest
from edge.fleet.protocol import FleetState, ModelRef
from edge.fleet.store import ModelStore, StoreError
from tests.support.onnx_models import make_color_bundle


@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    return make_color_bundle(tmp_path / "colors")


def test_packing_is_deterministic_and_chunks_cover_the_archive(bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy, copy_function=shutil.copyfile)  # same bytes, new times and owner
    for path in copy.iterdir():
        os.utime(path, (1_000_000, 1_000_000))
    first, second = pack_bundle(bundle, chunk_size=1024), pack_bundle(copy, chunk_size=1024)
    assert first.data == second.data and first.manifest.sha256 == hashlib.sha256(first.data).hexdigest()
    assert b"".join(first.chunk(i) for i in range(first.count)) == first.data
    assert all(len(first.chunk(i)) == 1024 for i in range(first.count - 1))
    assert [hashlib.sha256(first.chunk(i)).hexdigest() for i in range(first.count)] == first.manifest.chunks


def test_a_download_resumes_from_the_chunks_on_disk_and_unpacks_a_loadable_bundle(tmp_path: Path, bundle: Path) -> None:
    packed = pack_bundle(bundle, chunk_size=1024)
    store = ModelStore(tmp_path / "models", 10 * 1024 * 1024)
    half = packed.count // 2
    for i in range(half):
        store.write_chunk(packed.manifest, i, packed.chunk(i))
    restarted = ModelStore(tmp_path / "models", 10 * 1024 * 1024)  # a reboot: a new store on the same folder
    assert restarted.missing(packed.manifest) == list(range(half, packed.count))
    for i in restarted.missing(packed.manifest):
        restarted.write_chunk(packed.manifest, i, packed.chunk(i))
    folder = restarted.unpack(packed.manifest, 10 * 1024 * 1024)
    assert load_bundle(folder).labels == ("red", "green", "blue")
    assert restarted.ready(packed.manifest.sha256) == folder and not (folder.parent / "chunks").exists()


def test_a_chunk_that_does_not_match_the_manifest_is_not_kept(tmp_path: Path, bundle: Path) -> None:
    packed = pack_bundle(bundle, chunk_size=1024)
    store = ModelStore(tmp_path, 10 * 1024 * 1024)
    with pytest.raises(StoreError, match="does not match"):
        store.write_chunk(packed.manifest, 0, b"x" + packed.chunk(0)[1:])
    assert 0 in store.missing(packed.manifest)
    truncated = store.folder(packed.manifest.sha256) / "chunks" / "1"
    truncated.parent.mkdir(parents=True, exist_ok=True)
    truncated.write_bytes(packed.chunk(1)[:10])  # a short file (copied by hand, a full disk): fetched again
    assert 1 in store.missing(packed.manifest)


def test_an_archive_damaged_on_disk_is_refused_and_fetched_anew(tmp_path: Path, bundle: Path) -> None:
    packed = pack_bundle(bundle, chunk_size=1024)
    store = ModelStore(tmp_path, 10 * 1024 * 1024)
    for i in range(packed.count):
        store.write_chunk(packed.manifest, i, packed.chunk(i))
    rotten = store.folder(packed.manifest.sha256) / "chunks" / "0"
    rotten.write_bytes(b"\0" + rotten.read_bytes()[1:])  # the SD card changed a byte after it was checked
    with pytest.raises(StoreError, match="SHA-256"):
        store.unpack(packed.manifest, 10 * 1024 * 1024)
    assert store.ready(packed.manifest.sha256) is None and store.missing(packed.manifest) == list(range(packed.count))


def test_pruning_keeps_the_active_and_previous_and_never_touches_other_folders(tmp_path: Path, bundle: Path) -> None:
    store = ModelStore(tmp_path, 64 * 1024)
    shas = []
    for n in range(4):
        data = pack_folder(bundle) + bytes([n]) * 2000
        manifest = release_manifest(data, f"m{n}", "1", chunk_size=1024)
        for i in range(len(manifest.chunks)):
            store.write_chunk(manifest, i, data[i * 1024:(i + 1) * 1024])
        shas.append(manifest.sha256)
    (tmp_path / "my-own-bundle").mkdir()
    removed = store.prune({shas[1], shas[3]})
    assert sorted(removed) == sorted([shas[0], shas[2]])
    assert set(store.stored()) == {shas[1], shas[3]} and (tmp_path / "my-own-bundle").is_dir()


def test_make_room_prunes_first_and_refuses_what_cannot_fit(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, 20 * 1024)
    old = release_manifest(b"o" * 6000, "old", "1", chunk_size=1024)
    for i in range(len(old.chunks)):
        store.write_chunk(old, i, b"o" * min(1024, 6000 - i * 1024))
    new = release_manifest(b"n" * 8000, "new", "1", chunk_size=1024)
    store.make_room(new, keep={None})  # 6000 + 2 x 8000 > 20 KiB: the old one goes
    assert store.stored() == {}
    for i in range(len(old.chunks)):
        store.write_chunk(old, i, b"o" * min(1024, 6000 - i * 1024))
    with pytest.raises(StoreError, match="no room"):
        store.make_room(new, keep={old.sha256})
    assert old.sha256 in store.stored()


def test_the_state_survives_a_restart_and_a_damaged_file_falls_back(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, 1 << 20)
    state = FleetState(active=ModelRef(sha256="a" * 64, name="m", bundle="/x"), status="healthy", job_id="j")
    store.save_state(state)
    assert ModelStore(tmp_path, 1 << 20).load_state().active == state.active
    (tmp_path / "fleet-state.json").write_text("{")
    assert ModelStore(tmp_path, 1 << 20).load_state().active is None


def _tar(members: list[tarfile.TarInfo], data: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


@pytest.mark.parametrize("member", [
    tarfile.TarInfo("../escape"), tarfile.TarInfo("sub/file"), tarfile.TarInfo("/abs"),
])
def test_archives_with_paths_are_refused(tmp_path: Path, member: tarfile.TarInfo) -> None:
    member.size = 3
    (tmp_path / "a.tar").write_bytes(_tar([member], b"abc"))
    with pytest.raises(ArchiveError, match="not a plain file"):
        extract_archive(tmp_path / "a.tar", tmp_path / "out", 1 << 20)
    assert not (tmp_path / "escape").exists()


def test_links_and_oversized_archives_are_refused(tmp_path: Path) -> None:
    link = tarfile.TarInfo("model.onnx")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    (tmp_path / "l.tar").write_bytes(_tar([link]))
    with pytest.raises(ArchiveError, match="not a plain file"):
        extract_archive(tmp_path / "l.tar", tmp_path / "out", 1 << 20)
    big = tarfile.TarInfo("model.onnx")
    big.size = 5000
    (tmp_path / "b.tar").write_bytes(_tar([big], b"z" * 5000))
    with pytest.raises(ArchiveError, match="more than 4000 bytes"):
        extract_archive(tmp_path / "b.tar", tmp_path / "out2", 4000)
