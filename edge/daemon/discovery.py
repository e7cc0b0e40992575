"""Home Assistant MQTT discovery: each pipeline appears as a device's sensors without any HA YAML.

Per pipeline, retained under `<discovery prefix>/sensor/<device>_<pipeline>[_confidence]/config`:
  - a sensor whose state is the decided label (the full state JSON as attributes);
  - a sensor with the confidence in %.
Both use `<prefix>/status` as availability, so HA shows them unavailable when the daemon is offline
(Last Will). The configs are re-published when Home Assistant announces `online` on
`<discovery prefix>/status` (it forgets non-retained configs on restart), and removed with an empty
retained payload when discovery is switched off or a pipeline disappears.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from edge import __version__ as EDGE_VERSION
from edge.daemon.publisher import to_json
from edge.mqtt.connection import IncomingMessage, MqttConnection
from edge.mqtt.topics import Topics

log = logging.getLogger(__name__)


def object_id(*parts: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]+", "_", "_".join(parts))


class Discovery:
    def __init__(self, connection: MqttConnection, topics: Topics, device_id: str, prefix: str = "homeassistant",
                 enabled: bool = True) -> None:
        self._conn = connection
        self._topics = topics
        self._device_id = device_id
        self._prefix = prefix.rstrip("/")
        self.enabled = enabled
        self._pipelines: dict[str, str] = {}  # name -> kind
        self.published = 0

    @property
    def ha_status_topic(self) -> str:
        return f"{self._prefix}/status"

    def subscribe(self) -> None:
        self._conn.subscribe(self.ha_status_topic, self._on_ha_status, qos=1)

    def _on_ha_status(self, message: IncomingMessage) -> None:
        if message.payload.strip().lower() == b"online" and self.enabled:
            log.info("Home Assistant came online: re-publishing discovery configs")
            self.publish_all()

    def config_topics(self, pipeline: str) -> list[str]:
        return [
            f"{self._prefix}/sensor/{object_id(self._device_id, pipeline)}/config",
            f"{self._prefix}/sensor/{object_id(self._device_id, pipeline, 'confidence')}/config",
        ]

    def _device(self) -> dict[str, Any]:
        return {
            "identifiers": [f"edgeteach_{self._device_id}"],
            "name": f"EdgeTeach {self._device_id}",
            "manufacturer": "EdgeTeach",
            "model": "edge daemon",
            "sw_version": EDGE_VERSION,
        }

    def configs(self, pipeline: str, kind: str) -> list[dict[str, Any]]:
        availability = {
            "availability_topic": self._topics.status,
            "payload_available": "online",
            "payload_not_available": "offline",
        }
        what = "sees" if kind == "camera" else "hears"
        label_id = object_id(self._device_id, pipeline)
        return [
            {
                "name": f"{pipeline} {what}",
                "unique_id": f"edgeteach_{label_id}",
                "object_id": label_id,
                "state_topic": self._topics.state(pipeline),
                "value_template": "{{ value_json.label }}",
                "json_attributes_topic": self._topics.state(pipeline),
                "json_attributes_template": "{{ {'scores': value_json.scores, 'confidence': value_json.confidence, 'model': "
                "value_json.model} | tojson }}",
                "icon": "mdi:camera" if kind == "camera" else "mdi:microphone",
                "device": self._device(),
                **availability,
            },
            {
                "name": f"{pipeline} confidence",
                "unique_id": f"edgeteach_{label_id}_confidence",
                "object_id": f"{label_id}_confidence",
                "state_topic": self._topics.state(pipeline),
                "value_template": "{{ (value_json.confidence * 100) | round(1) }}",
                "unit_of_measurement": "%",
                "state_class": "measurement",
                "icon": "mdi:percent",
                "device": self._device(),
                **availability,
            },
        ]

    def set_pipelines(self, pipelines: dict[str, str]) -> None:
        """The pipelines now running (name -> kind): publishes their configs and removes vanished ones."""
        gone = set(self._pipelines) - set(pipelines)
        self._pipelines = dict(pipelines)
        for name in gone:
            self._remove(name)
        self.publish_all()

    def publish_all(self) -> None:
        for name, kind in list(self._pipelines.items()):
            if self.enabled:
                for topic, config in zip(self.config_topics(name), self.configs(name, kind)):
                    self._conn.publish(topic, to_json(config), qos=1, retain=True, essential=True)
                    self.published += 1
            else:
                self._remove(name)

    def _remove(self, pipeline: str) -> None:
        for topic in self.config_topics(pipeline):
            self._conn.publish(topic, b"", qos=1, retain=True, essential=True)
