"""What every Studio route module works on: one object made by `app.create_app`, handed to each feature's
`routes(studio)`, so a feature reaches the projects, the training queue and the limits without globals."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainer.studio.jobs import TrainingQueue
from trainer.studio.limits import StudioLimits
from trainer.studio.projects import ProjectStore
from trainer.studio.send import Sender


@dataclass(frozen=True)
class Studio:
    store: ProjectStore
    trainings: TrainingQueue
    limits: StudioLimits
    cache_dir: Path | None  # the trainer's embedding cache (None: the trainer's default)
    llm_models: Path | None = None  # the LLM playground's GGUF folder (None: limits.DEFAULT_LLM_MODELS)
    sender: Sender | None = None  # "send to devices" (None: no --fleet-host given, the Export tab shows commands)
