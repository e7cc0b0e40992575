"""The fleet protocol: topic names, the payloads (pydantic, so every message from the network is bounded and
validated before anything acts on it) and the device's state machine. docs/fleet.md is the reference.

Shaped after Eclipse Kura's deployment requests (a job, progress notifications) and AWS IoT Jobs (rollout
waves, abort threshold): the controller publishes a retained desired state, the device converges on it and
reports; a device that was away converges when it comes back because the desired state is retained."""

from __future__ import annotations

import json
import math
import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

ROOT = "edgeteach"
GROUPS_ROOT = f"{ROOT}/groups"
BUNDLES_ROOT = f"{ROOT}/fleet/bundles"

# A chunk fits well inside the packet a device accepts by default (mqtt.max_payload_bytes 64 KiB + 64 KiB of
# headroom); the signed manifest lists every chunk's SHA-256 (67 bytes each in JSON), so MAX_CHUNKS keeps the
# desired-state message under DESIRED_MAX_BYTES: 768 x 48 KiB = 36 MiB per bundle.
CHUNK_BYTES = 48 * 1024
MAX_CHUNKS = 768
DESIRED_MAX_BYTES = 64 * 1024
RELEASE_FORMAT: Literal["edgeteach-release"] = "edgeteach-release"

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
JobId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
KeyId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
Label = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")]

Status = Literal["idle", "accepted", "downloading", "verifying", "activated", "healthy", "failed", "rolled_back"]
TERMINAL: frozenset[str] = frozenset({"healthy", "failed", "rolled_back"})
SUCCESS = "healthy"

# The device's state machine (docs/fleet.md draws it). A new job may supersede any state ("accepted"); a job
# whose model is already the active one goes straight from accepted to healthy.
TRANSITIONS: dict[str, frozenset[str]] = {
    "idle": frozenset({"accepted"}),
    "accepted": frozenset({"accepted", "downloading", "verifying", "activated", "healthy", "failed"}),
    "downloading": frozenset({"accepted", "downloading", "verifying", "failed"}),
    "verifying": frozenset({"accepted", "activated", "failed"}),
    "activated": frozenset({"healthy", "rolled_back", "failed"}),
    "healthy": frozenset({"accepted"}),
    "failed": frozenset({"accepted"}),
    "rolled_back": frozenset({"accepted"}),
}


class IllegalTransition(ValueError):
    """A bug in the agent: a state the machine does not allow after the current one."""


def advance(current: str, new: str) -> str:
    """`new` when the state machine allows it after `current`; raises IllegalTransition otherwise."""
    if new not in TRANSITIONS.get(current, frozenset()):
        raise IllegalTransition(f"fleet state {current!r} cannot go to {new!r}")
    return new


# -- topics ----------------------------------------------------------------------------------------

def desired_topic(prefix: str) -> str:
    """A device's own desired model (retained): beats its group's."""
    return f"{prefix.rstrip('/')}/model/desired"


def progress_topic(prefix: str) -> str:
    return f"{prefix.rstrip('/')}/model/progress"


def state_topic(prefix: str) -> str:
    """Retained: the active and previous model, the last job and how it ended."""
    return f"{prefix.rstrip('/')}/model/state"


def group_desired_topic(group: str) -> str:
    return f"{GROUPS_ROOT}/{group}/model/desired"


def chunk_topic(sha256: str, index: int) -> str:
    return f"{BUNDLES_ROOT}/{sha256}/chunks/{index}"


def chunk_index(topic: str, sha256: str) -> int | None:
    """The chunk number of `topic` when it is a chunk of bundle `sha256`, else None."""
    head = f"{BUNDLES_ROOT}/{sha256}/chunks/"
    if not topic.startswith(head):
        return None
    tail = topic[len(head):]
    return int(tail) if tail.isdigit() and len(tail) <= 6 else None


def device_of(topic: str, leaf: str) -> str | None:
    """The device id of `edgeteach/<id>/<leaf>` (the default prefixes), else None."""
    parts = topic.split("/")
    want = leaf.split("/")
    if len(parts) != 2 + len(want) or parts[0] != ROOT or parts[2:] != want or parts[1] in ("groups", "fleet"):
        return None
    return parts[1]


# -- payloads --------------------------------------------------------------------------------------

class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReleaseManifest(_Frozen):
    """What the controller signs: the bundle archive's identity, size and every chunk's SHA-256."""

    format: Literal["edgeteach-release"] = RELEASE_FORMAT
    name: Label
    version: Label
    sha256: Sha256
    size: int = Field(ge=1)
    chunk_size: int = Field(ge=1024, le=CHUNK_BYTES)
    chunks: list[Sha256] = Field(max_length=MAX_CHUNKS)
    created: int = Field(ge=0)
    # Where the controller also serves the archive over HTTP (faster than MQTT for big bundles); signed with the rest,
    # so nobody can point the devices elsewhere. The chunks' SHA-256 check what comes from either.
    http_url: str | None = Field(None, max_length=2048, pattern=r"^https?://[^\s]+$")

    @model_validator(mode="after")
    def _chunk_count(self) -> ReleaseManifest:
        expected = math.ceil(self.size / self.chunk_size)
        if len(self.chunks) != expected:
            raise ValueError(f"{self.size} bytes in chunks of {self.chunk_size} make {expected} chunks, "
                             f"the manifest lists {len(self.chunks)}")
        return self

    def canonical(self) -> bytes:
        """The exact bytes that are signed: sorted keys, no spaces, UTF-8 (same on both sides whatever the JSON
        library's layout)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class RollbackOrder(_Frozen):
    """What the controller signs to send devices back to their previous model."""

    action: Literal["rollback"] = "rollback"
    job_id: JobId
    created: int = Field(ge=0)

    def canonical(self) -> bytes:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode("utf-8")


class Desired(_Frozen):
    """`<prefix>/model/desired` and `edgeteach/groups/<group>/model/desired` (retained)."""

    job_id: JobId
    action: Literal["deploy", "rollback"] = "deploy"
    manifest: ReleaseManifest | None = None
    rollback: RollbackOrder | None = None
    key_id: KeyId
    signature: str = Field(min_length=1, max_length=128)  # base64 of 64 bytes

    @model_validator(mode="after")
    def _one_body(self) -> Desired:
        if self.action == "deploy" and (self.manifest is None or self.rollback is not None):
            raise ValueError("a deploy carries a manifest and no rollback order")
        if self.action == "rollback" and (self.rollback is None or self.manifest is not None or self.rollback.job_id != self.job_id):
            raise ValueError("a rollback carries its own signed order (same job_id) and no manifest")
        return self

    def signed_bytes(self) -> bytes:
        body = self.manifest if self.manifest is not None else self.rollback
        assert body is not None  # _one_body
        return body.canonical()

    @property
    def sha256(self) -> str | None:
        return self.manifest.sha256 if self.manifest is not None else None


class ModelRef(_Frozen):
    """A model the device ran or runs: a fleet bundle (sha256 of its archive) or the config's own bundle."""

    sha256: Sha256 | None = None  # None: the bundle named in the config file
    name: str = Field(max_length=256)
    version: str = Field("", max_length=128)
    bundle: str = Field(max_length=4096)  # its folder on the device
    job_id: str | None = Field(None, max_length=64)


class Progress(_Frozen):
    """`<prefix>/model/progress` (QoS 1, not retained): every step of a job."""

    job_id: str = Field(max_length=64)
    sha256: str | None = Field(None, max_length=64)
    status: Status
    percent: float | None = Field(None, ge=0, le=100)
    reason: str = Field("", max_length=1000)
    resumed_chunks: int | None = Field(None, ge=0)
    ts: float = Field(default_factory=lambda: round(time.time(), 3))


class FleetState(_Frozen):
    """`<prefix>/model/state` (retained), also persisted in models_dir so a restart keeps the active model."""

    active: ModelRef | None = None
    previous: ModelRef | None = None
    status: Status = "idle"
    job_id: str | None = Field(None, max_length=64)
    reason: str = Field("", max_length=1000)
    group: str | None = Field(None, max_length=64)
    ts: float = Field(default_factory=lambda: round(time.time(), 3))


class ProtocolError(ValueError):
    """A message that is not what the protocol says; the text says what was wrong."""


def parse_desired(payload: bytes) -> Desired | None:
    """The desired state in `payload`; None for an empty (cleared) one; raises ProtocolError saying what is wrong."""
    if not payload:
        return None
    if len(payload) > DESIRED_MAX_BYTES:
        raise ProtocolError(f"desired state of {len(payload)} bytes is over the {DESIRED_MAX_BYTES}-byte limit")
    try:
        return Desired.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "payload"
        raise ProtocolError(f"desired state refused: {where}: {first['msg']} ({exc.error_count()} problem(s))") from None


def to_bytes(model: BaseModel) -> bytes:
    return model.model_dump_json(exclude_none=False).encode("utf-8")
