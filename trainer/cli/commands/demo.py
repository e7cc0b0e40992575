"""`trainer demo --out DIR`: the whole loop on built-in synthetic data, no files of your own needed."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="generate small image and sound data sets, train, export, evaluate, then run both live in the device daemon over MQTT",
        description="Generates three classes of synthetic shapes under OUT/data and three classes of synthetic sounds "
        "(whistle, clap, _background_noise_) under OUT/sound-data, trains a bundle of each into OUT/bundle and "
        "OUT/sound-bundle with the default settings (or reuses the ones there), evaluates them through ONNX Runtime and "
        "prints the reports; then renders a sample video and a sample sound file, starts a private mosquitto (unless "
        "--mqtt-host names a broker), runs `edge run` with a camera pipeline on the video and a microphone pipeline on the "
        "sound file, prints the MQTT messages as they arrive, and stops the daemon cleanly.",
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
    p.add_argument("--sound-bundle", type=Path, help="your own audio bundle to run live instead of the built-in one, on --sound-file")
    p.add_argument("--sound-file", type=Path, help="a WAV file for --sound-bundle (played in a loop as the microphone)")
    p.add_argument("--no-sound", action="store_true", help="image only: no sound bundle, no microphone pipeline")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.core.evaluate import evaluate_bundle
    from trainer.cli.commands.evaluate import format_metrics
    from trainer.demo.image_samples import write_shapes_dataset
    from trainer.image.job import ImageTrainOptions, train_image_classifier
    from trainer.report import summary_table

    if (args.sound_bundle is None) != (args.sound_file is None):
        print("--sound-bundle and --sound-file go together: the bundle classifies the sound file played as a microphone")
        return 2
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
    sound: tuple[Path, Path] | None = None
    if args.sound_bundle is not None:
        sound = (args.sound_bundle, args.sound_file)
    elif not args.no_sound:
        sound = _sound(args, out)
    if args.live_seconds <= 0:
        return 0
    return _live(args, bundle, out, sound)


def _sound(args: argparse.Namespace, out: Path) -> tuple[Path, Path]:
    """Trains (or reuses) the built-in sound bundle, evaluates it on fresh clips, renders the live sound file."""
    from edge.core.evaluate import evaluate_bundle
    from trainer.audio.job import AudioTrainOptions, train_audio_classifier
    from trainer.cli.commands.evaluate import format_metrics
    from trainer.demo.audio_samples import render_sound_sequence, write_sounds_dataset
    from trainer.report import summary_table

    print("\n--- sound: whistle / clap / background noise ---")
    bundle = out / "sound-bundle"
    if _reusable(bundle, "audio") and not args.retrain:
        print(f"reusing the sound bundle trained before in {bundle} (--retrain trains again)")
    else:
        data = write_sounds_dataset(out / "sound-data", seed=args.seed)
        # The sound trainer's own defaults (30 epochs of a compact CNN): about 20 s on a 2-core CPU here.
        report = train_audio_classifier(AudioTrainOptions(data_dir=data, out_dir=bundle, seed=args.seed, progress=not args.quiet))
        print(summary_table(report))
    holdout = write_sounds_dataset(out / "sound-holdout", per_class=10, background_files=2, seed=args.seed + 1000)
    print(format_metrics(evaluate_bundle(bundle, holdout, variant="int8")))
    print(f"sound bundle: {bundle}  report: {bundle / 'report.html'}")
    sound_file = render_sound_sequence(out / "live" / "sample-sounds.wav", seconds_per_class=SOUND_SECONDS_PER_CLASS, seed=args.seed + 7)
    return bundle, sound_file


SOUND_SECONDS_PER_CLASS = 3.0


def _reusable(bundle: Path, task: str = "image") -> bool:
    from edge.core.bundle import BundleError, load_bundle

    try:
        return load_bundle(bundle).task == task
    except BundleError:
        return False


def _live(args: argparse.Namespace, bundle: Path, out: Path, sound: tuple[Path, Path] | None) -> int:
    from trainer.demo.live import LiveDemoError, LiveDemoOptions, run_live_demo

    print("\n--- live: the bundle in the device daemon, publishing over MQTT ---")
    options = LiveDemoOptions(
        bundle=bundle,
        workdir=out / "live",
        seconds=args.live_seconds,
        mqtt_host=args.mqtt_host,
        mqtt_port=args.mqtt_port,
        sound_bundle=sound[0] if sound else None,
        sound_file=sound[1] if sound else None,
    )
    try:
        result = run_live_demo(options)
    except LiveDemoError as exc:
        print(f"live demo not run: {exc}")
        return 1
    return 0 if result.exit_code == 0 else 1
