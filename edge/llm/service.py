"""`edge llm serve`: settings from the config file and flags, then HTTP + MQTT + the model, until SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edge.config.llm import LlmSettings, exposure_problem
from edge.config.mqtt import MqttSettings
from edge.core.hosts import is_loopback
from edge.llm.core import LlmCore
from edge.llm.engine import ModelLoadError
from edge.llm.http_api import LlmHttpServer
from edge.llm.sensors import SensorContext

log = logging.getLogger(__name__)


class ServeConfigError(ValueError):
    pass


@dataclass
class ServeTarget:
    llm: LlmSettings
    mqtt: MqttSettings | None  # None: no MQTT interface, no sensor context
    device_id: str
    topic_prefix: str
    client_id: str
    pipeline_kinds: dict[str, str] = field(default_factory=dict)  # name -> camera/microphone, for the sensor context
    insecure_no_key: bool = False  # --insecure-no-key: serve a non-loopback address without llm.api_key


def resolve_target(config_path: str | None, overrides: dict[str, Any], mqtt_host: str | None = None,
                   mqtt_port: int | None = None, no_mqtt: bool = False, insecure_no_key: bool = False) -> ServeTarget:
    """The `llm:` (and `mqtt:`, `device_id`) sections of the config file, with command-line overrides
    (None values are ignored). MQTT is used when the config file has an `mqtt:` section or --mqtt-host is
    given, unless llm.mqtt is false or --no-mqtt."""
    from edge.config import ConfigError, default_device_id, load_config
    from edge.mqtt.topics import Topics

    llm_data: dict[str, Any] = {}
    mqtt_settings: MqttSettings | None = None
    device_id = default_device_id()
    kinds: dict[str, str] = {}
    if config_path:
        try:
            config = load_config(config_path)
        except ConfigError as exc:
            raise ServeConfigError(str(exc)) from None
        llm_data = config.llm.model_dump(exclude_unset=False)
        model = llm_data.get("model")
        if model and not Path(model).expanduser().is_absolute():  # relative to the config file, like bundles
            llm_data["model"] = str(Path(config_path).resolve().parent / model)
        mqtt_settings = config.mqtt
        device_id = config.device_id
        kinds = {p.name: p.kind for p in config.pipelines}
    for key, value in overrides.items():
        if value is not None:
            llm_data[key] = value
    try:
        llm = LlmSettings.model_validate(llm_data)
    except ValidationError as exc:
        problems = "; ".join(f"llm.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ServeConfigError(problems) from None
    insecure_no_key = insecure_no_key or llm.insecure_no_key
    if problem := exposure_problem(llm.host, llm.api_key, insecure_no_key):
        raise ServeConfigError(problem)
    if mqtt_host or mqtt_port:
        base = mqtt_settings.model_dump() if mqtt_settings else {}
        base.update({k: v for k, v in (("host", mqtt_host), ("port", mqtt_port)) if v})
        mqtt_settings = MqttSettings.model_validate(base)
    if no_mqtt or not llm.mqtt:
        mqtt_settings = None
    prefix = Topics.for_device(device_id, mqtt_settings.topic_prefix if mqtt_settings else None).prefix
    client_id = f"{(mqtt_settings.client_id if mqtt_settings and mqtt_settings.client_id else f'edgeteach-{device_id}')}-llm"
    return ServeTarget(llm=llm, mqtt=mqtt_settings, device_id=device_id, topic_prefix=prefix, client_id=client_id, pipeline_kinds=kinds,
                       insecure_no_key=insecure_no_key)


class LlmServer:
    """HTTP API, optional MQTT interface and the model in one object; `start()` returns once HTTP listens
    (the model then loads: /health says 503 until it is ready)."""

    def __init__(self, target: ServeTarget) -> None:
        self.target = target
        # Only the config's own pipelines: a state published under another name is not this device's.
        self.sensors = SensorContext(target.topic_prefix, target.llm.sensor_max_age_s, target.pipeline_kinds,
                                     pipelines=target.pipeline_kinds) if target.mqtt else None
        self.core = LlmCore(target.llm, self.sensors)
        self.http: LlmHttpServer | None = None
        self.conn: Any = None
        self._topics: Any = None

    def start(self) -> None:
        if problem := exposure_problem(self.target.llm.host, self.target.llm.api_key, self.target.insecure_no_key):
            raise ServeConfigError(problem)
        if self.target.insecure_no_key and self.target.llm.api_key is None and not is_loopback(self.target.llm.host):
            log.warning("--insecure-no-key: the LLM API on %s needs no key; anyone on the network can use it", self.target.llm.host)
        try:
            self.http = LlmHttpServer(self.core, self.target.llm.host, self.target.llm.port)
        except OSError as exc:
            raise ServeConfigError(f"cannot listen on {self.target.llm.host}:{self.target.llm.port} ({exc.strerror}); "
                                   "is another `edge llm serve` running? choose another llm.port / --port") from None
        self.http.start()
        if self.target.mqtt is not None:
            from edge.llm.mqtt_api import LlmTopics, MqttLlmApi
            from edge.mqtt.connection import MqttConfigError, MqttConnection, OutgoingMessage

            self._topics = LlmTopics(self.target.topic_prefix)
            try:
                self.conn = MqttConnection(self.target.mqtt, client_id=self.target.client_id,
                                           will=OutgoingMessage(self._topics.status, b"offline", qos=1, retain=True))
            except MqttConfigError as exc:
                self.http.stop()
                raise ServeConfigError(str(exc)) from None
            MqttLlmApi(self.core, self.conn, self._topics, self.target.mqtt.max_payload_bytes).attach(self.sensors)
            self.conn.add_connect_listener(self._announce)
            self.conn.start()
            log.info("LLM on MQTT %s:%d: requests on %s, sensor states from %s", self.target.mqtt.host, self.target.mqtt.port,
                     self._topics.request, self.sensors.topic_filter if self.sensors else "-")

    def _announce(self) -> None:
        if self.conn is not None and self.core.ready:
            self.conn.publish(self._topics.status, b"online", qos=1, retain=True)

    def load(self) -> None:
        self.core.load()
        self._announce()

    def stop(self) -> None:
        if self.http is not None:
            self.http.stop()
        self.core.stop()
        if self.conn is not None:
            self.conn.stop()


def serve(target: ServeTarget) -> int:
    """Runs until SIGTERM/SIGINT. Returns the process exit code."""
    from edge.host.systemd import SystemdNotifier

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = LlmServer(target)
    try:
        server.start()
    except ServeConfigError as exc:
        log.error("%s", exc)
        return 2
    notifier = SystemdNotifier()
    try:
        try:
            server.load()
        except ModelLoadError as exc:
            log.error("cannot start the LLM: %s", exc)
            return 1
        notifier.ready()
        log.info("LLM ready: model %s", server.core.model_name)
        stop.wait()
        notifier.stopping()
        return 0
    finally:
        server.stop()
