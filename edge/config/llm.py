"""The `llm:` section: the local LLM that `edge llm serve` runs (edge.llm reads it; `edge run` starts that
service when `enabled`)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edge.core.hosts import is_loopback


class LlmSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="the device runs the local LLM server (`edge llm serve`)")
    run_by: Literal["daemon", "systemd"] = Field(
        "daemon",
        description="who owns the LLM server process when enabled: 'daemon' = `edge run` starts it as its child; "
        "'systemd' = edgeteach-llm.service runs it (under that unit's memory and CPU limits) and `edge run` does not "
        "start one. The installer writes 'systemd'",
    )
    model: str | None = Field(None, description="path to a GGUF file (relative paths: next to the config file)")
    model_sha256: str | None = Field(None, description="SHA-256 of the GGUF, checked at load when given (`edge llm pull` prints it)")
    model_name: str | None = Field(None, description="name shown in /v1/models and responses (default: the file name without .gguf)")
    context_size: int = Field(2048, ge=128, description="tokens of context; a longer prompt is refused with HTTP 400")
    threads: int = Field(0, ge=0, description="CPU threads for generation; 0 = all cores")
    gpu_layers: int = Field(0, ge=-1, description="layers offloaded to the GPU (Jetson); -1 = all")
    chat_format: str | None = Field(
        None,
        description="how chat messages become a prompt. Empty: the GGUF's own chat template; a GGUF without one gets "
        "'gemma' for Gemma models, else 'chatml'. Or a llama-cpp-python format name (chatml, gemma, llama-2, llama-3, "
        "mistral-instruct, ...)",
    )
    host: str = Field("127.0.0.1", description="HTTP listen address; 0.0.0.0 exposes the API to the network (set api_key then)")
    port: int = Field(8080, ge=1, le=65535)
    api_key: str | None = Field(
        None,
        description="when set, HTTP requests need `Authorization: Bearer <api_key>`. Leave it out for no key (only on "
        "127.0.0.1); an empty key is an error, not 'no key'",
    )
    insecure_no_key: bool = Field(
        False,
        description="serve a non-loopback host without api_key (anyone on the network may use the model); without it such "
        "a config is refused",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="extra names clients may use in the Host header (e.g. a DNS name of the device). Always allowed: "
        "any IP address, localhost, the device's hostname and <hostname>.local; '*' allows any name",
    )
    http_idle_timeout_s: float = Field(10.0, gt=0, le=3600,
                                       description="an HTTP connection that has not sent a complete request within this "
                                       "many seconds (after connecting, or after its last answer) is closed")
    http_max_connections: int = Field(64, ge=2, le=10000,
                                      description="open HTTP connections at most; the idlest is closed to make room, and "
                                      "when all have a request in flight a new one gets 503")
    queue_size: int = Field(4, ge=1, description="requests waiting behind the running one; beyond it: HTTP 429 / MQTT error")
    max_tokens: int = Field(512, ge=1, description="ceiling for any request's max_tokens (and the default)")
    temperature: float = Field(0.7, ge=0.0, le=2.0, description="default sampling temperature; 0 = always the most likely token")
    request_timeout_s: float = Field(120.0, gt=0, description="a request queued + generating longer than this is stopped")
    sensor_context: bool = Field(True, description="add the live classifier states to the system prompt by default")
    sensor_max_age_s: float = Field(600.0, gt=0, description="states older than this are left out of the sensor context")
    mqtt: bool = Field(True, description="also answer requests on <topic_prefix>/llm/request over MQTT")
    mqtt_stream_interval_s: float = Field(0.1, ge=0.0, le=10.0,
                                          description="streamed MQTT answers: at most one chunk message per this many "
                                          "seconds (0 = one per token)")

    @field_validator("api_key")
    @classmethod
    def _api_key_not_empty(cls, value: str | None) -> str | None:
        # An empty key used to mean "auth off": a typo or an unset variable must not open the API.
        if value is None:
            return None
        if not value.strip():
            raise ValueError("is empty: give a long random secret (e.g. `openssl rand -hex 16`), or leave the key out "
                             "for no authentication (only on 127.0.0.1)")
        if value != value.strip() or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
            raise ValueError("must have no spaces or control characters (it travels in an HTTP header)")
        return value

    @field_validator("model_sha256")
    @classmethod
    def _sha256_hex(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError("must be 64 hexadecimal digits (the output of `sha256sum FILE` or `edge llm pull`)")
        return value


def exposure_problem(host: str, api_key: str | None, insecure_no_key: bool) -> str | None:
    """Why the API must not start as configured, or None. Off loopback, anyone on the network reaches it:
    without a key they could use the model, read the sensor states and fill the queue."""
    if api_key is None and not is_loopback(host) and not insecure_no_key:
        return (f"llm.host {host} is reachable from the network but llm.api_key is not set: set llm.api_key (clients "
                "then send `Authorization: Bearer <key>`; `openssl rand -hex 16` makes one), or listen on 127.0.0.1, or, "
                "if everyone on this network may use the model, set llm.insecure_no_key: true (or start `edge llm serve` "
                "with --insecure-no-key)")
    return None
