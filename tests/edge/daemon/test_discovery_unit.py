"""edge/daemon/discovery.py with a fake publish function that records topic, payload, QoS, retain and
`essential`: which Home Assistant configs exist after each change, and that vanished pipelines are
removed with an empty retained payload (Home Assistant otherwise keeps stale sensors)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge import __version__
from edge.daemon.discovery import Discovery, object_id
from edge.mqtt.connection import IncomingMessage
from edge.mqtt.topics import Topics

TOPICS = Topics("edgeteach/pi")


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes, int, bool, bool]] = []
        self.subscriptions: list[tuple[str, Any, int]] = []

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, essential: bool = False) -> bool:
        self.calls.append((topic, payload, qos, retain, essential))
        return True

    def subscribe(self, topic_filter: str, handler: Any, qos: int = 1, worker: str = "default") -> None:
        self.subscriptions.append((topic_filter, handler, qos))

    def retained(self) -> dict[str, bytes]:
        """What a broker would hold: the last retained payload per topic, empty ones deleting it."""
        held: dict[str, bytes] = {}
        for topic, payload, _, retain, _ in self.calls:
            if retain:
                if payload:
                    held[topic] = payload
                else:
                    held.pop(topic, None)
        return held

    def take(self) -> list[tuple[str, bytes, int, bool, bool]]:
        calls, self.calls = self.calls, []
        return calls


def make(prefix: str = "homeassistant", enabled: bool = True) -> tuple[Discovery, Recorder]:
    rec = Recorder()
    return Discovery(rec, TOPICS, "pi", prefix=prefix, enabled=enabled), rec  # type: ignore[arg-type]


DOOR = ["homeassistant/sensor/pi_door/config", "homeassistant/sensor/pi_door_confidence/config"]
YARD = ["homeassistant/sensor/pi_yard/config", "homeassistant/sensor/pi_yard_confidence/config"]


def test_object_id_keeps_safe_characters_and_joins_with_underscores() -> None:
    assert object_id("pi", "door") == "pi_door"
    assert object_id("my pi", "front door!", "confidence") == "my_pi_front_door__confidence"  # "!" -> "_", then the joining "_"
    assert object_id("a-b", "c_d", "É+/x") == "a-b_c_d__x"  # "É+/" is one run -> one "_"
    assert object_id("x", "a..b") == "x_a_b"  # a run of unsafe characters is one underscore
    assert object_id("Pi4", "FrontDoor") == "Pi4_FrontDoor"  # upper case is kept


def test_config_topics_per_pipeline() -> None:
    d, _ = make()
    assert d.config_topics("door") == DOOR
    d, _ = make(prefix="ha/")
    assert d.config_topics("front door") == ["ha/sensor/pi_front_door/config", "ha/sensor/pi_front_door_confidence/config"]
    assert d.ha_status_topic == "ha/status"


def test_set_pipelines_publishes_both_configs_retained_and_essential() -> None:
    d, rec = make()
    d.set_pipelines({"door": "camera"})
    calls = rec.take()
    assert [(t, q, r, e) for t, _, q, r, e in calls] == [(DOOR[0], 1, True, True), (DOOR[1], 1, True, True)]
    assert d.published == 2
    label, confidence = (json.loads(p) for _, p, *_ in calls)
    device = {"identifiers": ["edgeteach_pi"], "name": "EdgeTeach pi", "manufacturer": "EdgeTeach", "model": "edge daemon",
              "sw_version": __version__}
    availability = {"availability_topic": "edgeteach/pi/status", "payload_available": "online", "payload_not_available": "offline"}
    assert label == {
        "name": "door sees",
        "unique_id": "edgeteach_pi_door",
        "object_id": "pi_door",
        "state_topic": "edgeteach/pi/door/state",
        "value_template": "{{ value_json.label }}",
        "json_attributes_topic": "edgeteach/pi/door/state",
        "json_attributes_template": "{{ {'scores': value_json.scores, 'confidence': value_json.confidence, 'model': "
        "value_json.model} | tojson }}",
        "icon": "mdi:camera",
        "device": device,
        **availability,
    }
    assert confidence == {
        "name": "door confidence",
        "unique_id": "edgeteach_pi_door_confidence",
        "object_id": "pi_door_confidence",
        "state_topic": "edgeteach/pi/door/state",
        "value_template": "{{ (value_json.confidence * 100) | round(1) }}",
        "unit_of_measurement": "%",
        "state_class": "measurement",
        "icon": "mdi:percent",
        "device": device,
        **availability,
    }


def test_a_microphone_pipeline_hears() -> None:
    d, _ = make()
    label, confidence = d.configs("bird", "microphone")
    assert label["name"] == "bird hears" and label["icon"] == "mdi:microphone"
    assert confidence["name"] == "bird confidence"


def test_a_removed_pipeline_gets_an_empty_retained_config() -> None:
    # planted bug: removed pipelines left in Home Assistant -> stale sensors
    d, rec = make()
    d.set_pipelines({"door": "camera", "yard": "camera"})
    assert set(rec.retained()) == set(DOOR + YARD)
    rec.take()
    d.set_pipelines({"door": "camera"})
    calls = rec.take()
    removals = [(t, q, r, e) for t, p, q, r, e in calls if p == b""]
    assert removals == [(YARD[0], 1, True, True), (YARD[1], 1, True, True)]
    assert {t for t, p, *_ in calls if p} == set(DOOR)  # the remaining one is re-published
    rec.calls = calls
    assert set(rec.retained()) == set(DOOR)


def test_replacing_every_pipeline_removes_all_old_configs() -> None:
    d, rec = make()
    d.set_pipelines({"door": "camera"})
    d.set_pipelines({"yard": "microphone"})
    assert set(rec.retained()) == set(YARD)
    d.set_pipelines({})
    assert rec.retained() == {}


def test_publish_all_when_disabled_removes_every_config() -> None:
    d, rec = make(enabled=False)
    d.set_pipelines({"door": "camera", "yard": "microphone"})
    calls = rec.take()
    assert sorted(t for t, *_ in calls) == sorted(DOOR + YARD)
    assert all(p == b"" and q == 1 and r and e for _, p, q, r, e in calls)
    assert d.published == 0


def test_switching_discovery_off_removes_what_was_published() -> None:
    d, rec = make()
    d.set_pipelines({"door": "camera"})
    d.enabled = False
    d.publish_all()
    assert rec.retained() == {}


def test_home_assistant_coming_online_gets_the_configs_again(caplog: pytest.LogCaptureFixture) -> None:
    d, rec = make()
    d.subscribe()
    topic, handler, qos = rec.subscriptions[0]
    assert (topic, qos) == ("homeassistant/status", 1) and handler == d._on_ha_status
    d.set_pipelines({"door": "camera"})
    rec.take()
    for payload in (b"offline", b"onlineish", b""):
        handler(IncomingMessage(topic="homeassistant/status", payload=payload))
    assert rec.take() == []
    with caplog.at_level("INFO", logger="edge.daemon.discovery"):
        handler(IncomingMessage(topic="homeassistant/status", payload=b" ONLINE\n"))
    assert [t for t, *_ in rec.take()] == DOOR
    assert [r.getMessage() for r in caplog.records] == ["Home Assistant came online: re-publishing discovery configs"]
    assert d.published == 4


def test_home_assistant_online_while_disabled_publishes_nothing() -> None:
    d, rec = make(enabled=False)
    d.set_pipelines({"door": "camera"})
    rec.take()
    d._on_ha_status(IncomingMessage(topic="homeassistant/status", payload=b"online"))
    assert rec.take() == []


@pytest.mark.parametrize("prefix", ["homeassistant", "homeassistant/", "homeassistant//"])
def test_prefix_trailing_slash_is_dropped(prefix: str) -> None:
    d, _ = make(prefix=prefix)
    assert d.config_topics("door") == DOOR and d.ha_status_topic == "homeassistant/status"


def test_only_slashes_are_stripped_from_the_prefix() -> None:
    d, _ = make(prefix="HAX/")
    assert d.ha_status_topic == "HAX/status"


def test_defaults() -> None:
    rec = Recorder()
    d = Discovery(rec, TOPICS, "pi")  # type: ignore[arg-type]
    assert d.enabled is True and d.ha_status_topic == "homeassistant/status" and d.published == 0
