"""`edge run -c CONFIG`: the device daemon (edge.daemon.daemon holds the logic)."""

from __future__ import annotations

import argparse
import os
import sys

from edge.config import ConfigError

DEFAULT_CONFIG = "/etc/edgeteach/config.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the classifiers live and publish over MQTT",
        description="Runs every enabled pipeline of the config, publishes states, events, status and stats over MQTT, "
        "answers commands, serves /healthz and /metrics. SIGTERM/SIGINT stop it (retained `offline`), SIGHUP reloads the config.",
    )
    parser.add_argument("-c", "--config", default=os.environ.get("EDGETEACH_CONFIG", DEFAULT_CONFIG),
                        help=f"YAML config (default: $EDGETEACH_CONFIG or {DEFAULT_CONFIG}); `edge config example` prints one")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from edge.host.memory import fix_mmap_threshold

    fix_mmap_threshold()  # first, before the models load: frames and model copies then go back to the system
    from edge.daemon.daemon import run_daemon
    from edge.mqtt.connection import MqttConfigError

    try:
        return run_daemon(args.config)
    except (ConfigError, MqttConfigError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
