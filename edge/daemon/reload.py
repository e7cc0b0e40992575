"""SIGHUP: the config file read again and applied to the running daemon. Pipelines that changed are rebuilt,
and a rebuilt pipeline whose new bundle is bad keeps the old one running; removed ones stop, new ones start.
Sections the daemon cannot change while running (device id, broker, health port, LLM) wait for a restart."""

from __future__ import annotations

import logging

from edge.config import EdgeConfig
from edge.daemon.registry import PipelineRegistry

log = logging.getLogger(__name__)

RESTART_ONLY = ("device_id", "mqtt", "health", "llm")
STOP_TIMEOUT_S = 2.0


def apply_reload(old: EdgeConfig, new: EdgeConfig, registry: PipelineRegistry) -> EdgeConfig:
    """Brings the registry's pipelines in line with `new`; returns the config now in force: `new` with the
    restart-only sections of `old`."""
    for section in RESTART_ONLY:
        if getattr(old, section) != getattr(new, section):
            log.warning("config reload: changes to '%s' take effect at the next restart (systemctl restart edgeteach)", section)
    logging.getLogger().setLevel(new.log_level)
    wanted = {cfg.name: cfg for cfg in new.active_pipelines}
    current = registry.configs()
    removed = [name for name in current if name not in wanted]
    registry.stop(removed, timeout=STOP_TIMEOUT_S)
    for name in removed:
        registry.forget(name)
    for name, cfg in wanted.items():
        if name in current and current[name] == cfg and not registry.has_failed(name):
            continue
        if name in registry.running():
            try:
                replacement = registry.build(cfg)  # validates the bundle before the old one goes
            except Exception as exc:
                log.error("config reload: pipeline %s keeps its old settings: %s", name, exc)
                continue
            registry.replace(name, replacement, cfg, timeout=STOP_TIMEOUT_S)
            log.info("config reload: pipeline %s restarted with its new settings", name)
        else:
            registry.start(cfg)
    return new.model_copy(update={section: getattr(old, section) for section in RESTART_ONLY})
