"""`trainer demo --out DIR`: the whole loop on built-in synthetic data, no files of your own needed."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="generate a small image data set, train, export, evaluate, then run it live in the device daemon over MQTT",
        description="Generates three classes of synthetic shapes under OUT/data, trains a bundle into OUT/bundle with "
        "the default settings (or reuses the one there), evaluates both variants through ONNX Runtime and prints the report; "
        "then renders a sample video of the classes, starts a private mosquitto (unless --mqtt-host names a broker), runs "
        "`edge run` on the video and prints the MQTT messages as they arrive, and stops the daemon cleanly.",
    )
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="folder for the data set and the bundle")
    p.add_argument("--per-class", type=int, default=30, help="images per class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--retrain", action="store_true", help="train again even when OUT/bundle already holds a valid bundle")
    p.add_argument("--live-seconds", type=float, default=20.0, help="how long the live daemon part runs (0 skips it)")
    p.add_argument("--mqtt-host", help="an existing MQTT broker for the live part (default: start a private mosquitto)")
    p.add_argument("--mqtt-port", type=int, default=1883)
    p.add_argument("--sound-bundle", type=Path, help="an audio bundle to run live as well, on --sound-file")
    p.add_argument("--sound-file", type=Path, help="a WAV file for --sound-bundle (played in a loop as the microphone)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.evaluate import evaluate_bundle
    from trainer.commands.evaluate import format_metrics
    from trainer.image_trainer import ImageTrainOptions, train_image_classifier
    from trainer.report import summary_table
    from trainer.samples import write_shapes_dataset

    out = Path(args.out)
    bundle = out / "bundle"
    if _reusable(bundle) and not args.retrain:
        print(f"reusing the bundle trained before in {bundle} (--retrain trains again)")
    else:
        data = write_shapes_dataset(out / "data", per_class=args.per_class, seed=args.seed)
        log.info("wrote a synthetic data set of %d images per class to %s", args.per_class, data)
        report = train_image_classifier(
            ImageTrainOptions(data_dir=data, out_dir=bundle, epochs=args.epochs, seed=args.seed, progress=not args.quiet)
        )
        print(summary_table(report))
    holdout = write_shapes_dataset(out / "holdout", per_class=max(5, args.per_class // 3), seed=args.seed + 1000)
    for variant in ("fp32", "int8"):
        print(format_metrics(evaluate_bundle(bundle, holdout, variant=variant)))
    print(f"bundle: {bundle}  report: {bundle / 'report.html'}")
    if args.live_seconds <= 0:
        return 0
    return _live(args, bundle, out)


def _reusable(bundle: Path) -> bool:
    from edge.runtime.bundle import BundleError, load_bundle

    try:
        load_bundle(bundle)
        return True
    except BundleError:
        return False


def _live(args: argparse.Namespace, bundle: Path, out: Path) -> int:
    from trainer.live_demo import LiveDemoError, LiveDemoOptions, run_live_demo

    if (args.sound_bundle is None) != (args.sound_file is None):
        print("--sound-bundle and --sound-file go together: the bundle classifies the sound file played as a microphone")
        return 2
    print("\n--- live: the bundle in the device daemon, publishing over MQTT ---")
    options = LiveDemoOptions(
        bundle=bundle,
        workdir=out / "live",
        seconds=args.live_seconds,
        mqtt_host=args.mqtt_host,
        mqtt_port=args.mqtt_port,
        sound_bundle=args.sound_bundle,
        sound_file=args.sound_file,
    )
    try:
        result = run_live_demo(options)
    except LiveDemoError as exc:
        print(f"live demo not run: {exc}")
        return 1
    return 0 if result.exit_code == 0 else 1
