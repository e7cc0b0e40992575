"""`edge doctor`: a table of checks (packages, providers, cameras, microphones, broker, bundles, LLM,
memory, disk, temperature) with the fix for each failure. Exit code 1 when something needed is broken."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# edge.doctor (its checks import Starlette, psutil, ...) is imported when the command runs: `edge run` builds this
# parser too. The default config is the one `edge run` reads.
from edge.cli.commands.run import DEFAULT_CONFIG


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check this device's setup and say how to fix what is broken",
        description="Checks Python packages, ONNX Runtime providers, cameras, microphones, the MQTT broker, every "
        "configured bundle, llama.cpp, memory, disk and the SoC's temperature. Exit code 1 when something the "
        "configured service needs is broken (warnings do not fail). Run it as the service user to see what the "
        "service sees: `sudo -u edgeteach /opt/edgeteach/venv/bin/edge doctor`.",
    )
    parser.add_argument("-c", "--config", help=f"device config YAML (default: {DEFAULT_CONFIG} when it exists)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    opening = parser.add_mutually_exclusive_group()
    opening.add_argument("--no-open", dest="open_sources", action="store_false", default=None,
                         help="do not open cameras to grab a frame (default: open them unless edgeteach.service is running)")
    opening.add_argument("--open", dest="open_sources", action="store_true", default=None,
                         help="open cameras even while the service runs")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the broker and network cameras (default 3)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.doctor import DEFAULT_CONFIG, DoctorOptions, as_json, exit_code, format_table, run_checks

    explicit = args.config is not None
    config_path = Path(args.config) if explicit else (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    options = DoctorOptions(config_path=config_path, config_explicit=explicit, mqtt_timeout_s=args.timeout, open_sources=args.open_sources)
    rows = run_checks(options)
    if args.json:
        json.dump(as_json(rows, config_path), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        header = f"EdgeTeach doctor: config {config_path}" if config_path else "EdgeTeach doctor: no config"
        print(header)
        print(format_table(rows, color=sys.stdout.isatty()))
    return exit_code(rows)
