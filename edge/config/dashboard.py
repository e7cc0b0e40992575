"""The `dashboard:` section: the web page `edge run` serves (edge/dashboard/): live view, health, controls."""

from __future__ import annotations

from pydantic import Field

from edge.config.base import StrictModel

DEFAULT_PORT = 8090  # beside the health server (8321) and the LLM API (8080), never on them


class DashboardSettings(StrictModel):
    enabled: bool = Field(True, description="serve the device's dashboard (live view, health, controls) over HTTP")
    host: str = Field("127.0.0.1", description="bind address; on any other than 127.0.0.1 (e.g. 0.0.0.0 for the LAN) a "
                      "password_file is required")
    port: int = Field(DEFAULT_PORT, ge=1, le=65535, description="a TCP port")
    password_file: str | None = Field(
        None, min_length=1,
        description="a file whose first line is the dashboard password (relative paths: next to the config file); "
        "required on a network address, optional on 127.0.0.1",
    )
    stream_fps: float = Field(5.0, gt=0, le=30, description="camera frames sent to each open dashboard per second at most "
                              "(encoded only while someone watches)")
