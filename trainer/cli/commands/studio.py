"""`trainer studio`: the Studio web app (trainer/studio/) on this computer."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from trainer.cli.commands.fleet import DEFAULT_KEY
from trainer.studio.limits import DEFAULT_HOST, DEFAULT_LLM_MODELS, DEFAULT_PORT, DEFAULT_PROJECTS, PASSWORD_ENV

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "studio",
        help="the Studio: make classes, gather webcam samples, train and export in a web page",
        description="Serve EdgeTeach Studio, a local web page for the Teachable Machine steps (docs/studio.md).",
    )
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to listen on (default {DEFAULT_HOST}: this computer only; a LAN address needs a class password)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    p.add_argument("--projects", type=Path, default=Path(DEFAULT_PROJECTS), metavar="DIR",
                   help=f"the projects folder (default ./{DEFAULT_PROJECTS}); each project is a folder `trainer train` reads")
    p.add_argument("--password", default=None,
                   help=f"the class password, required on a non-loopback --host (or set ${PASSWORD_ENV}, which `ps` does not show)")
    p.add_argument("--cache-dir", type=Path, default=None, help="embedding cache (default ~/.cache/edgeteach or $EDGETEACH_CACHE)")
    p.add_argument("--llm-models", type=Path, default=Path(DEFAULT_LLM_MODELS), metavar="DIR",
                   help=f"the LLM playground's .gguf files (default ./{DEFAULT_LLM_MODELS}, where `edge llm pull` saves them)")
    fleet = p.add_argument_group("send to devices", "the Export tab's fleet rollout (docs/fleet.md); off without --fleet-host")
    fleet.add_argument("--fleet-host", default=None, metavar="BROKER", help="the devices' MQTT broker: turns \"send to devices\" on")
    fleet.add_argument("--fleet-port", type=int, default=None, help="its port (default: the MQTT default, 1883)")
    fleet.add_argument("--fleet-username", default=None, help="broker account (the teacher's, docs/security.md)")
    fleet.add_argument("--fleet-password-file", type=Path, default=None, help="file holding that account's password")
    fleet.add_argument("--fleet-key", type=Path, default=DEFAULT_KEY,
                       help=f"private signing key (default: {DEFAULT_KEY}, from `trainer fleet keygen`)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.core.hosts import is_loopback
    from trainer.studio.app import create_app
    from trainer.studio.limits import StudioLimits
    from trainer.studio.server import StudioServer

    password = args.password or os.environ.get(PASSWORD_ENV) or None
    if not is_loopback(args.host) and not password:
        log.error("--host %s can be reached from other computers: give a class password with --password or $%s "
                  "(or use --host 127.0.0.1 to keep the Studio on this computer)", args.host, PASSWORD_ENV)
        return 2
    limits = StudioLimits()
    sender = None
    if args.fleet_host:
        from edge.fleet.controller import BrokerSettings
        from trainer.studio.send import Sender, load_settings

        port = args.fleet_port or BrokerSettings.model_fields["port"].default
        try:
            sender = Sender(load_settings(args.fleet_host, port, args.fleet_username, args.fleet_password_file, args.fleet_key))
        except ValueError as exc:
            log.error("send to devices: %s", exc)
            return 2
    try:
        app = create_app(args.projects, password, limits, args.cache_dir, llm_models=args.llm_models, sender=sender)
        server = StudioServer(app, args.host, args.port, limits)
    except OSError as exc:
        log.error("cannot listen on %s:%s (%s); is another Studio running? choose another --port", args.host, args.port, exc)
        return 2
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    print(f"EdgeTeach Studio: open http://{shown}:{server.port}/ (projects in {args.projects.resolve()}); Ctrl-C stops it", flush=True)
    server.serve_forever()
    return 0
