"""Every MQTT topic the daemon uses, in one place (docs/mqtt.md is the reference for their payloads)."""

from __future__ import annotations

from dataclasses import dataclass


def default_prefix(device_id: str) -> str:
    return f"edgeteach/{device_id}"


@dataclass(frozen=True)
class Topics:
    """Topic names under one prefix, `edgeteach/<device_id>` by default (no trailing slash)."""

    prefix: str

    @classmethod
    def for_device(cls, device_id: str, prefix: str | None = None) -> Topics:
        return cls((prefix or default_prefix(device_id)).rstrip("/"))

    @property
    def status(self) -> str:
        """`online` / `offline`, retained; also the Last Will."""
        return f"{self.prefix}/status"

    @property
    def stats(self) -> str:
        return f"{self.prefix}/stats"

    def state(self, pipeline: str) -> str:
        return f"{self.prefix}/{pipeline}/state"

    def event(self, pipeline: str) -> str:
        return f"{self.prefix}/{pipeline}/event"

    def source_status(self, pipeline: str) -> str:
        return f"{self.prefix}/{pipeline}/status"

    @property
    def commands(self) -> str:
        """Filter for all commands. `+` matches one level, so replies (`cmd/<name>/reply`) never loop back."""
        return f"{self.prefix}/cmd/+"

    def command(self, name: str) -> str:
        return f"{self.prefix}/cmd/{name}"

    def command_reply(self, name: str) -> str:
        return f"{self.prefix}/cmd/{name}/reply"

    def command_name(self, topic: str) -> str | None:
        head = f"{self.prefix}/cmd/"
        if not topic.startswith(head):
            return None
        name = topic[len(head):]
        return name if name and "/" not in name else None
