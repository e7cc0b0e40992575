"""int8 calibration study: one fp32 model per data set, re-quantized with each setting, compared with fp32.

Per setting: top-1 agreement of int8 with fp32 on the val split, mean |diff| of probabilities, int8
accuracy, quantize time, and batch-1 one-thread latency of fp32 vs int8 measured round-robin (wall time, and
since issue 17 the CPU time of the calling thread too, which load from other jobs inflates far less).
Data sets as in bench_image_trainer.py: ASL webcam frames (4 classes) and the 12-MP two-class set.

    .venv/bin/python bench/study_int8_calibration.py --data asl|phone [--work DIR] [--only NAME ...] [--calib-seed N] [--runs N] [--label L]

Writes bench/results/int8_study_<data>[_seed<N>]_<label>.json (label: the UTC date and time unless --label
is given; --out names the file). An existing results file is never overwritten without --force; with
--force and --only, the rows of the settings re-run replace theirs in that file and the others stay.
"""

from __future__ import annotations

import argparse
import json
import statistics
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
from edge.core.images import RESIZE_POLICY  # noqa: E402
from trainer.export import FLOAT_FIRST_CONVS, batch_session, ort_predict, quantize_int8  # noqa: E402
from trainer.image.data import augmented_views, decode_images, view_seed  # noqa: E402
from trainer.image.job import CALIBRATION_IMAGES, ImageTrainOptions, train_image_classifier  # noqa: E402

# name -> (quantize_int8 keyword arguments, calibration source)
SETTINGS: dict[str, tuple[dict[str, Any], str]] = {
    "current (minmax, qdq, per-channel, reduce_range)": ({}, "128"),
    "percentile 99.999": ({"method": "percentile", "extra_options": {"CalibPercentile": 99.999}}, "128"),
    "percentile 99.99": ({"method": "percentile", "extra_options": {"CalibPercentile": 99.99}}, "128"),
    "entropy": ({"method": "entropy"}, "128"),
    "minmax moving average": ({"extra_options": {"CalibMovingAverage": True}}, "128"),
    "reduce_range off": ({"reduce_range": False}, "128"),
    "activation symmetric": ({"extra_options": {"ActivationSymmetric": True}}, "128"),
    "qoperator": ({"fmt": "qoperator"}, "128"),
    "per-tensor weights": ({"per_channel": False}, "128"),
    "all training images": ({}, "all"),
    "128 images + 2 augmented views": ({}, "aug"),
    "last 3 convs float too": ({"float_last_convs": 3}, "128"),
    # issue 17, "int8 that pays": fewer float convolutions and full-range weights, which CPUs with 8-bit dot
    # products (x86 VNNI, ARM sdot/udot) multiply without the int16 saturation reduce_range guards against
    "all convs int8": ({"float_first_convs": 0}, "128"),
    "all convs int8, reduce_range off": ({"float_first_convs": 0, "reduce_range": False}, "128"),
    "first 3 convs float, reduce_range off": ({"float_first_convs": 3, "reduce_range": False}, "128"),
    "first 3 convs float": ({"float_first_convs": 3}, "128"),
    "qoperator, reduce_range off": ({"fmt": "qoperator", "reduce_range": False}, "128"),
    "qoperator, all convs int8, reduce_range off": ({"fmt": "qoperator", "float_first_convs": 0, "reduce_range": False}, "128"),
}


def cpu_features() -> dict[str, Any]:
    """The CPU model and which 8-bit dot-product instructions it has: int8's speed-up depends on them."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(("model name", "Model"))), "")
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith(("flags", "Features"))), []))
    return {"model": model, "dot_product": sorted(flags & {"avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm"})}


def load_split(root: Path, size: tuple[int, int]) -> tuple[np.ndarray, list[Any], list[str]]:
    paths = sorted(p for p in root.rglob("*.jpg"))
    decoded, _ = decode_images(paths, size, RESIZE_POLICY, progress=False)
    return np.stack([decoded[p].fitted for p in paths]), [decoded[p] for p in paths], [p.parent.name for p in paths]


def latency_pair(fp32: Path, int8: Path, runs: int = 30) -> tuple[float, float, float, float]:
    """Median ms, batch 1, one thread, round-robin so machine load hits both alike: wall time, and the CPU
    time of the calling thread (ONNX Runtime runs a one-thread session on it), which a busy machine does not
    inflate with time spent waiting for a core. Returns (fp32 wall, int8 wall, fp32 CPU, int8 CPU)."""
    sessions = [batch_session(fp32, threads=1), batch_session(int8, threads=1)]
    side = [int(d) for d in sessions[0].get_inputs()[0].shape[1:]]
    image = np.random.default_rng(0).integers(0, 256, (1, *side), dtype=np.uint8)
    feeds = [{s.get_inputs()[0].name: image} for s in sessions]
    for s, f in zip(sessions, feeds):
        for _ in range(3):
            s.run(None, f)
    times: list[list[float]] = [[], []]
    cpu: list[list[float]] = [[], []]
    for _ in range(runs):
        for i, (s, f) in enumerate(zip(sessions, feeds)):
            t, c = time.perf_counter(), time.thread_time()
            s.run(None, f)
            cpu[i].append((time.thread_time() - c) * 1000)
            times[i].append((time.perf_counter() - t) * 1000)
    return statistics.median(times[0]), statistics.median(times[1]), statistics.median(cpu[0]), statistics.median(cpu[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=["asl", "phone"], required=True)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgeteach-int8-study")
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--calib-seed", type=int, default=0, help="which training images calibrate (the trainer uses seed 0)")
    parser.add_argument("--runs", type=int, default=30, help="single-image calls per model for the latency medians")
    add_output_args(parser)
    args = parser.parse_args()
    path = results_path(args, "int8_study", args.data, "" if args.calib_seed == 0 else f"seed{args.calib_seed}")
    load_at_start = load_average()
    work = args.work / args.data
    data = work / "data"
    if not (data / "val").is_dir():
        (build_asl_dataset if args.data == "asl" else build_phone_sized)(data)
    bundle = work / "bundle"
    if not (bundle / "model.onnx").is_file():
        train_image_classifier(ImageTrainOptions(data_dir=data, out_dir=bundle, int8=False, progress=False))
    fp32 = bundle / "model.onnx"
    size = (224, 224)
    train_x, train_dec, _ = load_split(data / "train", size)
    val_x, _, val_names = load_split(data / "val", size)
    labels = (bundle / "labels.txt").read_text().split()
    val_y = np.array([labels.index(n) for n in val_names])
    p32 = ort_predict(fp32, val_x)
    pick = np.sort(np.random.default_rng(args.calib_seed).permutation(len(train_x))[:CALIBRATION_IMAGES])
    calib = {
        "128": train_x[pick],
        "all": train_x,
        "aug": np.concatenate([train_x[pick], np.stack([v for i in pick for v in augmented_views(train_dec[i].square, size, 2,
                                                                                                 view_seed(train_dec[i].sha1, 0))])]),
    }
    import onnx

    convs = [n.name for n in onnx.load(str(fp32)).graph.node if n.op_type == "Conv"]
    rows = []
    print(f"{args.data}: {len(train_x)} train, {len(val_x)} val; fp32 accuracy {100 * float(np.mean(p32.argmax(-1) == val_y)):.1f} %",
          flush=True)
    for name, (kwargs, source) in SETTINGS.items():
        if args.only and name not in args.only:
            continue
        kwargs = dict(kwargs)
        last = kwargs.pop("float_last_convs", 0)
        if last:
            kwargs["nodes_to_exclude"] = convs[-last:]
        out = work / "int8.onnx"
        t = time.perf_counter()
        quantize_int8(fp32, out, calib[source], **kwargs)
        q_s = time.perf_counter() - t
        p8 = ort_predict(out, val_x)
        ms32, ms8, cpu32, cpu8 = latency_pair(fp32, out, args.runs)
        row = {
            "setting": name, "calibration_inputs": int(len(calib[source])), "quantize_s": q_s,
            "agree": int(np.sum(p8.argmax(-1) == p32.argmax(-1))), "n": int(len(val_x)),
            "mean_abs_prob_diff": float(np.mean(np.abs(p8 - p32))),
            "fp32_acc": float(np.mean(p32.argmax(-1) == val_y)), "int8_acc": float(np.mean(p8.argmax(-1) == val_y)),
            "fp32_ms": ms32, "int8_ms": ms8, "fp32_cpu_ms": cpu32, "int8_cpu_ms": cpu8,
        }
        rows.append(row)
        print(f"{name:<50} agree {row['agree']}/{row['n']}  |diff| {row['mean_abs_prob_diff']:.4f}  int8 acc "
              f"{100 * row['int8_acc']:.1f} %  "
              f"fp32 {ms32:.1f} ms int8 {ms8:.1f} ms ({ms32 / ms8:.2f}x; CPU time {cpu32 / cpu8:.2f}x)  quantize {q_s:.0f} s", flush=True)
    # Only reached with --force when the file exists (results_path stopped the script otherwise).
    old = json.loads(path.read_text()) if path.is_file() and args.only else {"rows": []}
    keep = [r for r in old["rows"] if r["setting"] not in {r2["setting"] for r2 in rows}]
    path = write_results(path, {"data": args.data, "calib_seed": args.calib_seed, "float_first_convs": FLOAT_FIRST_CONVS,
                                "machine": {"load_avg_before_run": load_at_start, "load_avg_after_run": load_average(),
                                            "cpu": cpu_features()},
                                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": keep + rows}, args.force)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
