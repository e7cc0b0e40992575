"""The sound half of `trainer train` (`--task audio`, or detected from the files): its options and run.

Kept beside `trainer.cli.commands.train`, which owns the shared options (data, output, seed, split, epochs,
batch size, lr, int8, quiet) and hands audio data sets here.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from edge.core.datasets import DatasetError
from trainer.audio.job import AudioTrainOptions
from trainer.cli.commands import option_defaults

log = logging.getLogger(__name__)

# Defaults for options shared with the image trainer, where sound needs other values: sound models
# train end to end (not a head on cached embeddings), so fewer epochs with larger batches and lr.
AUDIO_DEFAULTS = option_defaults(AudioTrainOptions, "backbone", "epochs", "batch_size", "lr")
_AUDIO = option_defaults(AudioTrainOptions, "sample_rate", "window_seconds", "hop_seconds")


def add_audio_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sound (--task audio)")
    group.add_argument("--sample-rate", type=int, default=_AUDIO["sample_rate"], metavar="HZ",
                       help=f"model sample rate; files of any rate are resampled to it (default {_AUDIO['sample_rate']})")
    group.add_argument("--window", type=float, default=_AUDIO["window_seconds"], metavar="SECONDS",
                       help=f"length of one model input (default {_AUDIO['window_seconds']})")
    group.add_argument("--hop", type=float, default=_AUDIO["hop_seconds"], metavar="SECONDS",
                       help=f"step between windows of long recordings and of the live microphone (default {_AUDIO['hop_seconds']})")
    group.add_argument("--no-audio-augment", action="store_true", help="train without shift/speed/gain/noise/SpecAugment (for comparison)")


def fill_audio_defaults(args: argparse.Namespace) -> None:
    for key, value in AUDIO_DEFAULTS.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)


def run_audio(args: argparse.Namespace) -> int:
    """Trains a sound classifier; returns the process exit code."""
    from trainer.audio.job import train_audio_classifier
    from trainer.audio.models import AUDIO_BACKBONES
    from trainer.export import ExportError
    from trainer.report import summary_table

    fill_audio_defaults(args)
    try:
        if args.backbone not in AUDIO_BACKBONES:
            raise DatasetError(f"--backbone {args.backbone} is an image backbone; for sound use one of {', '.join(AUDIO_BACKBONES)} "
                               f"(default {AUDIO_DEFAULTS['backbone']})")
        if getattr(args, "fine_tune", 0):
            log.warning("--fine-tune applies to image backbones; sound models train end to end and ignore it")
        report = train_audio_classifier(
            AudioTrainOptions(
                data_dir=Path(args.data_dir),
                out_dir=Path(args.out_dir),
                backbone=args.backbone,
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                seed=args.seed,
                val_split=args.val_split,
                int8=not args.no_int8,
                sample_rate=args.sample_rate,
                window_seconds=args.window,
                hop_seconds=args.hop,
                augment=not args.no_audio_augment,
                progress=not args.quiet,
            )
        )
    except (DatasetError, ExportError) as exc:
        log.error("%s", exc)
        return 2
    print(summary_table(report))
    print(f"bundle: {args.out_dir}  report: {Path(args.out_dir) / 'report.html'}")
    return 0
