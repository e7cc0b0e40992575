"""The last step of every training run, whatever the task: the bundle's manifest beside the exported
models, then the report (JSON, plots, HTML) built from the same figures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainer.export import write_bundle
from trainer.report import write_report

MANIFEST_METRIC_KEYS = ("accuracy", "n", "per_class", "precision", "recall", "confusion_matrix")


def write_outputs(
    out_dir: Path,
    *,
    task: str,
    backbone: str,
    labels: Sequence[str],
    input_spec: dict[str, Any],
    preprocessing: dict[str, Any],
    metrics: dict[str, dict[str, Any]],
    test_metrics: Any,
    data_summary: dict[str, Any],
    settings: dict[str, Any],
    history: Any,
    parity: Any,
    quantization: Any,
    timing: dict[str, Any],
    samples: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Writes manifest.json (+ labels.txt) and the report; returns the report."""
    skipped = data_summary.get("skipped", [])
    write_bundle(
        out_dir,
        task=task,
        labels=labels,
        input_spec=input_spec,
        preprocessing=preprocessing,
        metrics={variant: {key: m[key] for key in MANIFEST_METRIC_KEYS} for variant, m in metrics.items()},
        extra={
            "backbone": backbone,
            "training": {**settings, "data": {k: v for k, v in data_summary.items() if k != "skipped"}, "skipped_files": len(skipped)},
            "parity": parity,
            "quantization": quantization,
        },
    )
    report = {
        "task": task,
        "backbone": backbone,
        "labels": list(labels),
        "data": data_summary,
        "history": history,
        "metrics": metrics,
        "test_metrics": test_metrics,
        "parity": parity,
        "quantization": quantization,
        "timing": timing,
        "settings": settings,
        "bundle": str(out_dir),
        # each validation sample's file, true and predicted label (fp32): what a confusion-matrix cell holds
        "validation_samples": samples or [],
    }
    write_report(report, out_dir)
    return report
