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


class SnapshotSettings(BaseModel):
    """The `snapshot` command sends camera images: to the requester only, small, and not too often (issue 12)."""

    model_config = ConfigDict(extra="forbid")

    max_side: int = Field(640, ge=16, le=4096, description="snapshots are downscaled so that their longer side is at most this "
                          "many pixels (a smaller image is sent as it is)")
    min_interval_s: float = Field(1.0, ge=0.1, le=3600, description="at most one snapshot per this many seconds for the whole "
                                  "device; requests in between are refused with an error that carries no image")


CommandName = Literal["ping", "status", "pause", "resume", "set", "reload", "snapshot"]
COMMAND_NAMES: tuple[CommandName, ...] = ("ping", "status", "pause", "resume", "set", "reload", "snapshot")
# Without broker credentials the broker is most likely open to anyone on the network: then the two commands that
# change the model or show the camera stay off unless the config allows them by name.
OPEN_BROKER_COMMANDS: tuple[CommandName, ...] = ("ping", "status", "pause", "resume", "set")


class CommandSettings(BaseModel):
    """Which `<prefix>/cmd/<name>` commands the device carries out (issue 12: commands can be limited)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="false: the device does not even subscribe to its command topics")
    allow: list[CommandName] | None = Field(
        None,
        description="the commands carried out; others get an error reply. Default: all when the device logs in to the "
        "broker (username or TLS client certificate), else all but reload and snapshot",
    )


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
    queue_max_bytes: int = Field(8 * 1024 * 1024, ge=65536, description="payload bytes of those messages kept in memory at most; "
                                 "a message that would go over (or over queue_limit) is refused and counted")
    max_payload_bytes: int = Field(65536, ge=256, le=64 * 1024 * 1024, description="larger command and LLM request payloads are "
                                   "refused; the broker is asked (MQTT 5) not to send any packet over this plus "
                                   "64 KiB of room for the topic and properties")
    stats_interval: float = Field(10.0, gt=0, description="seconds between stats messages")
    commands: CommandSettings = CommandSettings()
    snapshot: SnapshotSettings = SnapshotSettings()
    discovery: DiscoverySettings = DiscoverySettings()


def allowed_commands(settings: MqttSettings) -> frozenset[str]:
    """The commands this device carries out (mqtt.commands; the default depends on broker credentials)."""
    if not settings.commands.enabled:
        return frozenset()
    if settings.commands.allow is not None:
        return frozenset(settings.commands.allow)
    logs_in = bool(settings.username) or bool(settings.tls.enabled and settings.tls.certfile)
    return frozenset(COMMAND_NAMES if logs_in else OPEN_BROKER_COMMANDS)


MAX_REQUEST_ID_CHARS = 128  # longer request "id"s are refused (commands and LLM requests)


# Room above max_payload_bytes in the MQTT 5 Maximum Packet Size the client announces at CONNECT: the fixed
# header, a topic (the spec allows up to 64 KiB) and properties (response topic, correlation data). A payload
# a little over max_payload_bytes still arrives and gets an error reply that says so; megabytes never leave
# the broker.
PACKET_HEADROOM_BYTES = 64 * 1024


def max_packet_bytes(max_payload_bytes: int) -> int:
    """The Maximum Packet Size announced at CONNECT (MQTT 5) and enforced on arrival (MQTT 3.1.1, whose
    broker cannot be told): `mqtt.max_payload_bytes` + PACKET_HEADROOM_BYTES."""
    return max_payload_bytes + PACKET_HEADROOM_BYTES


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
    try:
        size = len(topic.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate ("\udcff" in the JSON): no MQTT topic can hold it
        return "the reply topic is not valid Unicode (a lone surrogate escape)"
    if size > 65535:
        return "the reply topic is too long"
    if not topic.startswith(prefix) or topic == prefix.rstrip("/"):
        return f"the reply topic {topic[:200]!r} is not under {prefix!r} (mqtt.reply_prefix)"
    return None
