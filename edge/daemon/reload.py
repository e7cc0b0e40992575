"""SIGHUP: the config file read again and applied to the running daemon. Pipelines that changed are rebuilt,
and a rebuilt pipeline whose new bundle is bad keeps the old one running; removed ones stop, new ones start.
Sections the daemon cannot change while running (device id, broker, health port, LLM, dashboard) wait for a restart.

Why in two steps: building a pipeline loads its bundle and builds an ONNX Runtime session, which takes
minutes with TensorRT. Done on the main loop, that would stop the systemd watchdog pings (systemd would kill
a working daemon), the MQTT heartbeats and /healthz. So `prepare_reload` builds everything on a worker thread
(`ReloadJob`) while the old pipelines keep classifying, and `apply_reload` swaps the built pipelines in on
the main loop, where stopping the old ones is bounded by one STOP_TIMEOUT_S. (Extending the watchdog with
EXTEND_TIMEOUT_USEC instead would keep the main loop blocked, and hide a build that never ends.)"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from edge.config import EdgeConfig, PipelineConfig
from edge.daemon.registry import PipelineRegistry
from edge.pipelines.base import Pipeline

log = logging.getLogger(__name__)

RESTART_ONLY = ("device_id", "mqtt", "health", "llm", "dashboard")
STOP_TIMEOUT_S = 2.0


@dataclass
class ReloadPlan:
    """What `prepare_reload` found and built, for `apply_reload` to put in place."""

    new: EdgeConfig
    removed: list[str] = field(default_factory=list)
    built: dict[str, tuple[PipelineConfig, Pipeline]] = field(default_factory=dict)  # new or changed, built, not started
    refused: dict[str, tuple[PipelineConfig, str]] = field(default_factory=dict)  # could not be built, and why


def prepare_reload(new: EdgeConfig, registry: PipelineRegistry) -> ReloadPlan:
    """Builds the pipelines `new` adds or changes (the slow part), without touching the running ones."""
    wanted = {cfg.name: cfg for cfg in new.active_pipelines}
    current = registry.configs()
    plan = ReloadPlan(new, removed=[name for name in current if name not in wanted])
    for name, cfg in wanted.items():
        if name in current and current[name] == cfg and not registry.has_failed(name):
            continue
        try:
            plan.built[name] = (cfg, registry.build(cfg))  # loads and checks the bundle before the old one goes
        except Exception as exc:
            plan.refused[name] = (cfg, str(exc) or type(exc).__name__)
    return plan


def apply_reload(old: EdgeConfig, plan: ReloadPlan, registry: PipelineRegistry) -> EdgeConfig:
    """Puts `plan` in place (main loop): removed pipelines stop, built ones replace or join the running ones, a
    running pipeline whose rebuild failed keeps its old settings. Returns the config now in force: the new one
    with the restart-only sections of `old`."""
    new = plan.new
    for section in RESTART_ONLY:
        if getattr(old, section) != getattr(new, section):
            log.warning("config reload: changes to '%s' take effect at the next restart (systemctl restart edgeteach)", section)
    logging.getLogger().setLevel(new.log_level)
    running = registry.running()
    for name, (_cfg, reason) in plan.refused.items():
        if name in running:
            log.error("config reload: pipeline %s keeps its old settings: %s", name, reason)
        else:
            registry.record_failure(_cfg, reason)
    replaced = [name for name in plan.built if name in running]
    registry.stop(plan.removed + replaced, timeout=STOP_TIMEOUT_S)  # all at once: one timeout, however many
    for name in plan.removed:
        registry.forget(name)
    for name, (cfg, pipeline) in plan.built.items():
        if registry.adopt(cfg, pipeline):
            log.info("config reload: pipeline %s %s", name, "restarted with its new settings" if name in replaced else "started")
    return new.model_copy(update={section: getattr(old, section) for section in RESTART_ONLY})


class ReloadJob:
    """`prepare_reload` on a worker thread; the main loop polls `done()` and then takes `result()`."""

    def __init__(self, new: EdgeConfig, registry: PipelineRegistry, on_done: Callable[[], None] | None = None,
                 prepare: Callable[[EdgeConfig, PipelineRegistry], ReloadPlan] = prepare_reload) -> None:
        self._on_done = on_done  # wakes the main loop, so the swap does not wait for the next tick
        self._plan: ReloadPlan | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(new, registry, prepare), name="config-reload", daemon=True)

    def start(self) -> ReloadJob:
        self._thread.start()
        return self

    def _run(self, new: EdgeConfig, registry: PipelineRegistry, prepare: Callable[[EdgeConfig, PipelineRegistry], ReloadPlan]) -> None:
        try:
            self._plan = prepare(new, registry)
        except BaseException as exc:  # a bug here must end the reload, never leave the main loop waiting
            self._error = exc
        finally:
            self._done.set()
            if self._on_done is not None:
                self._on_done()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def result(self) -> ReloadPlan:
        """The plan; raises what the preparation raised."""
        if self._error is not None:
            raise self._error
        if self._plan is None:
            raise RuntimeError("the reload is still being prepared")
        return self._plan
