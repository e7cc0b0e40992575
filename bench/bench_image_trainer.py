"""Image trainer benchmark: training time (embedding vs head), head-only retraining on cached embeddings,
single-image latency of PyTorch eager vs ONNX Runtime fp32 vs int8 (1 thread and all threads), and
accuracy of fp32 vs int8.

Data: frames of the real ASL gesture clips in ../shared/fixtures (one class per clip, temporal
train/val split; see bench/image_data.py). Latencies are measured round-robin, one call of each
engine in turn, so a busy machine slows all of them alike and the ratios stay fair.

    .venv/bin/python bench/bench_image_trainer.py [--classes again book sister walk] [--runs 40] [--phone-photos] [--label L]

Writes bench/results/image_trainer[_<classes>][_phone]_<label>.json (classes only when not the default four;
label: the UTC date and time unless --label is given; --out names the file); an existing results file is
never overwritten without --force.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.image_data import build_asl_dataset, build_phone_sized  # noqa: E402
from bench.results_io import add_output_args, load_average, results_path, write_results  # noqa: E402
from edge.core.bundle import load_bundle  # noqa: E402
from edge.core.evaluate import evaluate_bundle  # noqa: E402
from edge.core.session import Classifier  # noqa: E402
from trainer.head import make_head  # noqa: E402
from trainer.image.backbones import ImageProbabilityModel, build_backbone  # noqa: E402
from trainer.image.job import ImageTrainOptions, train_image_classifier  # noqa: E402

DEFAULT_CLASSES = ["again", "book", "sister", "walk"]


def latencies(bundle_dir: Path, n_classes: int, runs: int) -> dict[str, float]:
    """Median ms per single image for each engine and thread count, measured round-robin."""
    bundle = load_bundle(bundle_dir)
    backbone = build_backbone(bundle.manifest["backbone"])
    frozen, trainable = backbone.split(0)
    eager = ImageProbabilityModel(frozen, trainable, make_head(backbone.feature_dim, n_classes)).eval()
    image = np.random.default_rng(0).integers(0, 256, (1, *bundle.image_size, 3), dtype=np.uint8)
    x = torch.from_numpy(image)
    cores = os.cpu_count() or 1
    engines = {}
    for threads, tag in ((1, "1 thread"), (0, f"all threads ({cores})")):
        torch_threads = 1 if threads == 1 else cores

        def run_eager(t: int = torch_threads) -> None:
            torch.set_num_threads(t)
            with torch.inference_mode():
                eager(x)

        engines[f"pytorch eager, {tag}"] = run_eager
        for variant in ("fp32", "int8"):
            clf = Classifier(bundle, variant, threads=threads)
            engines[f"ort {variant}, {tag}"] = lambda c=clf: c.run(image)
    for fn in engines.values():  # warm-up: first calls allocate and pick kernels
        for _ in range(3):
            fn()
    times: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(runs):
        for name, fn in engines.items():
            t = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t) * 1000)
    return {name: statistics.median(v) for name, v in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classes", nargs="+", default=DEFAULT_CLASSES)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--phone-photos", action="store_true", help="also time a cold default training on 12-megapixel JPEGs (two classes)")
    add_output_args(parser)
    args = parser.parse_args()
    out = results_path(args, "image_trainer", "" if args.classes == DEFAULT_CLASSES else "-".join(args.classes),
                       "phone" if args.phone_photos else "")
    load_at_start = load_average()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = build_asl_dataset(tmp / "data", tuple(args.classes))
        cache = tmp / "cache"  # cold: the first run pays for the backbone export and every embedding
        first = train_image_classifier(ImageTrainOptions(data_dir=data, out_dir=tmp / "bundle", cache_dir=cache, progress=False))
        t = time.perf_counter()
        retrain = train_image_classifier(
            ImageTrainOptions(data_dir=data, out_dir=tmp / "bundle2", cache_dir=cache, epochs=30, lr=0.003, int8=False, progress=False)
        )
        retrain_wall = time.perf_counter() - t
        evaluated = {v: evaluate_bundle(tmp / "bundle", data, variant=v)["accuracy"] for v in ("fp32", "int8")}
        lat = latencies(tmp / "bundle", len(args.classes), args.runs)
        phone = None
        if args.phone_photos:
            photos = build_phone_sized(tmp / "phone")
            t = time.perf_counter()
            report = train_image_classifier(ImageTrainOptions(data_dir=photos, out_dir=tmp / "phone-bundle", cache_dir=tmp / "phone-cache",
                                                              progress=False))
            phone = {"images": sum(sum(c.values()) for c in report["data"]["counts"].values()), "megapixels": 12.2,
                     "wall_s": time.perf_counter() - t, "timing": report["timing"],
                     "fp32_val": report["metrics"]["fp32"]["accuracy"], "int8_val": report["metrics"]["int8"]["accuracy"]}

    counts = first["data"]["counts"]
    result = {
        "data": {
            "source": "frames of ../shared/fixtures/video/asl_gestures clips, temporal 70/30 split",
            "classes": args.classes,
            "train_images": sum(counts["train"].values()),
            "val_images": sum(counts["val"].values()),
            "training_views": first["data"]["training_views"],
        },
        # 1/5/15-minute load averages before and after the run (files written before this change have only
        # "load_avg_1min", read after the run)
        "machine": {"cpu_count": os.cpu_count(), "load_avg_before_run": load_at_start, "load_avg_after_run": load_average()},
        "train_cold": first["timing"],
        "retrain_cached": {**retrain["timing"], "wall": retrain_wall, "cache_hits": retrain["data"]["embedding_cache_hits"], "epochs": 30,
                           "lr": 0.003},
        "accuracy": {
            "fp32_val": first["metrics"]["fp32"]["accuracy"],
            "int8_val": first["metrics"]["int8"]["accuracy"],
            "fp32_val_trainer_evaluate": evaluated["fp32"],
            "int8_val_trainer_evaluate": evaluated["int8"],
        },
        "latency_ms_batch1": lat,
        "phone_photos_cold_train": phone,
    }
    cores = os.cpu_count() or 1
    for tag in ("1 thread", f"all threads ({cores})"):
        result.setdefault("ratios", {})[tag] = {
            "ort_fp32_speedup_vs_eager": lat[f"pytorch eager, {tag}"] / lat[f"ort fp32, {tag}"],
            "int8_speedup_vs_fp32": lat[f"ort fp32, {tag}"] / lat[f"ort int8, {tag}"],
        }
    result["created_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = write_results(out, result, args.force)

    cold, warm = result["train_cold"], result["retrain_cached"]
    print(f"data: {result['data']['train_images']} train / {result['data']['val_images']} val images, "
          f"{len(args.classes)} classes ({result['data']['training_views']} training views with augmentation)")
    print(f"{'step':<34}{'cold cache':>12}{'warm cache':>12}")
    for key in ("decode", "embed", "train", "export", "quantize", "evaluate", "total"):
        print(f"{key:<34}{cold.get(key, 0):>11.1f}s{warm.get(key, 0):>11.1f}s")
    print(f"{'head epochs':<34}{'50':>12}{'30':>12}")
    print(f"accuracy on val: fp32 {100 * result['accuracy']['fp32_val']:.1f} %, int8 {100 * result['accuracy']['int8_val']:.1f} %")
    print(f"{'latency, batch 1 (median ms)':<34}")
    for name, ms in lat.items():
        print(f"  {name:<32}{ms:>10.1f}")
    for tag, r in result["ratios"].items():
        print(f"  {tag}: ORT fp32 {r['ort_fp32_speedup_vs_eager']:.1f}x faster than eager; int8 "
              f"{r['int8_speedup_vs_fp32']:.2f}x faster than fp32")
    if phone:
        print(f"cold default training on {phone['images']} 12-MP JPEGs: {phone['wall_s']:.1f} s "
              f"(reading {phone['timing']['decode']:.1f}, embedding {phone['timing']['embed']:.1f}); "
              f"val fp32 {100 * phone['fp32_val']:.1f} %, int8 {100 * phone['int8_val']:.1f} %")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
