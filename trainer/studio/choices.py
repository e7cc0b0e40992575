"""What the "Advanced" panel offers beyond the numbers: the backbones of the trainer's own registry (with the
registry's descriptions, so a backbone added there appears here without an edit), the fine-tune depths, and
where trainings run on this computer (said on the page, so a teacher knows what to expect of the wait)."""

from __future__ import annotations

import functools
import os

from trainer.image.backbones import BUILDERS
from trainer.studio.limits import DEFAULT_BACKBONE, DEFAULT_FINE_TUNE, MAX_FINE_TUNE


def backbones() -> list[dict[str, str]]:
    """The registry's backbones in its order, each with its description (empty when it has none)."""
    return [{"name": name, "description": str(getattr(builder, "description", ""))} for name, builder in BUILDERS.items()]


@functools.cache
def where_training_runs() -> str:
    """One sentence for the page. The trainer runs the pretrained network through ONNX Runtime's CPU provider
    and trains the head with PyTorch on the CPU (trainer/image/embeddings.py, trainer/head.py): it uses no
    graphics card even when PyTorch sees one, and the page says so rather than promise a speed-up."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    text = f"Trainings run one at a time on this computer's processor (CPU, {cores} cores)."
    if torch.cuda.is_available():
        text += f" PyTorch sees a graphics card ({torch.cuda.get_device_name(0)}), but the trainer does not use it yet."
    return text


def advanced_choices() -> dict[str, object]:
    return {"backbones": backbones(), "default_backbone": DEFAULT_BACKBONE, "fine_tune_max": MAX_FINE_TUNE,
            "default_fine_tune": DEFAULT_FINE_TUNE, "device": where_training_runs()}
