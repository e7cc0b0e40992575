"""The `mqtt:` section: the broker connection (edge.mqtt.connection), topic prefix, Home Assistant discovery."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TlsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    ca_certs: str | None = Field(None, description="CA certificate file (PEM) that signed the broker's certificate")
    certfile: str | None = Field(None, description="client certificate (PEM) for mutual TLS")
    keyfile: str | None = Field(None, description="client private key (PEM) for mutual TLS")
    insecure: bool = Field(False, description="skip hostname verification (testing only)")


class DiscoverySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    prefix: str = Field("homeassistant", description="Home Assistant discovery prefix")


class MqttSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "localhost"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    password_file: str | None = Field(None, description="read the password from this file instead of the config")
    client_id: str | None = Field(None, description="default: edgeteach-<device_id>")
    protocol: Literal["5", "3.1.1"] = "5"
    keepalive: int = Field(30, ge=5, le=3600)
    topic_prefix: str | None = Field(None, description="default: edgeteach/<device_id>")
    reply_prefix: str | None = Field(None, description="MQTT 5 response topics and `reply_to` of commands and LLM requests must "
                                     "start with this; others get no reply (default: <topic_prefix>/replies/)")
    tls: TlsSettings = TlsSettings()
    reconnect_min_delay: float = Field(1.0, gt=0)
    reconnect_max_delay: float = Field(30.0, gt=0)
    queue_limit: int = Field(1000, ge=1, description="QoS 1 messages kept in memory while the broker is unreachable")
    max_payload_bytes: int = Field(65536, ge=256, description="larger command payloads are refused with an error reply")
    stats_interval: float = Field(10.0, gt=0, description="seconds between stats messages")
    discovery: DiscoverySettings = DiscoverySettings()


MAX_REQUEST_ID_CHARS = 128  # longer request "id"s are refused (commands and LLM requests)


def default_reply_prefix(topic_prefix: str, reply_prefix: str | None) -> str:
    """The prefix every reply topic must start with: `mqtt.reply_prefix`, else `<topic_prefix>/replies/`."""
    return reply_prefix if reply_prefix is not None else f"{topic_prefix.rstrip('/')}/replies/"


def reply_topic_problem(topic: object, prefix: str) -> str | None:
    """Why a requested reply topic (MQTT 5 response topic, `reply_to`) is refused, or None when it is fine:
    a requester must not make the device publish on someone else's topics (commands of another device,
    Home Assistant discovery, retained states)."""
    if not isinstance(topic, str) or not topic:
        return "the reply topic must be a non-empty string"
    if any(c in topic for c in "+#\0") or topic.startswith("$"):
        return f"the reply topic {topic[:200]!r} contains a wildcard (+, #), a NUL or starts with $"
    if len(topic.encode("utf-8")) > 65535:
        return "the reply topic is too long"
    if not topic.startswith(prefix) or topic == prefix.rstrip("/"):
        return f"the reply topic {topic[:200]!r} is not under {prefix!r} (mqtt.reply_prefix)"
    return None
