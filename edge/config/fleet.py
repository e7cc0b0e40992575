"""The `fleet:` section: model rollout over MQTT (docs/fleet.md). Off unless public keys are listed: a device
only ever activates a bundle signed by one of them, so without keys there is nothing it could accept."""

from __future__ import annotations

from pydantic import Field, model_validator

from edge.config.base import StrictModel

GROUP_PATTERN = r"^[a-z0-9_-]{1,64}$"
# A bundle travels as chunks whose SHA-256 are all listed in the signed manifest, and that manifest must fit
# in one MQTT message a device accepts (edge.fleet.protocol.MAX_CHUNKS of CHUNK_BYTES): 36 MiB at most.
MAX_BUNDLE_BYTES_LIMIT = 36 * 1024 * 1024


class HealthGateSettings(StrictModel):
    """What a new model must show after it is activated, or the device goes back to the previous one."""

    classifications: int = Field(20, ge=0, le=100000, description="classifications the new model must make without an error "
                                 "(0: no gate, the model counts as healthy once activated)")
    latency_factor: float = Field(3.0, ge=1.0, le=1000.0, description="its median latency may be at most this many times the "
                                  "old model's (plus latency_slack_ms)")
    latency_slack_ms: float = Field(50.0, ge=0.0, le=60000.0, description="added to the allowed latency, so a 2 ms model is "
                                    "not rolled back for taking 7 ms on a busy Pi")
    timeout_s: float = Field(120.0, gt=0, le=86400, description="seconds the new model has to make those classifications; "
                             "fewer in that time (a paused or failing pipeline) rolls back")


class FleetSettings(StrictModel):
    enabled: bool | None = Field(None, description="take models from the fleet controller (default: on when public_keys "
                                 "lists a key, off otherwise)")
    group: str | None = Field(None, pattern=GROUP_PATTERN, description="the group (a class, a room) this device belongs to: "
                              "it follows edgeteach/groups/<group>/model/desired")
    public_keys: list[str] = Field(default_factory=list, max_length=16, description="Ed25519 public key files (PEM, from "
                                   "`trainer fleet keygen`); a bundle signed by none of them is refused")
    pipeline: str | None = Field(None, description="the pipeline whose model the fleet replaces (default: the only one)")
    max_bundle_bytes: int = Field(32 * 1024 * 1024, ge=1024, le=MAX_BUNDLE_BYTES_LIMIT,
                                  description="larger bundles are refused before anything is downloaded")
    max_disk_bytes: int = Field(256 * 1024 * 1024, ge=1024 * 1024, description="what the downloaded models may take in "
                                "models_dir; older ones are pruned (never the active and previous)")
    health_gate: HealthGateSettings = Field(default_factory=HealthGateSettings)

    @model_validator(mode="after")
    def _keys_for_enabled(self) -> FleetSettings:
        if self.enabled and not self.public_keys:
            raise ValueError("fleet.enabled needs fleet.public_keys: list the controller's public key file "
                             "(`trainer fleet keygen` writes one); an unsigned bundle is always refused")
        return self

    @property
    def active(self) -> bool:
        """Whether the device follows the fleet: `enabled`, else whether keys are listed."""
        return self.enabled if self.enabled is not None else bool(self.public_keys)
