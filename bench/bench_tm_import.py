"""Imported Teachable Machine image bundles next to our own EfficientNet-Lite0 bundle: single-image latency
(batch 1, one ONNX Runtime thread, what a Pi core gives one pipeline) and accuracy on the same photos.

- Speed: the TFLite float and quantized exports of one TM model (`tflite-three-variants`, MobileNetV2 0.35;
  the head's size does not change the cost) imported as fp32 and int8, the Keras hand-sign export as fp32,
  and our bundle trained with default settings (EfficientNet-Lite0, fp32 and int8). Measured round-robin
  (one call of each model in turn), median of --rounds.
- Accuracy: the hand-sign photos (`keras-handsign/images`, 6 classes x 25): ours is trained on our split's
  training part and scored on its held-out part; the TM export is scored on the same held-out photos, which
  it most likely trained on (they are a subset of its published training photos), so its figure flatters it.

Needs ../shared/fixtures/teachable-machine. Writes bench/results/tm_import_<label>.json (bench/results_io.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results_io import add_output_args, results_path, write_results  # noqa: E402
from edge.core.bundle import load_bundle  # noqa: E402
from edge.core.datasets import make_splits, scan_dataset  # noqa: E402
from edge.core.images import decode_image, fit_image, model_min_side  # noqa: E402
from edge.core.session import Classifier  # noqa: E402
from trainer.cli.main import main as trainer_main  # noqa: E402
from trainer.tm.importer import import_tm  # noqa: E402

TM = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "teachable-machine"


def latency(classifiers: dict[str, Classifier], rounds: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    inputs = {name: rng.integers(0, 256, (1, *c.bundle.input.shape[1:]), dtype=np.uint8) for name, c in classifiers.items()}
    for name, c in classifiers.items():  # warm-up
        for _ in range(3):
            c.run(inputs[name])
    times: dict[str, list[float]] = {name: [] for name in classifiers}
    for _ in range(rounds):
        for name, c in classifiers.items():
            start = time.perf_counter()
            c.run(inputs[name])
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: float(np.median(t)) for name, t in times.items()}


def accuracy(classifier: Classifier, photos: list[tuple[Path, str]]) -> float:
    size = classifier.bundle.image_size
    pixels = np.stack([fit_image(decode_image(p, min_side=model_min_side(size)), size) for p, _ in photos])
    predicted = classifier.predict_images(pixels).argmax(1)
    return float(np.mean([classifier.bundle.labels[i] == truth for i, (_, truth) in zip(predicted, photos)]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    add_output_args(parser)
    args = parser.parse_args()
    out = results_path(args, "tm_import")
    if not TM.is_dir():
        raise SystemExit(f"{TM}: the Teachable Machine fixtures are not here")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tflite = import_tm(TM / "tflite-three-variants", work / "tm-tflite").bundle
        keras = import_tm(TM / "keras-handsign", work / "tm-keras").bundle
        started = time.time()
        rc = trainer_main(["train", str(TM / "keras-handsign" / "images"), "-o", str(work / "ours"), "--quiet", "--seed", "0"])
        if rc != 0:
            raise SystemExit("training our bundle failed")
        train_seconds = time.time() - started
        ours = load_bundle(work / "ours")
        models = {
            "tm tflite fp32": Classifier(load_bundle(tflite), "fp32", threads=1),
            "tm tflite int8": Classifier(load_bundle(tflite), "int8", threads=1),
            "tm keras fp32": Classifier(load_bundle(keras), "fp32", threads=1),
            "ours fp32": Classifier(ours, "fp32", threads=1),
            "ours int8": Classifier(ours, "int8", threads=1),
        }
        lat = latency(models, args.rounds)
        splits = make_splits(scan_dataset(TM / "keras-handsign" / "images", "image"), seed=0)
        held_out = [(s.path, splits.labels[s.label]) for s in splits.val]
        acc = {name: accuracy(models[name], held_out) for name in ("tm keras fp32", "ours fp32", "ours int8")}
        sizes = {"tm tflite fp32": tflite / "model.onnx", "tm tflite int8": tflite / "model.int8.onnx",
                 "tm keras fp32": keras / "model.onnx", "ours fp32": ours.path / "model.onnx", "ours int8": ours.path / "model.int8.onnx"}
        result = {
            "bench": "tm_import",
            "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count()},
            "load_average_at_end": list(os.getloadavg()),
            "rounds": args.rounds,
            "latency_ms_batch1_1_thread": lat,
            "model_mb": {name: path.stat().st_size / 1e6 for name, path in sizes.items()},
            "accuracy_handsign_held_out": acc,
            "held_out_photos": len(held_out),
            "classes": list(splits.labels),
            "ours": {"backbone": ours.manifest.get("backbone"), "train_seconds": train_seconds,
                     "val_accuracy_reported": ours.metrics["fp32"]["accuracy"]},
        }
    path = write_results(out, result, args.force)
    for name in models:
        print(f"{name:<16} {lat[name]:7.2f} ms  {result['model_mb'][name]:6.2f} MB  "
              f"{'' if name not in acc else f'{100 * acc[name]:.1f} % of {len(held_out)}'}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
