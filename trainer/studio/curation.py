"""Curating a project's classes and looking at the model's mistakes: the class order (kept in studio.json, and
the order of the labels in the bundle, trainer.class_order) and the validation samples behind one cell of
the confusion matrix, from the trainer's own report (its `validation_samples`, trainer.finish)."""

from __future__ import annotations

import json
from typing import Any

from trainer.class_order import ordered, read_order, write_order
from trainer.studio.projects import Project, ProjectError, ProjectStore

MAX_CELL_SAMPLES = 200  # thumbnails one cell shows; the count says when there are more


def class_order(project: Project) -> list[str]:
    """The project's classes in their saved order, then any others alphabetically."""
    return list(ordered(project.classes(), read_order(project.root)))


def save_order(store: ProjectStore, project: Project, order: object) -> list[str]:
    """Checks `order` names existing classes, each once, and saves it; returns the full order now in force."""
    if not isinstance(order, list) or not all(isinstance(name, str) for name in order):
        raise ProjectError('send the classes in their new order: {"classes": ["first", "second", ...]}')
    if len(order) > store.limits.max_classes:
        raise ProjectError(f"a project holds at most {store.limits.max_classes} classes; {len(order)} were sent")
    if len(set(order)) != len(order):
        raise ProjectError("each class may appear only once in the order")
    with store.lock:
        existing = project.classes()
        unknown = [name for name in order if name not in existing]
        if unknown:
            raise ProjectError(f"project {project.name!r} has no class {unknown[0][:60]!r}; reload the page", 409)
        full = list(ordered(existing, order))
        write_order(project.root, full)
    return full


def _report(project: Project) -> dict[str, Any]:
    path = project.model_dir / "report.json"
    if not path.is_file():
        raise ProjectError(f"project {project.name!r} has no trained model yet: train it first", 404)
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def confusion_cell(project: Project, true: object, predicted: object) -> dict[str, Any]:
    """The validation samples of class `true` that the model (fp32) called `predicted`: each one's class and
    sample name (to fetch it from the sample routes) and whether it is still in the project."""
    report = _report(project)
    labels = report["labels"]
    for what, value in (("true", true), ("predicted", predicted)):
        if value not in labels:
            raise ProjectError(f"{what} must be one of the model's classes ({', '.join(labels)}), got {str(value)[:60]!r}")
    if "validation_samples" not in report:
        raise ProjectError("this model was trained before the Studio listed its samples: train it again to see them", 409)
    matching = [s for s in report["validation_samples"] if s["true"] == true and s["predicted"] == predicted]
    listed: dict[str, set[str]] = {}  # each class folder read once

    def exists(class_name: str, sample: str) -> bool:  # only a sample the project lists, never a made-up path
        if class_name not in listed:
            try:
                listed[class_name] = set(project.samples(class_name))
            except ProjectError:  # the class was deleted or renamed since the training
                listed[class_name] = set()
        return sample in listed[class_name]

    samples = []
    for entry in matching[:MAX_CELL_SAMPLES]:
        class_name, _, sample = entry["file"].partition("/")
        samples.append({"file": entry["file"], "class": class_name, "sample": sample, "exists": exists(class_name, sample)})
    return {"true": true, "predicted": predicted, "total": len(matching), "samples": samples}
