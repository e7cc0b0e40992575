"""`trainer import-tm EXPORT -o OUT_DIR`: a Teachable Machine export in, a normal EdgeTeach bundle out
(the work is in trainer/tm/; docs/teachable-machine.md)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import-tm",
        help="turn a Teachable Machine image or sound export (folder or zip) into a bundle",
        description="Convert a Teachable Machine export (image: TensorFlow Lite float or quantized, Keras .h5 or TensorFlow.js; "
        "sound: TensorFlow.js; a folder, the .zip it downloads, or the model file) into a bundle that edge runs like its own: "
        "Teachable Machine's preprocessing inside the graph, labels in output order.",
    )
    p.add_argument("export", type=Path, metavar="EXPORT", help="the export folder, its .zip, or its model file")
    p.add_argument("-o", "--out", dest="out_dir", type=Path, required=True, metavar="OUT_DIR", help="bundle folder to write")
    p.add_argument("--json", action="store_true", help="print one JSON object describing the bundle")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trainer.tm.errors import TmImportError
    from trainer.tm.importer import import_tm

    try:
        result = import_tm(args.export, args.out_dir)
    except TmImportError as exc:
        log.error("%s", exc)
        return 2
    summary = {
        "bundle": str(result.bundle),
        "format": result.export_format,
        "labels": result.labels,
        "variants": result.variants,
        "source_files": {f.name: f.sha256 for f in result.source_files},
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"imported the Teachable Machine {result.export_format} export {args.export} into {result.bundle}")
        print(f"labels: {', '.join(result.labels)}")
        for variant, note in result.variants.items():
            print(f"  {variant}: {note}")
        print(f"try it: edge predict {result.bundle} {'SOUND.wav' if result.export_format == 'tfjs-sound' else 'PHOTO.jpg'}")
    return 0
