"""`trainer train --compare-backbones`: the same head training on each backbone, and what each costs on a device.

Each backbone is trained with the run's own settings and split, so the accuracies compare like for like.
Latency is what the device pays per camera frame: batch 1, one ONNX Runtime thread (intra_op_num_threads=1),
through the device's own session code (edge.core.session). The engines are timed round-robin (one call of
each in turn, median of the runs) so that a busy machine slows all of them alike and the ratios stay fair.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from edge.core.bundle import VARIANT_FILES, load_bundle
from edge.core.session import make_session
from trainer.image.backbones import BUILDERS
from trainer.image.job import ImageTrainOptions, train_image_classifier

LATENCY_RUNS = 20  # medians of 20 single-image calls: stable to a few % on the busy 2-core box
WARMUP_RUNS = 3  # the first calls allocate buffers and pick kernels
COMPARED = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


class BackboneRow(TypedDict):
    backbone: str
    description: str
    input_size: list[int]
    accuracy: dict[str, float]  # variant -> validation accuracy
    ms_per_image: dict[str, float]  # variant -> median ms, batch 1, one thread
    size_mb: dict[str, float]  # variant -> model file size
    chosen: bool  # the bundle this run wrote


def latencies_ms(bundles: dict[str, Path], runs: int = LATENCY_RUNS) -> dict[str, dict[str, float]]:
    """Median ms per image (batch 1, one thread) of every variant of every bundle, measured round-robin."""
    engines: dict[tuple[str, str], Callable[[], object]] = {}
    for name, folder in bundles.items():
        for variant, file in VARIANT_FILES.items():
            if not (folder / file).is_file():
                continue
            session = make_session(folder / file, threads=1)
            meta = session.get_inputs()[0]
            side = [int(d) for d in meta.shape[1:]]
            feed = {meta.name: np.random.default_rng(0).integers(0, 256, (1, *side), dtype=np.uint8)}
            engines[(name, variant)] = partial(session.run, None, feed)
    for run in engines.values():
        for _ in range(WARMUP_RUNS):
            run()
    times: dict[tuple[str, str], list[float]] = {key: [] for key in engines}
    for _ in range(max(1, runs)):
        for key, run in engines.items():
            started = time.perf_counter()
            run()
            times[key].append((time.perf_counter() - started) * 1000)
    result: dict[str, dict[str, float]] = {name: {} for name in bundles}
    for (name, variant), values in times.items():
        result[name][variant] = statistics.median(values)
    return result


def sizes_mb(folder: Path) -> dict[str, float]:
    return {v: (folder / f).stat().st_size / 1e6 for v, f in VARIANT_FILES.items() if (folder / f).is_file()}


def compare_backbones(opts: ImageTrainOptions, report: dict[str, Any], names: Sequence[str] = COMPARED,
                      runs: int = LATENCY_RUNS) -> list[BackboneRow]:
    """Rows for `names` (the run's own backbone first): `report` is the run that wrote opts.out_dir; the
    other backbones are trained with the same options into a temporary folder and scored the same way."""
    chosen = str(report["backbone"])
    reports = {chosen: report}
    with tempfile.TemporaryDirectory(prefix="edgeteach-compare-") as tmp:
        bundles = {chosen: Path(opts.out_dir)}
        for name in names:
            if name in reports:
                continue
            bundles[name] = Path(tmp) / name
            reports[name] = train_image_classifier(replace(opts, backbone=name, weights=None, out_dir=bundles[name], on_epoch=None))
        ms = latencies_ms(bundles, runs)
        rows: list[BackboneRow] = []
        for name, folder in bundles.items():
            rows.append(BackboneRow(
                backbone=name,
                description=BUILDERS[name].description,
                input_size=list(load_bundle(folder).image_size),
                accuracy={v: float(m["accuracy"]) for v, m in reports[name]["metrics"].items()},
                ms_per_image=ms[name],
                size_mb=sizes_mb(folder),
                chosen=name == chosen,
            ))
    return rows


def _cell(values: dict[str, float], variant: str, fmt: str) -> str:
    return fmt.format(values[variant]) if variant in values else "-"


def backbone_table(rows: Sequence[BackboneRow]) -> str:
    """The printed table (the report's HTML shows the same rows)."""
    head = (f"{'backbone':<22}{'input':>7}{'val acc fp32':>14}{'int8':>8}{'ms/image fp32':>15}{'int8':>8}"
            f"{'size MB fp32':>14}{'int8':>7}")
    lines = ["backbones on this data (ms: batch 1, one ONNX Runtime thread; * = this bundle)", head]
    for row in rows:
        side = "x".join(str(s) for s in row["input_size"]) or "-"
        lines.append(
            f"{row['backbone'] + (' *' if row['chosen'] else ''):<22}{side:>7}"
            f"{_cell({k: 100 * v for k, v in row['accuracy'].items()}, 'fp32', '{:.1f} %'):>14}"
            f"{_cell({k: 100 * v for k, v in row['accuracy'].items()}, 'int8', '{:.1f} %'):>8}"
            f"{_cell(row['ms_per_image'], 'fp32', '{:.1f}'):>15}{_cell(row['ms_per_image'], 'int8', '{:.1f}'):>8}"
            f"{_cell(row['size_mb'], 'fp32', '{:.1f}'):>14}{_cell(row['size_mb'], 'int8', '{:.1f}'):>7}"
        )
    return "\n".join(lines)
