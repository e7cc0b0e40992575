"""What the dashboard needs of the running daemon, as a protocol the daemon implements
(edge/daemon/dashboard_link.py): the same figures as MQTT `stats` and `/healthz`, and the same command code as
MQTT, so the page never holds a copy of either."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edge.pipelines.base import Pipeline


@dataclass(frozen=True)
class CommandResult:
    """A command's reply as MQTT would send it ("ok", then the result or an "error"), and the bytes only the
    requester may have (a snapshot's JPEG), if any."""

    reply: dict[str, Any]
    private_bytes: bytes | None = None

    @property
    def ok(self) -> bool:
        return self.reply.get("ok") is True


@dataclass(frozen=True)
class LlmLink:
    """Where the device's LLM answers over HTTP (the daemon's own child or the systemd unit)."""

    url: str
    api_key: str | None


class Device(Protocol):
    device_id: str

    def pipelines(self) -> dict[str, Pipeline]: ...

    def stats_payload(self) -> dict[str, Any]:
        """What MQTT `stats` publishes."""
        ...

    def healthz(self) -> tuple[bool, dict[str, Any]]:
        """What /healthz answers."""
        ...

    def command(self, name: str, args: dict[str, Any]) -> CommandResult:
        """Runs an MQTT command (edge/daemon/commands.py) for the page."""
        ...

    def models_dir(self) -> Path: ...

    def llm(self) -> LlmLink | None:
        """The LLM to chat with, None when it does not run."""
        ...
