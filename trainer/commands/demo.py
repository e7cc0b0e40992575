"""`trainer demo --out DIR`: the whole loop on built-in synthetic data, no files of your own needed."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="generate a small image data set, train, export, evaluate and print the report",
        description="Generates three classes of synthetic shapes under OUT/data, trains a bundle into OUT/bundle with "
        "the default settings, evaluates both variants through ONNX Runtime and prints the report.",
    )
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="folder for the data set and the bundle")
    p.add_argument("--per-class", type=int, default=30, help="images per class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.evaluate import evaluate_bundle
    from trainer.commands.evaluate import format_metrics
    from trainer.image_trainer import ImageTrainOptions, train_image_classifier
    from trainer.report import summary_table
    from trainer.samples import write_shapes_dataset

    out = Path(args.out)
    data = write_shapes_dataset(out / "data", per_class=args.per_class, seed=args.seed)
    log.info("wrote a synthetic data set of %d images per class to %s", args.per_class, data)
    bundle = out / "bundle"
    report = train_image_classifier(
        ImageTrainOptions(data_dir=data, out_dir=bundle, epochs=args.epochs, seed=args.seed, progress=not args.quiet)
    )
    print(summary_table(report))
    holdout = write_shapes_dataset(out / "holdout", per_class=max(5, args.per_class // 3), seed=args.seed + 1000)
    for variant in ("fp32", "int8"):
        print(format_metrics(evaluate_bundle(bundle, holdout, variant=variant)))
    print(f"bundle: {bundle}  report: {bundle / 'report.html'}")
    return 0
