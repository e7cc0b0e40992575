"""Backbones side by side: EfficientNet-Lite0, Lite1 and Lite2 trained with the default head settings on the
bench sets, each at its native input size; validation accuracy of fp32 and int8, fp32 accuracy with
test-time flip averaging (the mean of the probabilities of the image and its mirror), single-image latency
on one ONNX Runtime thread and model size.

Data: the two sets of bench_image_trainer.py (bench/image_data.py): ASL webcam frames (4 classes, temporal
split) and the same frames as 12-megapixel JPEGs (2 classes). Latencies of all backbones and variants of a
set are measured round-robin in one loop (trainer.image.compare.latencies_ms), so the load on a shared
machine hits them alike and the ratios are fair.

    .venv/bin/python bench/bench_backbones.py [--data asl phone] [--backbones ...] [--runs 30] [--label L]

Writes bench/results/backbones_<label>.json (label: the UTC date and time unless --label is given; --out
names the file); an existing results file is never overwritten without --force.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.image_data import build_asl_dataset, build_phone_sized  # noqa: E402
from bench.results_io import add_output_args, load_average, results_path, write_results  # noqa: E402
from edge.core.bundle import load_bundle  # noqa: E402
from edge.core.images import RESIZE_POLICY  # noqa: E402
from trainer.export import ort_predict  # noqa: E402
from trainer.image.compare import COMPARED, latencies_ms, sizes_mb  # noqa: E402
from trainer.image.data import decode_images  # noqa: E402
from trainer.image.job import ImageTrainOptions, train_image_classifier  # noqa: E402


def val_accuracy_with_flip(bundle_dir: Path, val_root: Path) -> dict[str, float]:
    """fp32 and int8 accuracy on val with and without averaging over the horizontal mirror."""
    bundle = load_bundle(bundle_dir)
    paths = sorted(val_root.rglob("*.jpg"))
    decoded, _ = decode_images(paths, bundle.image_size, RESIZE_POLICY, progress=False)
    x = np.stack([decoded[p].fitted for p in paths])
    y = np.array([bundle.labels.index(p.parent.name) for p in paths])
    out: dict[str, float] = {}
    for variant in bundle.variants:
        path = bundle_dir / bundle.variants[variant]
        plain = ort_predict(path, x)
        mirrored = ort_predict(path, np.ascontiguousarray(x[:, :, ::-1]))
        out[f"{variant}_plain"] = float(np.mean(plain.argmax(-1) == y))
        out[f"{variant}_flip_avg"] = float(np.mean(((plain + mirrored) / 2).argmax(-1) == y))
    out["n"] = len(paths)
    return out


def run_set(name: str, data: Path, work: Path, backbones: list[str], runs: int) -> dict[str, Any]:
    bundles: dict[str, Path] = {}
    rows: dict[str, dict[str, Any]] = {}
    for backbone in backbones:
        started = time.perf_counter()
        report = train_image_classifier(ImageTrainOptions(data_dir=data, out_dir=work / f"{name}-{backbone}", backbone=backbone,
                                                          cache_dir=work / "cache", progress=False))
        wall = time.perf_counter() - started
        bundles[backbone] = work / f"{name}-{backbone}"
        rows[backbone] = {
            "input_size": list(load_bundle(bundles[backbone]).image_size),
            "val_accuracy": {v: m["accuracy"] for v, m in report["metrics"].items()},
            "val_n": report["metrics"]["fp32"]["n"],
            "flip": val_accuracy_with_flip(bundles[backbone], data / "val"),
            "size_mb": sizes_mb(bundles[backbone]),
            "timing_s": report["timing"],
            "wall_s": wall,
            "quantization": {k: v for k, v in report["quantization"].items() if k != "float_nodes"},
        }
        print(f"{name} {backbone}: trained in {wall:.0f} s, val fp32 {100 * rows[backbone]['val_accuracy']['fp32']:.1f} %", flush=True)
    ms = latencies_ms(bundles, runs)
    for backbone in backbones:
        rows[backbone]["ms_per_image_1thread"] = ms[backbone]
    return {"train_images": sum(report["data"]["counts"]["train"].values()),
            "val_images": sum(report["data"]["counts"]["val"].values()), "backbones": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", choices=["asl", "phone"], default=["asl", "phone"])
    parser.add_argument("--backbones", nargs="+", default=list(COMPARED))
    parser.add_argument("--runs", type=int, default=30, help="single-image calls per engine for the medians")
    add_output_args(parser)
    args = parser.parse_args()
    out = results_path(args, "backbones")
    load_at_start = load_average()
    sets: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name in args.data:
            data = build_asl_dataset(tmp / name) if name == "asl" else build_phone_sized(tmp / name)
            sets[name] = run_set(name, data, tmp / "work", args.backbones, args.runs)
    result = {
        "data": {"asl": "frames of ../shared/fixtures/video/asl_gestures clips, 4 classes, temporal 70/30 split",
                 "phone": "the same frames as 12-MP JPEGs, 2 classes (again+book, sister+walk)"},
        "settings": "trainer defaults (50 epochs, batch 16, lr 0.001, 2 augmented views, int8 as shipped)",
        "latency": f"batch 1, ONNX Runtime intra_op_num_threads=1, median of {args.runs}, round-robin over all bundles of a set",
        "machine": {"cpu_count": os.cpu_count(), "load_avg_before_run": load_at_start, "load_avg_after_run": load_average()},
        "sets": sets,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = write_results(out, result, args.force)
    print(f"{'set':<6}{'backbone':<20}{'fp32 %':>8}{'int8 %':>8}{'flip %':>8}{'fp32 ms':>9}{'int8 ms':>9}{'speed-up':>9}{'MB':>6}")
    for name, s in sets.items():
        for backbone, r in s["backbones"].items():
            ms = r["ms_per_image_1thread"]
            print(f"{name:<6}{backbone:<20}{100 * r['val_accuracy']['fp32']:>8.1f}{100 * r['val_accuracy']['int8']:>8.1f}"
                  f"{100 * r['flip']['fp32_flip_avg']:>8.1f}{ms['fp32']:>9.1f}{ms['int8']:>9.1f}{ms['fp32'] / ms['int8']:>8.2f}x"
                  f"{r['size_mb']['fp32']:>6.1f}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
