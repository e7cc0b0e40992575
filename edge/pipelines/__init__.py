"""Pipelines: a source, a model and post-processing, emitting Decisions to the daemon."""

from __future__ import annotations

from edge.config.pipelines import CameraPipelineConfig, MicrophonePipelineConfig
from edge.pipelines.base import Decision, DecisionCallback, Pipeline
from edge.sources.base import StatusCallback


def build_pipeline(pipeline_cfg: CameraPipelineConfig | MicrophonePipelineConfig, on_decision: DecisionCallback | None = None,
                   on_status: StatusCallback | None = None) -> Pipeline:
    """The pipeline for one `pipelines:` entry of the config, model loaded and checked (not started).
    Raises edge.core.bundle.BundleError when the bundle is missing, bad or of the wrong task."""
    if pipeline_cfg.kind == "camera":
        from edge.pipelines.vision import VisionPipeline

        return VisionPipeline(pipeline_cfg, on_decision, on_status)
    if pipeline_cfg.kind == "microphone":
        from edge.pipelines.audio import AudioPipeline

        return AudioPipeline(pipeline_cfg, on_decision, on_status)
    raise ValueError(f"pipeline {pipeline_cfg.name!r}: unknown kind {pipeline_cfg.kind!r}")  # a config built by hand


__all__ = ["Decision", "DecisionCallback", "Pipeline", "StatusCallback", "build_pipeline"]
