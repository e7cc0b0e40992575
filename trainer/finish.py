"""The last steps of every training run, whatever the task: export -> parity -> int8 -> score -> write.

The image and the sound jobs differ only in what `Finish` holds (the model and its example input, the
parity inputs, the calibration data, the nodes the int8 model keeps float, the scorer); the steps, their
order, their timings and what they write are the same.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edge.core.bundle import VARIANT_FILES
from edge.core.datasets import Sample, Splits
from trainer.export import FLOAT_FIRST_CONVS, check_parity, export_onnx, quantize_int8, remove_stale
from trainer.outputs import write_outputs

log = logging.getLogger(__name__)

# What a scorer adds to the metrics it returns: [[index into the scored samples, predicted label index], ...],
# so the report can say which validation sample the model called what (the Studio's confusion-matrix cells).
PREDICTIONS = "predictions"
MAX_LISTED_SAMPLES = 20_000  # report.json stays a few MB even for a huge validation split


def with_predictions(metrics: dict[str, Any], kept: Sequence[int], predicted: Sequence[int]) -> dict[str, Any]:
    """`metrics` plus what was predicted for each scored sample (`kept`: their indices in the scored list)."""
    metrics[PREDICTIONS] = [[int(i), int(p)] for i, p in zip(kept, predicted)]
    return metrics


def sample_listing(samples: Sequence[Sample], predictions: Sequence[Sequence[int]], labels: Sequence[str],
                   root: Path) -> list[dict[str, str]]:
    """Per scored sample: its file (relative to the data folder, '/'-separated), true and predicted label;
    the first MAX_LISTED_SAMPLES. A file outside the folder (a sound's cut-off part) is named by its file name."""
    listing = []
    for index, predicted in predictions[:MAX_LISTED_SAMPLES]:
        sample = samples[index]
        try:
            name = sample.path.relative_to(root).as_posix()
        except ValueError:
            name = sample.path.name
        listing.append({"file": name, "true": labels[sample.label], "predicted": labels[predicted]})
    return listing


class Timer:
    """Seconds per step, in the order the steps ran (the report's `timing`), and `total` since creation."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - started

    def record(self, name: str, seconds: float) -> None:
        """A step timed elsewhere (the training loops time themselves)."""
        self.seconds[name] = seconds

    def total(self) -> dict[str, float]:
        self.seconds["total"] = time.perf_counter() - self.started
        return self.seconds


def _no_nodes(fp32_path: Path) -> Sequence[str]:
    return ()


@dataclass(frozen=True)
class KeepFloat:
    """What the int8 model keeps float: the first `first_convs` convolutions and the `nodes` named in the
    fp32 graph. With a `label`, the manifest says "<label> (N nodes)" instead of listing them."""

    first_convs: int = FLOAT_FIRST_CONVS
    reduce_range: bool = True  # 7-bit weights (quantize_int8's docstring says when they matter)
    nodes: Callable[[Path], Sequence[str]] = _no_nodes
    label: str | None = None


@dataclass
class Finish:
    """What differs between tasks in the last steps."""

    model: nn.Module  # model input -> probabilities, as exported
    example: torch.Tensor  # one input, for the exporter
    input_name: str
    parity_inputs: Callable[[], np.ndarray]  # a few real inputs, PyTorch vs ONNX Runtime
    calibration_pool: int  # number of training inputs to draw the calibration from
    calibration_size: int  # how many of them (fewer when the pool is smaller)
    calibration: Callable[[np.ndarray], np.ndarray]  # sorted row numbers -> those training inputs
    score: Callable[[Path, list[Sample]], dict[str, Any]]  # one exported variant's metrics on some samples
    keep_float: KeepFloat = field(default_factory=KeepFloat)


def calibration_rows(pool: int, size: int, seed: int) -> np.ndarray:
    """`size` of `pool` training inputs, picked with `seed`, in order."""
    return np.sort(np.random.default_rng(seed).permutation(pool)[:size])


def export_and_score(
    out_dir: Path,
    finish: Finish,
    splits: Splits,
    timer: Timer,
    *,
    int8: bool,
    seed: int,
    task: str,
    backbone: str,
    input_spec: dict[str, Any],
    preprocessing: dict[str, Any],
    data_summary: dict[str, Any],
    settings: dict[str, Any],
    history: Any,
) -> dict[str, Any]:
    """Exports fp32 (checked against PyTorch), quantizes to int8 when asked, scores each variant on the
    validation (and test) split through ONNX Runtime, writes the bundle and the report; returns the report."""
    with timer.step("export"):
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale(out_dir)
        fp32_path = out_dir / VARIANT_FILES["fp32"]
        started = time.perf_counter()
        export_onnx(finish.model, finish.example, fp32_path, input_name=finish.input_name)
        log.debug("exported %s in %.1f s", fp32_path, time.perf_counter() - started)
        parity = check_parity(finish.model, fp32_path, finish.parity_inputs())

    variants = {"fp32": fp32_path}
    quantization: dict[str, Any] = {}
    if int8:
        with timer.step("quantize"):
            keep = finish.keep_float
            calibration = finish.calibration(calibration_rows(finish.calibration_pool, finish.calibration_size, seed))
            variants["int8"] = out_dir / VARIANT_FILES["int8"]
            quantization = quantize_int8(fp32_path, variants["int8"], calibration, nodes_to_exclude=keep.nodes(fp32_path),
                                         float_first_convs=keep.first_convs, reduce_range=keep.reduce_range)
            if keep.label is not None:
                quantization["float_nodes"] = f"{keep.label} ({len(quantization['float_nodes'])} nodes)"

    metrics: dict[str, Any] = {}
    test_metrics: dict[str, Any] = {}
    with timer.step("evaluate"):
        for variant, path in variants.items():
            metrics[variant] = finish.score(path, splits.val)
            if splits.test:
                test_metrics[variant] = finish.score(path, splits.test)
    predictions = {variant: m.pop(PREDICTIONS, []) for variant, m in metrics.items()}
    for m in test_metrics.values():
        m.pop(PREDICTIONS, None)
    listing = sample_listing(splits.val, predictions.get("fp32", []), splits.labels, Path(data_summary["root"]))

    return write_outputs(
        out_dir,
        task=task,
        backbone=backbone,
        labels=splits.labels,
        input_spec=input_spec,
        preprocessing=preprocessing,
        metrics=metrics,
        test_metrics=test_metrics,
        data_summary=data_summary,
        settings=settings,
        history=history,
        parity=parity,
        quantization=quantization,
        timing=timer.total(),
        samples=listing,
    )
