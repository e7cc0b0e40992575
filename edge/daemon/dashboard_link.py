"""The daemon as the dashboard sees it (edge.dashboard.device.Device): the figures of MQTT `stats` and `/healthz`
from the daemon's own functions, and commands through the MQTT command handler (same validation, same errors),
so the page holds no second copy of either."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.core.hosts import is_loopback
from edge.dashboard.device import CommandResult, LlmLink
from edge.pipelines.base import Pipeline

if TYPE_CHECKING:
    from edge.daemon.daemon import Daemon


class DaemonDevice:
    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self.device_id = daemon.config.device_id

    def pipelines(self) -> dict[str, Pipeline]:
        return self._daemon.pipelines()

    def stats_payload(self) -> dict[str, Any]:
        return self._daemon.stats_payload()

    def healthz(self) -> tuple[bool, dict[str, Any]]:
        return self._daemon.healthz()

    def command(self, name: str, args: dict[str, Any]) -> CommandResult:
        # The page is the requester and shows the image itself (private_ok); its password, not the broker's allow list,
        # decides who may use it (honour_allow_list=False).
        reply, private = self._daemon.commands.execute(name, dict(args), private_ok=True, honour_allow_list=False)
        return CommandResult(reply, private.raw if private is not None else None)

    def models_dir(self) -> Path:
        return Path(self._daemon.commands.models_dir or self._daemon.config.models_dir or ".")

    def llm(self) -> LlmLink | None:
        llm = self._daemon.config.llm
        if not llm.enabled or (llm.run_by == "daemon" and self._daemon.llm is None):
            return None
        host = llm.host if is_loopback(llm.host) or llm.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return LlmLink(f"http://{host}:{llm.port}", llm.api_key)
