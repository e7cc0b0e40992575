"""Sound trainer benchmark: accuracy on seen and unseen speakers per backbone, training time, and
inference time per 1 s window (1 thread, fp32 and int8), all in one run.

    .venv/bin/python bench/bench_audio_trainer.py [--data DIR] [--backbones compact_cnn,efficientnet_lite0]
        [--splits unseen,seen,few] [--label L]

The data is the espeak-ng spoken-digit set of bench/make_speech_dataset.py (made on first use, ~2 min):
2,700 8 kHz clips, 18 synthetic speakers. "seen": every speaker in training, held-out takes in val;
"unseen": 6 speakers never heard in training; "few": only 5 training speakers, same unseen val. Each run is the default `trainer train`
pipeline (decode, train, export, parity, int8, score through ONNX Runtime). Writes
bench/results/audio_trainer_<backbones>_<splits>_<label>.json (label: the UTC date and time unless --label is
given; --out names the file); an existing results file is never overwritten without --force. The trainer's
epochs are recorded per row.
CPU time is reported beside wall time because the 2 cores are shared: wall time depends on the load.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results_io import add_output_args, load_average, results_path, write_results  # noqa: E402
from edge.core.bundle import load_bundle  # noqa: E402
from edge.core.session import make_session  # noqa: E402


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def window_latency_ms(model_path: Path, window: int, runs: int = 200) -> dict[str, float]:
    """Median and p90 of one 1-window inference with one ONNX Runtime thread (real speech-like input)."""
    session = make_session(model_path, threads=1)
    name = session.get_inputs()[0].name
    x = (0.1 * np.random.default_rng(0).standard_normal((1, window))).astype(np.float32)
    for _ in range(20):
        session.run(None, {name: x})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {name: x})
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90))}


def run_one(data: Path, split: str, backbone: str, out_root: Path) -> dict[str, Any]:
    from trainer.audio.job import AudioTrainOptions, train_audio_classifier

    out = out_root / f"{backbone}-{split}"
    load_before = os.getloadavg()[0]
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    report = train_audio_classifier(AudioTrainOptions(data / split, out, backbone=backbone, progress=False))
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    bundle = load_bundle(out)
    latency = {v: window_latency_ms(bundle.model_path(v), bundle.window_samples) for v in bundle.variants}
    return {
        "backbone": backbone,
        "split": split,
        "accuracy": {v: m["accuracy"] for v, m in report["metrics"].items()},
        "n_val_files": report["metrics"]["fp32"]["n"],
        "timing": report["timing"],
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "load_average_at_start": load_before,
        "latency_1s_window_1_thread": latency,
        "model_bytes": {v: (out / f).stat().st_size for v, f in bundle.variants.items()},
        "parity_max_abs_diff": report["parity"]["max_abs_diff"],
        "epochs": report["settings"]["epochs"],
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| backbone | speakers in val | fp32 acc | int8 acc | training (s) | whole run wall / CPU (s) | "
            "fp32 ms / 1 s window | int8 ms / 1 s window |")
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        lat = r["latency_1s_window_1_thread"]
        lines.append(
            f"| {r['backbone']} | {r['split']} | {100 * r['accuracy']['fp32']:.1f} % | "
            f"{100 * r['accuracy'].get('int8', float('nan')):.1f} % | "
            f"{r['timing']['train']:.0f} | {r['wall_seconds']:.0f} / {r['cpu_seconds']:.0f} | "
            f"{lat['fp32']['median_ms']:.2f} | {lat.get('int8', {}).get('median_ms', float('nan')):.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "edgeteach-speech-digits")
    parser.add_argument("--backbones", default="compact_cnn,efficientnet_lite0")
    parser.add_argument("--splits", default="unseen,seen,few")
    add_output_args(parser)
    args = parser.parse_args(argv)
    out = results_path(args, "audio_trainer", args.backbones.replace(",", "-"), args.splits.replace(",", "-"))
    logging.basicConfig(level=logging.WARNING)
    if not (args.data / "speakers.json").is_file():
        from bench.make_speech_dataset import main as make

        make([str(args.data), "--no-background"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for backbone in args.backbones.split(","):
            for split in args.splits.split(","):
                row = run_one(args.data, split, backbone, Path(tmp))
                rows.append(row)
                print(table([row]).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    speakers = json.loads((args.data / "speakers.json").read_text())
    out = write_results(out, {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
                    "load_avg_after_run": load_average()},
        "data": {"path": str(args.data), "clips": speakers["clips"], "words": speakers["words"], "speakers": len(speakers["speakers"])},
        "rows": rows,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }, args.force)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
