"""The `health:` section: the HTTP probe and Prometheus endpoint of `edge run`."""

from __future__ import annotations

from pydantic import Field

from edge.config.base import StrictModel


class HealthSettings(StrictModel):
    enabled: bool = Field(True, description="serve /healthz and Prometheus /metrics over HTTP")
    host: str = Field("127.0.0.1", description="bind address; 0.0.0.0 exposes it to the network")
    port: int = Field(8321, ge=1, le=65535, description="a TCP port")
