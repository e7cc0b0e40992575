"""LLM settings (the `llm:` section of the config). Owned by edge.llm, embedded in edge.config."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field


class LlmSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="start `edge llm serve` alongside `edge run`")
    model: Optional[str] = Field(None, description="path to a GGUF file")
    model_sha256: Optional[str] = Field(None, description="checked at load when given")
    context_size: int = Field(2048, ge=128)
    threads: int = Field(0, ge=0, description="0 = all cores")
    gpu_layers: int = Field(0, ge=-1, description="layers offloaded to the GPU (Jetson); -1 = all")
    chat_format: Optional[str] = Field(None, description="llama-cpp-python chat format when the GGUF has no template")
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    api_key: Optional[str] = None
    queue_size: int = Field(4, ge=1)
    max_tokens: int = Field(512, ge=1, description="ceiling for any request's max_tokens")
    request_timeout_s: float = Field(120.0, gt=0)
    sensor_context: bool = Field(True, description="add the live classifier states to the system prompt by default")
