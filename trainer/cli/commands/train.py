"""`trainer train DATA_DIR -o OUT_DIR`: folders of examples in, a checked ONNX bundle and a report out."""

from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from edge.core.datasets import DatasetError, detect_task
from trainer.audio.models import AUDIO_BACKBONES
from trainer.cli.commands import option_defaults
from trainer.cli.commands.train_audio import AUDIO_DEFAULTS, add_audio_arguments, run_audio
from trainer.export import ExportError
from trainer.image.backbones import BUILDERS, BackboneError
from trainer.image.job import ImageTrainOptions

if TYPE_CHECKING:
    from trainer.tm.compare import TmReference

IMAGE_DEFAULTS = option_defaults(ImageTrainOptions, "backbone", "epochs", "batch_size", "lr")
_IMAGE = option_defaults(ImageTrainOptions, "fine_tune", "seed", "val_split", "augment")

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a classifier from a folder with one sub-folder per class",
        description="Train a classifier from DATA_DIR (one sub-folder per class, or train/ and val/ folders "
        "holding those) and write a model bundle with a report to OUT_DIR.",
    )
    p.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="class folders, or a Teachable Machine project file (.tm)")
    p.add_argument("-o", "--out", dest="out_dir", type=Path, required=True, metavar="OUT_DIR", help="bundle folder to write")
    p.add_argument("--task", choices=["image", "audio"], default=None, help="default: detected from the files")
    p.add_argument("--backbone", choices=sorted(BUILDERS) + list(AUDIO_BACKBONES), default=None,
                   help=f"default: {IMAGE_DEFAULTS['backbone']} for images, {AUDIO_DEFAULTS['backbone']} for sound")
    p.add_argument("--weights", type=Path, default=None, metavar="PATH",
                   help="backbone weights file (.pth) instead of the built-in/cached ones")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"default: {IMAGE_DEFAULTS['epochs']} for images, {AUDIO_DEFAULTS['epochs']} for sound")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"default: {IMAGE_DEFAULTS['batch_size']} for images, {AUDIO_DEFAULTS['batch_size']} for sound")
    p.add_argument("--lr", type=float, default=None, help=f"default: {IMAGE_DEFAULTS['lr']} for images, {AUDIO_DEFAULTS['lr']} for sound")
    p.add_argument("--fine-tune", type=int, default=_IMAGE["fine_tune"], metavar="N",
                   help=f"also train the backbone's last N blocks (default {_IMAGE['fine_tune']}: head only)")
    p.add_argument("--seed", type=int, default=_IMAGE["seed"])
    p.add_argument("--val-split", type=float, default=_IMAGE["val_split"], help="fraction held out per class when there is no val/ folder")
    p.add_argument("--augment", type=int, default=_IMAGE["augment"], metavar="K",
                   help="augmented views per training image (flip, crop, colour); 0 = none")
    p.add_argument("--no-int8", action="store_true", help="skip the int8 model")
    p.add_argument("--cache-dir", type=Path, default=None, help="embedding cache (default ~/.cache/edgeteach or $EDGETEACH_CACHE)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--compare-tm", type=Path, default=None, metavar="EXPORT",
                   help="images: also score this Teachable Machine export (folder, .zip or model file) on the same held-out "
                        "samples and put its accuracy next to ours in the report")
    p.add_argument("--compare-backbones", action="store_true",
                   help="images: also train the head on each EfficientNet-Lite backbone (same data and settings) and print, "
                        "and put in the report, a table of validation accuracy, fp32/int8 ms per image on one thread and "
                        "model size; the bundle written is the --backbone one")
    add_audio_arguments(p)
    p.set_defaults(func=run)


def _check_numbers(args: argparse.Namespace) -> None:
    if args.epochs < 1:
        raise DatasetError(f"--epochs must be at least 1, got {args.epochs}")
    if args.batch_size < 1:
        raise DatasetError(f"--batch-size must be at least 1, got {args.batch_size}")
    if not args.lr > 0:
        raise DatasetError(f"--lr must be positive, got {args.lr}")
    if args.augment < 0:
        raise DatasetError(f"--augment must be 0 or more, got {args.augment}")


def run(args: argparse.Namespace) -> int:
    from trainer.tm.compare import reference_for
    from trainer.tm.errors import TmImportError
    from trainer.tm.project import is_project, project_dataset

    try:
        with contextlib.ExitStack() as stack:
            if is_project(Path(args.data_dir)):
                # A Teachable Machine project file (docs/teachable-machine.md): its samples as class folders for this run
                root = stack.enter_context(project_dataset(Path(args.data_dir)))
                log.info("%s: a Teachable Machine project; its samples are unpacked to %s for this run", args.data_dir, root)
                args.data_dir, args.task = root, "image"
            reference = None
            if args.compare_tm is not None:  # imported and checked now, used after training
                reference = stack.enter_context(reference_for(Path(args.compare_tm), Path(args.data_dir), _task(args)))
            return _run(args, reference)
    except (TmImportError, DatasetError) as exc:
        log.error("%s", exc)
        return 2


def _task(args: argparse.Namespace) -> str:
    return args.task or (detect_task(args.data_dir) if Path(args.data_dir).is_dir() else None) or "image"


def _run(args: argparse.Namespace, reference: TmReference | None = None) -> int:
    from trainer.report import summary_table, write_report
    from trainer.tm.compare import add_comparison
    from trainer.tm.errors import TmImportError

    task = _task(args)
    for key, value in (AUDIO_DEFAULTS if task == "audio" else IMAGE_DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    try:
        _check_numbers(args)
        if task == "audio":
            if args.compare_backbones:
                raise DatasetError("--compare-backbones compares image backbones; for sound choose --backbone yourself (docs/training.md)")
            return run_audio(args)
        from trainer.image.job import train_image_classifier

        options = ImageTrainOptions(
            data_dir=args.data_dir,
            out_dir=args.out_dir,
            backbone=args.backbone,
            weights=args.weights,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            fine_tune=args.fine_tune,
            seed=args.seed,
            val_split=args.val_split,
            int8=not args.no_int8,
            augment=args.augment,
            cache_dir=args.cache_dir,
            progress=not args.quiet,
        )
        report = train_image_classifier(options)
        if args.compare_backbones:
            from trainer.image.compare import compare_backbones

            report["backbones"] = compare_backbones(options, report)
            write_report(report, Path(args.out_dir))
    except (DatasetError, BackboneError, ExportError) as exc:
        log.error("%s", exc)
        return 2
    if reference is not None:
        try:
            write_report(add_comparison(report, reference, Path(args.data_dir), args.val_split, args.seed), Path(args.out_dir))
        except (TmImportError, DatasetError) as exc:
            # the bundle is written and good; only the comparison is missing
            log.error("%s", exc)
            return 2
    print(summary_table(report))
    if report.get("backbones"):
        from trainer.image.compare import backbone_table

        print(backbone_table(report["backbones"]))
    print(f"bundle: {args.out_dir}  report: {Path(args.out_dir) / 'report.html'}")
    return 0
