"""Where a benchmark run's results go: a new file per run, never over another run's file.

Every bench script takes the same three options:

    --out FILE     write exactly there
    --label TEXT   last part of the default name (default: the run's UTC date and time), e.g.
                   `--label quiet` -> bench/results/daemon_fp32_quiet.json
    --force        overwrite FILE if it exists (without it an existing file stops the script before
                   it measures anything)

The default name is the bench's name, then what sets its configuration (variant, data set, ...), then
the label, so a run with another configuration can never land on an earlier run's file.
docs/benchmarks.md cites these files by name; tests/test_benchmarks_doc.py checks that they exist and
that the figures match.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def add_output_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, help="results file (default: bench/results/<bench>_<configuration>_<label>.json)")
    parser.add_argument("--label", help="last part of the default file name, e.g. 'quiet' or 'pi5' (default: UTC date and time of the run)")
    parser.add_argument("--force", action="store_true", help="overwrite the results file if it already exists")


def _slug(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", part).strip("-")


def results_path(args: argparse.Namespace, *config: str) -> Path:
    """The file this run writes: --out, or RESULTS_DIR/<config parts>_<label>.json. Stops the script
    now, before anything is measured, when that file exists and --force was not given."""
    if args.out is not None:
        path = Path(args.out)
    else:
        label = args.label or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = RESULTS_DIR / ("_".join(_slug(p) for p in (*config, label) if p and _slug(p)) + ".json")
    if path.exists() and not args.force:
        raise SystemExit(f"{path} exists: a results file is never overwritten by another run; "
                         f"choose another --label or --out, or pass --force to replace it")
    return path


def write_results(path: Path, result: dict[str, Any], force: bool) -> Path:
    """Write the JSON; if the file appeared while the benchmark ran (and no --force), the run is kept
    under a new name beside it rather than lost or written over the other run. Returns the path used."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2) + "\n"
    try:
        with path.open("w" if force else "x") as handle:
            handle.write(text)
    except FileExistsError:
        path = path.with_name(f"{path.stem}_{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}{path.suffix}")
        with path.open("x") as handle:
            handle.write(text)
        print(f"note: the results file appeared during the run; this run went to {path}")
    return path


def load_average() -> list[float]:
    """1, 5 and 15-minute load averages, rounded: the 'how busy was the box' every results file records."""
    return [round(x, 2) for x in os.getloadavg()]
