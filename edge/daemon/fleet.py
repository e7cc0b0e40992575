"""The fleet agent (edge.fleet.agent) wired into `edge run`: it activates bundles through the daemon's own reload
(`CommandHandler.execute("reload", ...)`, the path `cmd/reload` takes: confined to models_dir, a bad bundle
refused while the old model keeps running), reads the inference errors of the pipeline it feeds, and sees its
decisions for the health gate. edge.fleet (and the `cryptography` package under it) is imported only when the
config turns the fleet on."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from edge.config import EdgeConfig
from edge.daemon.commands import CommandHandler
from edge.daemon.registry import PipelineRegistry
from edge.mqtt.connection import MqttConnection
from edge.pipelines.base import Decision

if TYPE_CHECKING:
    from edge.fleet.agent import FleetAgent
    from edge.fleet.protocol import ModelRef

log = logging.getLogger(__name__)


class DaemonModels:
    """The `ModelTarget` of the agent: one pipeline of the daemon (fleet.pipeline, else the only one)."""

    def __init__(self, commands: CommandHandler, registry: PipelineRegistry, pipeline: str) -> None:
        self._commands = commands
        self._registry = registry
        self.pipeline = pipeline

    def config_model(self) -> ModelRef:
        from edge.fleet.protocol import ModelRef

        cfg = self._registry.configs()[self.pipeline]
        return ModelRef(name=Path(cfg.bundle).name, version="config", bundle=str(Path(cfg.bundle).resolve()))

    def activate(self, bundle: Path) -> None:
        from edge.fleet.agent import ActivationError

        reply, _ = self._commands.execute("reload", {"pipeline": self.pipeline, "bundle": str(bundle)}, private_ok=False,
                                          honour_allow_list=False)  # the fleet's own signature check stands in for the allow list
        if not reply.get("ok"):
            raise ActivationError(str(reply.get("error", "refused")))

    def error_count(self) -> int:
        pipeline = self._registry.running().get(self.pipeline)
        if pipeline is None:
            return 0
        errors = pipeline.stats().get("errors", 0)
        return int(errors) if isinstance(errors, int) else 0


class FleetHook:
    """What the daemon holds: the agent, and the decisions of its pipeline handed to it."""

    def __init__(self, agent: FleetAgent, pipeline: str) -> None:
        self.agent = agent
        self.pipeline = pipeline

    def on_decision(self, decision: Decision) -> None:
        if decision.pipeline == self.pipeline:
            self.agent.observe(decision.model, decision.latency_ms)

    def stop(self) -> None:
        self.agent.stop()


def start_fleet(config: EdgeConfig, connection: MqttConnection, prefix: str, commands: CommandHandler, registry: PipelineRegistry,
                models_dir: Path) -> FleetHook | None:
    """The running fleet agent, or None when `fleet:` is off or cannot start (the reason is logged; the classifiers
    run either way)."""
    settings = config.fleet
    if not settings.active:
        return None
    names = [cfg.name for cfg in config.active_pipelines]
    pipeline = settings.pipeline or (names[0] if len(names) == 1 else None)
    if pipeline is None or pipeline not in registry.configs():
        log.error("fleet: name the pipeline whose model the fleet replaces (fleet.pipeline: one of %s); fleet off", names or "none")
        return None
    try:
        from edge.fleet.agent import FleetAgent
        from edge.fleet.signing import Keyring, SigningError
        from edge.fleet.store import ModelStore
    except ImportError as exc:  # a device installed before the fleet existed
        log.error("fleet: %s; install the edge extra again (pip install 'edgeteach[edge]'); fleet off", exc)
        return None
    try:
        keyring = Keyring.from_files(settings.public_keys)
    except SigningError as exc:
        log.error("fleet: %s; fleet off", exc)
        return None
    store = ModelStore(models_dir.resolve(), settings.max_disk_bytes)
    agent = FleetAgent(connection, prefix, settings, store, keyring, DaemonModels(commands, registry, pipeline))
    agent.start()
    log.info("fleet: following %s%s with %d trusted key(s)", prefix, f" and group {settings.group}" if settings.group else "",
             len(keyring.keys))
    return FleetHook(agent, pipeline)
