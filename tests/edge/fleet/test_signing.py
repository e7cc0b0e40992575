"""Ed25519 over the release manifest, with real keys written by `generate_keypair`: a signed manifest passes,
anything changed after signing, another key, or no trusted key is refused."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from edge.fleet.chunks import release_manifest
from edge.fleet.protocol import Desired, RollbackOrder
from edge.fleet.signing import Keyring, SigningError, generate_keypair, load_private_key, load_public_key, sign


def _signed(private_path: Path, data: bytes = b"bundle" * 1000) -> Desired:
    manifest = release_manifest(data, "m", "1", chunk_size=1024, created=5)
    key, signature = sign(load_private_key(private_path), manifest.canonical())
    return Desired(job_id="j", manifest=manifest, key_id=key, signature=signature)


def test_keygen_writes_a_private_key_for_its_owner_only_and_refuses_to_overwrite(tmp_path: Path) -> None:
    private, public = generate_keypair(tmp_path, "teacher")
    assert oct(os.stat(private).st_mode & 0o777) == "0o600"
    load_public_key(public)
    with pytest.raises(SigningError, match="exists"):
        generate_keypair(tmp_path, "teacher")


def test_a_signed_manifest_verifies(tmp_path: Path) -> None:
    private, public = generate_keypair(tmp_path)
    Keyring.from_files([public]).verify(_signed(private))


def test_a_manifest_changed_after_signing_is_refused(tmp_path: Path) -> None:
    private, public = generate_keypair(tmp_path)
    good = _signed(private)
    other = release_manifest(b"evil" * 1500, "m", "1", chunk_size=1024, created=5)
    forged = good.model_copy(update={"manifest": other})
    with pytest.raises(SigningError, match="bad signature"):
        Keyring.from_files([public]).verify(forged)


def test_another_key_and_an_untrusted_key_id_are_refused(tmp_path: Path) -> None:
    private, public = generate_keypair(tmp_path, "a")
    intruder, _ = generate_keypair(tmp_path, "b")
    signed = _signed(intruder)
    with pytest.raises(SigningError, match="not in fleet.public_keys"):
        Keyring.from_files([public]).verify(signed)
    relabelled = signed.model_copy(update={"key_id": _signed(private).key_id})  # claims the trusted key's id
    with pytest.raises(SigningError, match="bad signature"):
        Keyring.from_files([public]).verify(relabelled)


def test_a_garbled_signature_is_refused(tmp_path: Path) -> None:
    private, public = generate_keypair(tmp_path)
    signed = _signed(private)
    with pytest.raises(SigningError, match="not base64"):
        Keyring.from_files([public]).verify(signed.model_copy(update={"signature": "***"}))
    zeros = base64.b64encode(bytes(64)).decode()
    with pytest.raises(SigningError, match="bad signature"):
        Keyring.from_files([public]).verify(signed.model_copy(update={"signature": zeros}))


def test_a_rollback_order_is_signed_like_a_manifest(tmp_path: Path) -> None:
    private, public = generate_keypair(tmp_path)
    order = RollbackOrder(job_id="r1", created=3)
    key, signature = sign(load_private_key(private), order.canonical())
    desired = Desired(job_id="r1", action="rollback", rollback=order, key_id=key, signature=signature)
    Keyring.from_files([public]).verify(desired)
    with pytest.raises(SigningError):
        Keyring.from_files([public]).verify(desired.model_copy(update={"rollback": RollbackOrder(job_id="r1", created=4)}))


def test_a_file_that_is_not_a_key_is_refused_with_its_name(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pub"
    junk.write_text("hello")
    with pytest.raises(SigningError, match="junk.pub"):
        Keyring.from_files([junk])
    with pytest.raises(SigningError, match="cannot read"):
        Keyring.from_files([tmp_path / "missing.pub"])
