"""Ed25519 signatures over the release manifest (edge.fleet.protocol): `trainer fleet keygen` writes a key pair
as PEM files, the controller signs with the private key, each device checks with the public keys its config
lists. The key id (16 hex digits of the SHA-256 of the raw public key) only picks the key to try; the
signature decides. The `cryptography` package does the mathematics."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.fleet.protocol import Desired

MAX_KEY_FILE_BYTES = 16 * 1024


class SigningError(ValueError):
    """A key that cannot be read or a signature that does not hold; the text says which and why."""


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_keypair(directory: Path, name: str = "fleet") -> tuple[Path, Path]:
    """Writes <name>.key (private, PEM PKCS#8, readable by its owner only) and <name>.pub (PEM); refuses to
    overwrite either (a lost private key means re-keying every device)."""
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / f"{name}.key", directory / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise SigningError(f"{path} exists; pick another --name or folder (overwriting a key would lock the devices out)")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public_path.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path


def _read_key_file(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_KEY_FILE_BYTES:
            raise SigningError(f"{path}: {path.stat().st_size} bytes is not a key file")
        return path.read_bytes()
    except OSError as exc:
        raise SigningError(f"cannot read the key file {path} ({exc.strerror or exc})") from None


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(_read_key_file(path), password=None)
    except (ValueError, TypeError) as exc:
        raise SigningError(f"{path} is not an unencrypted PEM private key ({exc}); make one with `trainer fleet keygen`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{path} holds a {type(key).__name__}, not an Ed25519 key; make one with `trainer fleet keygen`")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(_read_key_file(path))
    except (ValueError, TypeError) as exc:
        raise SigningError(f"{path} is not a PEM public key ({exc}); copy the .pub file `trainer fleet keygen` wrote") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
    return key


@dataclass(frozen=True)
class Keyring:
    """The public keys a device trusts, by key id."""

    keys: dict[str, Ed25519PublicKey]

    @classmethod
    def from_files(cls, paths: list[str] | list[Path]) -> Keyring:
        keys = [load_public_key(Path(path)) for path in paths]
        return cls({key_id(key): key for key in keys})

    def verify(self, desired: Desired) -> None:
        """Returns when `desired` is signed by one of the keys; raises SigningError saying why not."""
        key = self.keys.get(desired.key_id)
        if key is None:
            raise SigningError(f"signed with key {desired.key_id}, which is not in fleet.public_keys "
                               f"(this device trusts {', '.join(sorted(self.keys)) or 'no key'})")
        try:
            signature = base64.b64decode(desired.signature, validate=True)
        except (binascii.Error, ValueError):
            raise SigningError("the signature is not base64") from None
        try:
            key.verify(signature, desired.signed_bytes())
        except InvalidSignature:
            raise SigningError(f"bad signature: the manifest was not signed by key {desired.key_id} or was changed after signing") from None


def sign(private: Ed25519PrivateKey, body: bytes) -> tuple[str, str]:
    """(key id, base64 signature) of `body` (a manifest's canonical bytes)."""
    return key_id(private.public_key()), base64.b64encode(private.sign(body)).decode("ascii")
