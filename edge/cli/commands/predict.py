"""`edge predict BUNDLE FILE`: one image or sound file through a bundle."""

from __future__ import annotations

import argparse
import json
import sys

from edge.core.bundle import BundleError
from edge.core.classify import REDUCTIONS  # the tool itself (OpenCV, Pillow) is imported by `run`: `edge run` builds this parser too


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="classify one image or sound file with a bundle",
        description="Classifies one image (image bundle) or sound file (audio bundle). A sound file is cut into the "
        "bundle's windows (window and hop from its manifest) over its loud part, as the trainer cuts validation clips "
        "(--all-windows: the whole file end to end), and the window scores are averaged (--reduce mean) or their "
        "per-class maximum taken (--reduce max).",
    )
    parser.add_argument("bundle", help="bundle folder made by `trainer train`")
    parser.add_argument("file", help="an image (JPEG, PNG, ...) or a sound file (WAV, FLAC, OGG)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--variant", choices=["fp32", "int8"], default="fp32", help="model variant (default fp32)")
    parser.add_argument("--reduce", choices=list(REDUCTIONS), default="mean", help="sound files: combine windows by mean (default) or max")
    parser.add_argument("--all-windows", action="store_true", help="sound files: classify the whole file end to end, quiet parts too")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0 = all cores)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.tools.predict import PredictError, predict_file

    try:
        prediction = predict_file(args.bundle, args.file, variant=args.variant, reduce=args.reduce, threads=args.threads,
                                  all_windows=args.all_windows)
    except (BundleError, PredictError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(prediction.to_dict(), indent=2))
        return 0
    print(f"{prediction.label}  {prediction.confidence:.3f}")
    width = max(len(label) for label in prediction.scores)
    for label, score in sorted(prediction.scores.items(), key=lambda item: -item[1]):
        print(f"  {label:<{width}}  {score:.3f}  {'#' * int(round(score * 30))}")
    if prediction.windows > 1:
        print(f"({prediction.windows} windows, {prediction.reduce})")
    return 0
