"""`trainer evaluate BUNDLE DATA_DIR`: a bundle's accuracy on a folder data set, through the device's code."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from edge.core.bundle import BundleError
from edge.core.datasets import DatasetError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="accuracy of a bundle on a folder data set",
        description="Score a bundle on DATA_DIR (one sub-folder per class; with train/ val/ test/ folders the "
        "test split, else val, is used), decoding and resizing exactly as the device does.",
    )
    p.add_argument("bundle", type=Path, metavar="BUNDLE")
    p.add_argument("data_dir", type=Path, metavar="DATA_DIR")
    p.add_argument("--variant", choices=["fp32", "int8"], default="fp32")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0 = all cores)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def format_metrics(metrics: dict) -> str:
    labels = metrics["labels"]
    width = max(12, *(len(label) for label in labels))
    lines = [f"{metrics['variant']} on {metrics['data']['root']} ({metrics['data']['part']}): accuracy "
             f"{100 * metrics['accuracy']:.1f} % of {metrics['n']}"]
    lines.append(f"{'class':<{width}} {'n':>5} {'accuracy':>9} {'precision':>10}")
    for label in labels:
        n = metrics["support"].get(label, 0)
        acc = metrics["per_class"].get(label)
        prec = metrics["precision"].get(label)
        lines.append(f"{label:<{width}} {n:>5} {'-' if acc is None else f'{100 * acc:.1f} %':>9} "
                     f"{'-' if prec is None else f'{100 * prec:.1f} %':>10}")
    lines.append("confusion matrix (rows: true, columns: predicted, in label order):")
    lines.extend("  " + " ".join(f"{v:>5}" for v in row) for row in metrics["confusion_matrix"])
    if metrics["skipped"]:
        lines.append(f"skipped {len(metrics['skipped'])} unreadable file(s): {', '.join(metrics['skipped'][:5])}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from edge.core.evaluate import evaluate_bundle

    try:
        metrics = evaluate_bundle(args.bundle, args.data_dir, variant=args.variant, threads=args.threads)
    except (DatasetError, BundleError) as exc:
        log.error("%s", exc)
        return 2
    print(json.dumps(metrics) if args.json else format_metrics(metrics))
    return 0
