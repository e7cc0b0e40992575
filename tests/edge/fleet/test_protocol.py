"""The fleet's payloads and state machine: what a device accepts from the network, and in which order its
job may move."""

from __future__ import annotations

import json

import pytest

from edge.fleet.chunks import release_manifest
from edge.fleet.protocol import (
    DESIRED_MAX_BYTES,
    TRANSITIONS,
    IllegalTransition,
    ProtocolError,
    advance,
    chunk_index,
    chunk_topic,
    device_of,
    parse_desired,
)


def _desired(**changes: object) -> dict[str, object]:
    manifest = release_manifest(b"x" * 5000, "m", "1", chunk_size=1024, created=1).model_dump(mode="json")
    return {"job_id": "j1", "manifest": manifest, "key_id": "0" * 16, "signature": "AAAA", **changes}


def test_a_job_runs_forward_and_a_new_one_may_supersede_it() -> None:
    state = "idle"
    for step in ("accepted", "downloading", "downloading", "verifying", "activated", "healthy", "accepted", "failed", "accepted"):
        state = advance(state, step)
    assert state == "accepted"
    assert advance("downloading", "accepted") == "accepted"


@pytest.mark.parametrize(("current", "new"), [("idle", "activated"), ("downloading", "activated"), ("healthy", "rolled_back"),
                                             ("failed", "healthy"), ("idle", "downloading"), ("verifying", "healthy")])
def test_skipping_a_step_is_refused(current: str, new: str) -> None:
    with pytest.raises(IllegalTransition):
        advance(current, new)


def test_only_an_activated_model_can_be_rolled_back() -> None:
    assert [state for state, nexts in TRANSITIONS.items() if "rolled_back" in nexts] == ["activated"]


def test_a_desired_state_parses_and_an_empty_one_clears() -> None:
    desired = parse_desired(json.dumps(_desired()).encode())
    assert desired is not None and desired.sha256 is not None and len(desired.manifest.chunks) == 5  # type: ignore[union-attr]
    assert parse_desired(b"") is None


@pytest.mark.parametrize("payload", [
    b"not json", b"[]", json.dumps(_desired(job_id="../../etc")).encode(), json.dumps(_desired(key_id="zz")).encode(),
    json.dumps(_desired(extra=1)).encode(), json.dumps(_desired(manifest=None)).encode(),
    json.dumps(_desired(action="rollback")).encode(),
    json.dumps(_desired(manifest={**_desired()["manifest"], "chunks": ["0" * 64]})).encode(),  # type: ignore[dict-item]
    json.dumps(_desired(manifest={**_desired()["manifest"], "size": -1})).encode(),  # type: ignore[dict-item]
    b"{" + b" " * DESIRED_MAX_BYTES + b"}",
])
def test_malformed_or_oversized_desired_states_are_refused_with_a_reason(payload: bytes) -> None:
    with pytest.raises(ProtocolError, match="desired state"):
        parse_desired(payload)


def test_topics_round_trip_and_foreign_ones_are_not_taken() -> None:
    sha = "a" * 64
    assert chunk_index(chunk_topic(sha, 17), sha) == 17
    assert chunk_index(chunk_topic("b" * 64, 17), sha) is None
    assert chunk_index(f"edgeteach/fleet/bundles/{sha}/chunks/+", sha) is None
    assert device_of("edgeteach/pi-3/model/state", "model/state") == "pi-3"
    assert device_of("edgeteach/groups/model/state", "model/state") is None
    assert device_of("edgeteach/pi-3/x/model/state", "model/state") is None
