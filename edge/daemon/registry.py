"""The daemon's pipelines by name: the ones running, the config each was started from, and the ones that
could not be built (and why). One lock guards the three; starting and stopping go through here so a bad
bundle or source never takes the other pipelines down."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from edge.config import PipelineConfig
from edge.daemon.publisher import DecisionPublisher
from edge.pipelines.base import Pipeline

log = logging.getLogger(__name__)


class PipelineRegistry:
    def __init__(self, build: Callable[[PipelineConfig], Pipeline], publisher: DecisionPublisher) -> None:
        self._build = build
        self._publisher = publisher
        self._pipelines: dict[str, Pipeline] = {}
        self._configs: dict[str, PipelineConfig] = {}
        self._failed: dict[str, str] = {}  # pipelines that could not be built, and why
        self._lock = threading.RLock()

    # -- what is there -----------------------------------------------------------------------------

    def running(self) -> dict[str, Pipeline]:
        with self._lock:
            return dict(self._pipelines)

    def configs(self) -> dict[str, PipelineConfig]:
        with self._lock:
            return dict(self._configs)

    def failed(self) -> dict[str, str]:
        with self._lock:
            return dict(self._failed)

    def has_failed(self, name: str) -> bool:
        with self._lock:
            return name in self._failed

    def kinds(self) -> dict[str, str]:
        with self._lock:
            return {name: cfg.kind for name, cfg in self._configs.items()}

    def build(self, cfg: PipelineConfig) -> Pipeline:
        """A pipeline for `cfg`, its bundle loaded and checked, not started and not registered."""
        return self._build(cfg)

    # -- changes -----------------------------------------------------------------------------------

    def start(self, cfg: PipelineConfig) -> bool:
        """Builds and starts the pipeline of `cfg`; a failure is recorded and published, never raised."""
        try:
            pipeline = self._build(cfg)
        except Exception as exc:  # a bad bundle or source must not take the other pipelines down
            self.record_failure(cfg, str(exc) or type(exc).__name__)
            return False
        return self.adopt(cfg, pipeline)

    def adopt(self, cfg: PipelineConfig, pipeline: Pipeline) -> bool:
        """Starts an already built `pipeline` under `cfg.name` (stop the one it replaces first); a failure to
        start is recorded and published, never raised."""
        self._publisher.configure(cfg.name, cfg.publish)
        try:
            pipeline.start()
        except Exception as exc:
            self.record_failure(cfg, str(exc) or type(exc).__name__)
            return False
        with self._lock:
            self._pipelines[cfg.name] = pipeline
            self._configs[cfg.name] = cfg
            self._failed.pop(cfg.name, None)
        log.info("pipeline %s (%s) started with %s", cfg.name, cfg.kind, cfg.bundle)
        return True

    def record_failure(self, cfg: PipelineConfig, reason: str) -> None:
        """Notes that the pipeline of `cfg` could not be built or started, and publishes why."""
        log.error("pipeline %s not started: %s", cfg.name, reason)
        self._publisher.configure(cfg.name, cfg.publish)
        with self._lock:
            self._failed[cfg.name] = reason
            self._configs[cfg.name] = cfg
        self._publisher.on_status(cfg.name, "failed", reason)

    def stop(self, names: list[str], timeout: float) -> None:
        """Stops pipelines in parallel so N pipelines still stop within one timeout."""
        with self._lock:
            victims = [(name, self._pipelines.pop(name)) for name in names if name in self._pipelines]
        threads = [threading.Thread(target=p.stop, kwargs={"timeout": timeout}, name=f"stop-{n}", daemon=True) for n, p in victims]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + timeout + 0.5
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def forget(self, name: str) -> None:
        """Drops a stopped pipeline's config and failure, and its published state."""
        with self._lock:
            self._configs.pop(name, None)
            self._failed.pop(name, None)
        self._publisher.remove(name)

    # -- numbers -----------------------------------------------------------------------------------

    def stats(self) -> dict[str, dict[str, Any]]:
        """Each pipeline's counters with what was published for it; failed ones with their reason."""
        published = self._publisher.counters()
        out: dict[str, dict[str, Any]] = {}
        for name, pipeline in self.running().items():
            try:
                stats = dict(pipeline.stats())
            except Exception as exc:
                stats = {"error": f"stats unavailable: {exc}"}
            stats["paused"] = bool(pipeline.paused)
            stats["kind"] = pipeline.kind
            stats.update(published.get(name, {}))
            out[name] = stats
        for name, reason in self.failed().items():
            out[name] = {"source_state": "failed", "error": reason}
        return out
