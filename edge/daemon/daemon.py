"""`edge run`: the device daemon. Wires config -> pipelines -> MQTT (state, events, status, stats,
commands, Home Assistant discovery) -> health HTTP -> systemd, and keeps them running. The pipelines by
name live in `registry`, the SIGHUP reload in `reload`, the Prometheus families in `metrics`.

Threads: each pipeline runs its own capture/inference threads and calls `DecisionPublisher.on_decision`
from there; MQTT handlers run on MqttConnection's workers; the main loop (this module) only ticks:
rate-limited state flushes and heartbeats, stats, the systemd watchdog, signals. The watchdog is pinged
from the main loop itself, so a hung loop stops the pings and systemd restarts the service; that is why
nothing slow runs on it (a SIGHUP's pipelines are built on their own thread, edge.daemon.reload).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge import __version__ as EDGE_VERSION
from edge.config import EdgeConfig, PipelineConfig, load_config
from edge.config.mqtt import allowed_commands
from edge.daemon.commands import CommandHandler
from edge.daemon.dashboard_link import DaemonDevice
from edge.daemon.discovery import Discovery
from edge.daemon.fleet import FleetHook, start_fleet
from edge.daemon.publisher import DecisionPublisher, to_json
from edge.daemon.registry import PipelineRegistry
from edge.daemon.reload import ReloadJob, apply_reload
from edge.host.procstats import process_stats
from edge.host.systemd import SystemdNotifier
from edge.llm.process import LlmChild
from edge.mqtt.connection import MqttConnection, OutgoingMessage
from edge.mqtt.topics import Topics
from edge.pipelines.base import Decision, Pipeline

if TYPE_CHECKING:
    from edge.daemon.health import HealthServer
    from edge.dashboard.server import DashboardServer

log = logging.getLogger(__name__)

# Test hook: the main loop stops ticking after this many seconds, as a deadlocked loop would, so tests
# can check that watchdog pings stop and /healthz turns 503. Never set it in production.
HANG_HOOK_ENV = "EDGETEACH_TEST_HANG_MAIN_LOOP_AFTER_S"

STOP_BUDGET_S = 4.0  # a graceful stop must finish within 5 s (SIGTERM to the retained `offline`); keep a margin


class Daemon:
    def __init__(self, config: EdgeConfig, config_path: str | Path | None = None, notifier: SystemdNotifier | None = None,
                 tick_s: float = 0.2) -> None:
        self.config = config
        self.config_path = Path(config_path) if config_path else None
        self.notifier = notifier or SystemdNotifier()
        self.tick_s = tick_s
        self.topics = Topics.for_device(config.device_id, config.mqtt.topic_prefix)
        self.connection = MqttConnection(
            config.mqtt,
            client_id=config.mqtt.client_id or f"edgeteach-{config.device_id}",
            will=OutgoingMessage(self.topics.status, b"offline", qos=1, retain=True),
            birth=OutgoingMessage(self.topics.status, b"online", qos=1, retain=True),
        )
        self.publisher = DecisionPublisher(self.connection, self.topics)
        self.commands = CommandHandler(self.connection, self.topics, self, config.mqtt.max_payload_bytes,
                                       models_dir=self._models_dir(config), allowed=allowed_commands(config.mqtt))
        self.discovery = Discovery(self.connection, self.topics, config.device_id, config.mqtt.discovery.prefix,
                                   config.mqtt.discovery.enabled)
        self.health: HealthServer | None = None
        self.dashboard: DashboardServer | None = None
        self.llm: LlmChild | None = None
        self.registry = PipelineRegistry(self._build_pipeline, self.publisher)
        self.fleet: FleetHook | None = None  # model rollout (edge.daemon.fleet), when `fleet:` is on
        self._wake = threading.Event()
        self._stop_requested = False
        self._reload_requested = False
        self._reload_job: ReloadJob | None = None  # a SIGHUP reload being prepared off the main loop
        self._started_at = time.monotonic()
        self._last_tick = time.monotonic()
        self._last_stats = float("-inf")
        self._last_watchdog = float("-inf")
        self._loop_running = False
        self.reloads_ok = 0
        self.reloads_failed = 0

    # -- CommandTarget -----------------------------------------------------------------------------

    def pipelines(self) -> dict[str, Pipeline]:
        return self.registry.running()

    def describe(self) -> dict[str, Any]:
        return {
            "device_id": self.config.device_id,
            "version": EDGE_VERSION,
            "uptime_s": round(time.monotonic() - self._started_at, 1),
            "pipelines": self.registry.stats(),
            "failed_pipelines": self.registry.failed(),
            "mqtt": self._mqtt_stats(),
        }

    def pipeline_paused(self, name: str, paused: bool) -> None:
        self.publisher.set_paused(name, paused)

    def pipeline_reloaded(self, name: str) -> None:
        log.info("pipeline %s now runs %s", name, self.pipelines()[name].stats().get("model"))

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        self.commands.subscribe()
        self.discovery.subscribe()
        self.connection.add_connect_listener(self._on_connected)
        self.connection.start()  # returns at once; the broker may well be down
        for cfg in self.config.active_pipelines:
            self.registry.start(cfg)
        self.discovery.set_pipelines(self.registry.kinds())
        self.fleet = start_fleet(self.config, self.connection, self.topics.prefix, self.commands, self.registry,
                                 self._models_dir(self.config))
        if self.config.health.enabled:
            try:
                from edge.daemon.health import HealthServer  # late: Starlette and uvicorn only when health is on

                self.health = HealthServer(self.config.health.host, self.config.health.port, self.healthz, self.metrics).start()
                log.info("health: http://%s:%d/healthz and /metrics", self.config.health.host, self.health.port)
            except OSError as exc:
                log.error("%s", exc)  # the classifiers matter more than the probe: carry on without it
        self._start_dashboard()
        if self.config.llm.enabled and self.config.llm.run_by == "systemd":
            # One owner of the LLM process (issue 12 item 10): the unit runs it under its own limits.
            log.info("LLM: run by edgeteach-llm.service (llm.run_by: systemd); `edge run` does not start one")
        elif self.config.llm.enabled:
            if self.config_path is None:
                log.error("llm.enabled needs the daemon to run from a config file (`edge run -c FILE`); LLM not started")
            else:
                self.llm = LlmChild(self.config_path, self.config.llm.host, self.config.llm.port)
                self.llm.start()
                if self.llm.process is not None:  # else it logged why (its port is already served)
                    log.info("LLM: started `edge llm serve` (pid %s) on http://%s:%d", self.llm.process.pid,
                             self.config.llm.host, self.config.llm.port)

    def _start_dashboard(self) -> None:
        settings = self.config.dashboard
        if not settings.enabled:
            return
        from edge.dashboard.server import DashboardServer  # imported late: Starlette's routing, only when it is on

        try:
            self.dashboard = DashboardServer(settings, DaemonDevice(self)).start()
            log.info("dashboard: http://%s:%d/%s", settings.host, self.dashboard.port,
                     " (password: dashboard.password_file)" if settings.password_file else "")
        except OSError as exc:
            log.error("%s", exc)  # the classifiers matter more than the page: carry on without it

    def _build_pipeline(self, cfg: PipelineConfig) -> Pipeline:
        from edge.pipelines import build_pipeline  # imported late: it pulls in OpenCV and ONNX Runtime

        return build_pipeline(cfg, self._on_decision, self.publisher.on_status)

    def _on_decision(self, decision: Decision) -> None:
        self.publisher.on_decision(decision)
        if self.fleet is not None:  # the health gate of a model the fleet just activated
            self.fleet.on_decision(decision)

    def _on_connected(self) -> None:
        self.publisher.republish_retained()
        self.discovery.publish_all()

    def request_stop(self) -> None:
        self._stop_requested = True
        self._wake.set()

    def request_reload(self) -> None:
        self._reload_requested = True
        self._wake.set()

    def run(self, install_signals: bool = True) -> int:
        """Starts everything, loops until SIGTERM/SIGINT (or `request_stop`), stops within ~4 s."""
        if install_signals:
            signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
            signal.signal(signal.SIGINT, lambda *_: self.request_stop())
            if hasattr(signal, "SIGHUP"):
                signal.signal(signal.SIGHUP, lambda *_: self.request_reload())
        self.start()
        self.notifier.ready(f"running {len(self.pipelines())} pipeline(s)")
        hang_after = _float_env(HANG_HOOK_ENV)
        self._loop_running = True
        try:
            while not self._stop_requested:
                if hang_after is not None and time.monotonic() - self._started_at > hang_after:
                    log.warning("%s is set: the main loop now hangs on purpose (test hook)", HANG_HOOK_ENV)
                    while True:
                        time.sleep(3600)
                self._tick()
                self._wake.wait(self.tick_s)
                self._wake.clear()
        finally:
            self._loop_running = False
            self.stop()
        return 0

    def _tick(self) -> None:
        now = time.monotonic()
        self._last_tick = now
        if self._reload_job is not None and self._reload_job.done():
            self._finish_reload()
        if self._reload_requested and self._reload_job is None:  # a SIGHUP during a reload waits for it, then runs
            self._reload_requested = False
            self.reload_config()
        if self.llm is not None:
            try:
                self.llm.poll()
            except Exception:  # a failed restart of the LLM (fork refused, ...) must not end the classifiers
                log.exception("LLM child supervision failed; trying again next tick")
        try:
            self.publisher.tick()
            if now - self._last_stats >= self.config.mqtt.stats_interval:
                self._last_stats = now
                self.publish_stats()
        except Exception:  # a bug in stats must not stop the watchdog pings of a working daemon
            log.exception("main loop tick failed")
        interval = self.notifier.watchdog_interval()
        if interval is not None and now - self._last_watchdog >= interval:
            self._last_watchdog = now
            self.notifier.watchdog()

    def stop(self) -> None:
        started = time.monotonic()
        self.notifier.stopping()
        log.info("stopping")
        if self.dashboard is not None:  # first: its streams read the pipelines
            self.dashboard.stop()
        if self.fleet is not None:
            self.fleet.stop()
        self.registry.stop(list(self.pipelines()), timeout=2.0)
        if self.llm is not None:
            self.llm.stop(timeout=1.5)
        if self.health is not None:
            self.health.stop()
        left = max(0.5, STOP_BUDGET_S - (time.monotonic() - started))
        self.connection.stop(timeout=min(1.5, left))  # publishes the retained `offline`
        log.info("stopped in %.1f s", time.monotonic() - started)
        lingering = [t.name for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon and t.is_alive()]
        if lingering:
            log.debug("non-daemon threads still running at stop: %s", ", ".join(lingering))

    def _models_dir(self, config: EdgeConfig) -> Path:
        """Where cmd/reload may load bundles from: models_dir, else the config file's folder (the working folder
        for a config that did not come from a file)."""
        if config.models_dir:
            return Path(config.models_dir)
        return self.config_path.resolve().parent if self.config_path is not None else Path.cwd()

    # -- SIGHUP ------------------------------------------------------------------------------------

    def reload_config(self) -> bool:
        """Re-reads the config file and starts preparing it off the main loop (edge.daemon.reload: the new and
        changed pipelines are built on a worker thread while the old ones keep classifying and the watchdog
        keeps being pinged); the next ticks swap them in. A bad file changes nothing (the reason is logged).
        Returns whether a reload was started."""
        if self.config_path is None:
            log.warning("SIGHUP ignored: the daemon was not started from a config file")
            return False
        self.notifier.reloading()
        try:
            new = load_config(self.config_path)
        except Exception as exc:  # ConfigError, or anything unexpected: keep running as we are
            self.reloads_failed += 1
            log.error("config reload refused, keeping the running config: %s", exc)
            self.notifier.ready("config reload refused; see the log")
            return False
        log.info("config reload: building the new pipelines; the running ones carry on meanwhile")
        self._reload_job = ReloadJob(new, self.registry, on_done=self._wake.set).start()
        return True

    def _finish_reload(self) -> None:
        """Main loop: puts a prepared reload in place."""
        job, self._reload_job = self._reload_job, None
        if job is None:
            return
        try:
            plan = job.result()
            self.config = apply_reload(self.config, plan, self.registry)
        except Exception:  # a bug in the reload must not stop the daemon; what runs keeps running
            self.reloads_failed += 1
            log.exception("config reload failed; keeping what runs")
            self.notifier.ready("config reload failed; see the log")
            return
        self.commands.models_dir = self._models_dir(plan.new)
        self.discovery.set_pipelines(self.registry.kinds())
        self.reloads_ok += 1
        self.notifier.ready(f"config reloaded; running {len(self.pipelines())} pipeline(s)")
        log.info("config reloaded from %s", self.config_path)

    # -- numbers -----------------------------------------------------------------------------------

    def _mqtt_stats(self) -> dict[str, Any]:
        return {
            "connected": self.connection.connected,
            "pending": self.connection.pending(),
            "queue_limit": self.config.mqtt.queue_limit,
            "pending_bytes": self.connection.pending_bytes(),
            "queue_max_bytes": self.config.mqtt.queue_max_bytes,
            "handler_queues": self.connection.handler_queue_sizes(),
            "commands_handled": self.commands.handled,
            "commands_failed": self.commands.failed,
            **self.connection.counters.as_dict(),
        }

    def stats_payload(self) -> dict[str, Any]:
        return {
            "ts": round(time.time(), 3),
            "device_id": self.config.device_id,
            "uptime_s": round(time.monotonic() - self._started_at, 1),
            "pipelines": self.registry.stats(),
            "mqtt": self._mqtt_stats(),
            "process": process_stats(),
            **({"llm": self.llm.stats()} if self.llm is not None else {}),
        }

    def publish_stats(self) -> None:
        self.connection.publish(self.topics.stats, to_json(self.stats_payload()), qos=0, retain=False)

    def loop_healthy(self) -> tuple[bool, float]:
        age = time.monotonic() - self._last_tick
        return self._loop_running and age < max(2.0, 10 * self.tick_s), age

    def healthz(self) -> tuple[bool, dict[str, Any]]:
        """/healthz: 200 while the main loop ticks and the sources deliver; 503 when the loop hangs or a source that
        had worked (or hung) has sent nothing for longer than its stall_timeout_s (edge.sources.supervisor.stale)."""
        loop_ok, age = self.loop_healthy()
        sources = {name: _source_health(pipeline) for name, pipeline in self.pipelines().items()}
        stale = sorted(name for name, source in sources.items() if source["stalled"])
        ok = loop_ok and not stale
        return ok, {
            "status": "ok" if ok else "unhealthy",
            "main_loop_age_s": round(age, 2),
            "mqtt_connected": self.connection.connected,
            "pipelines": {name: source["state"] for name, source in sources.items()},
            "sources": sources,
            "stale_sources": stale,
            "failed_pipelines": self.registry.failed(),
        }

    def metrics(self) -> str:
        ok, age = self.loop_healthy()
        mqtt = self._mqtt_stats()
        pipelines = self.registry.stats()
        running = set(self.pipelines())
        from edge.daemon.metrics import render_metrics  # late: prometheus_client only once /metrics is asked for

        return render_metrics(ok, age, mqtt, pipelines, running, process_stats(), self.reloads_ok, self.reloads_failed)


def _source_health(pipeline: Pipeline) -> dict[str, Any]:
    """What /healthz says of one pipeline's source: its state, seconds since its last frame, and whether that
    exceeds its stall timeout."""
    try:
        stats = pipeline.stats()
    except Exception as exc:  # a pipeline that cannot even report is not healthy
        return {"state": "unknown", "stalled": True, "error": f"stats unavailable: {exc.__class__.__name__}"}
    return {
        "state": stats.get("source_state"),
        "last_frame_age_s": stats.get("last_frame_age_s"),
        "stall_timeout_s": stats.get("source_stall_timeout_s"),
        "stalled": bool(stats.get("source_stalled")),
        "detail": stats.get("source_detail", ""),
    }


def _float_env(name: str) -> float | None:
    raw = os.environ.get(name)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        log.warning("%s=%r is not a number; ignored", name, raw)
        return None


def run_daemon(config_path: str | Path) -> int:
    """Entry point of `edge run`: returns the process exit code."""
    config = load_config(config_path)
    if logging.getLogger().level != logging.DEBUG:  # `edge -v` wins over the config's log_level
        logging.getLogger().setLevel(config.log_level)
    return Daemon(config, config_path).run()
