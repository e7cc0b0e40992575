"""The bundles a maker may switch to (folders with a manifest under `models_dir`) and the model card of what a
pipeline runs. The list is only a convenience: the reload itself goes through the MQTT command code, which
confines the path to models_dir and validates the bundle."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from edge.pipelines.base import BasePipeline, Pipeline

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MAX_LISTED = 200  # a folder of thousands of bundles still gives a short answer
REPORT = "report.html"
MAX_MANIFEST_BYTES = 1024 * 1024


def bundle_task(folder: Path) -> str | None:
    """The manifest's task ("image" or "audio"), None when it cannot be read: the page offers a camera image
    bundles only. A guess for the list; the reload itself checks the whole bundle."""
    try:
        path = folder / MANIFEST
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            return None
        task = json.loads(path.read_text(encoding="utf-8")).get("task")
    except (OSError, ValueError, AttributeError):
        return None
    return task if isinstance(task, str) else None


def list_bundles(models_dir: Path, depth: int = 2) -> list[dict[str, str | None]]:
    """Bundle folders under `models_dir` (itself included) with their task, as paths relative to it, sorted;
    `depth` levels deep. Hidden folders and symlinks are skipped (a reload would resolve a symlink elsewhere)."""
    found: list[dict[str, str | None]] = []
    root = models_dir.expanduser()

    def walk(folder: Path, level: int) -> None:
        if len(found) >= MAX_LISTED:
            return
        if (folder / MANIFEST).is_file():
            found.append({"path": folder.relative_to(root).as_posix() or ".", "task": bundle_task(folder)})
        if level >= depth:
            return
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))
        except OSError as exc:  # a folder we may not read: list what we can
            log.debug("dashboard: cannot list %s (%s)", folder, exc.strerror)
            return
        for child in children:
            walk(child, level + 1)

    walk(root, 0)
    return found


def report_path(pipeline: Pipeline) -> Path | None:
    """The running bundle's report.html, when it has one."""
    if not isinstance(pipeline, BasePipeline):
        return None
    path = pipeline.classifier.bundle.path / REPORT
    return path if path.is_file() else None


def model_card(pipeline: Pipeline) -> dict[str, Any]:
    """What the page says of the running model: labels, variant, checksum, training date and what made it."""
    if not isinstance(pipeline, BasePipeline):
        return {}
    classifier = pipeline.classifier
    bundle = classifier.bundle
    manifest = bundle.manifest
    metrics = bundle.metrics.get(classifier.variant)
    accuracy = metrics.get("accuracy") if isinstance(metrics, dict) else None
    return {
        "bundle": bundle.path.name,
        "path": str(bundle.path),
        "task": bundle.task,
        "labels": list(bundle.labels),
        "variant": classifier.variant,
        "sha256": classifier.sha256,
        "created_at": manifest.get("created_at"),
        "backbone": manifest.get("backbone"),
        "trainer_version": manifest.get("trainer_version"),
        "source": manifest.get("source"),
        "accuracy": accuracy if isinstance(accuracy, (int, float)) else None,
        "has_report": report_path(pipeline) is not None,
        "settings": pipeline.params(),
    }
