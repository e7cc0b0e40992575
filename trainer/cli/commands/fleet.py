"""`trainer fleet keygen | ls | deploy | rollback`: a model to every device of a class over MQTT (docs/fleet.md).
Thin: the rollout is edge.fleet.controller's, the table trainer.fleet.table's."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # edge.fleet needs the `cryptography` package: imported when a fleet command runs, not for `trainer --help`
    from edge.fleet.controller import BrokerSettings, Outcome

log = logging.getLogger(__name__)

DEFAULT_KEY = Path("fleet.key")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("fleet", help="send a model to many devices over MQTT",
                              description="Roll a bundle out to devices over the MQTT broker they already use (docs/fleet.md).")
    sub = p.add_subparsers(dest="fleet_command", required=True, metavar="COMMAND")

    keygen = sub.add_parser("keygen", help="make the signing key pair", description="Write NAME.key (keep it private) and NAME.pub "
                            "(copy it to every device and list it in fleet.public_keys).")
    keygen.add_argument("--out-dir", type=Path, default=Path("."), help="folder for the two files (default: here)")
    keygen.add_argument("--name", default="fleet", help="file name without extension (default: fleet)")
    keygen.set_defaults(func=run_keygen)

    ls = sub.add_parser("ls", help="the devices, their model and state", description="List the devices the broker knows of: "
                        "online or not, group, active model, last job, fps and temperature.")
    _broker_flags(ls)
    ls.add_argument("--wait", type=float, default=3.0, help="seconds to listen (fps and temperature come every "
                    "mqtt.stats_interval; default 3)")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    ls.set_defaults(func=run_ls)

    dep = sub.add_parser("deploy", help="sign a bundle and roll it out", description="Sign BUNDLE, publish it as chunks and "
                         "roll it out to devices, wave by wave; prints a live table until every device answered.")
    dep.add_argument("bundle", type=Path, metavar="BUNDLE", help="a bundle folder (manifest.json, labels.txt, model.onnx)")
    _target_flags(dep)
    dep.add_argument("--wave", default=None, help="share of the devices per wave, e.g. 20%% (default: all at once)")
    dep.add_argument("--abort-above", default=None, help="stop before the next wave once more than this share of the devices "
                     "tried failed, e.g. 10%% (default: never)")
    dep.add_argument("--http", default=None, metavar="HOST:PORT", help="also serve the bundle over HTTP on PORT while the rollout "
                     "runs; the devices reach this computer as HOST (MQTT chunks stay as the fallback)")
    dep.add_argument("--name", default=None, help="the model's name on the devices (default: the folder's name)")
    dep.add_argument("--version", default=None, help="its version (default: the date and time)")
    _key_and_broker_flags(dep)
    dep.set_defaults(func=run_deploy)

    rb = sub.add_parser("rollback", help="send devices back to their previous model", description="Each device goes back to "
                        "the model it ran before (kept on its disk).")
    _target_flags(rb)
    _key_and_broker_flags(rb)
    rb.set_defaults(func=run_rollback)


def _broker_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="localhost", help="MQTT broker (default: localhost)")
    p.add_argument("--port", type=int, default=1883, help="MQTT port (default: 1883)")
    p.add_argument("--username", default=None, help="broker account (the teacher's, docs/security.md)")
    p.add_argument("--password-file", type=Path, default=None, help="file holding that account's password")


def _target_flags(p: argparse.ArgumentParser) -> None:
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--device", nargs="+", metavar="ID", help="device ids (their device_id)")
    target.add_argument("--group", metavar="G", help="every device whose fleet.group is G")


def _key_and_broker_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key", type=Path, default=DEFAULT_KEY, help="private signing key (default: fleet.key, from `trainer fleet keygen`)")
    p.add_argument("--wave-timeout", type=float, default=600.0, help="seconds each wave may take (default: 600)")
    _broker_flags(p)


def _settings(args: argparse.Namespace) -> BrokerSettings:
    from edge.fleet.controller import broker_settings

    return broker_settings(args.host, args.port, args.username, str(args.password_file) if args.password_file else None)


def run_keygen(args: argparse.Namespace) -> int:
    from edge.fleet.signing import SigningError, generate_keypair

    try:
        private, public = generate_keypair(args.out_dir, args.name)
    except SigningError as exc:
        log.error("%s", exc)
        return 2
    print(f"private key: {private} (keep it on this computer)\npublic key:  {public} (copy it to each device; "
          f"list it under fleet.public_keys)")
    return 0


def run_ls(args: argparse.Namespace) -> int:
    from edge.fleet.controller import FleetError, FleetWatch, wait_for_devices
    from trainer.fleet.table import render

    try:
        watch = FleetWatch(_settings(args)).start()
    except FleetError as exc:
        log.error("%s", exc)
        return 2
    try:
        views = wait_for_devices(watch, args.wait)
    finally:
        watch.stop()
    if args.json:
        print(json.dumps({name: {"online": v.online, "group": v.group, "state": v.state.model_dump(mode="json") if v.state else None,
                                 "fps": v.fps, "temperature_c": v.temperature_c} for name, v in sorted(views.items())}))
    elif views:
        print(render(views))
    else:
        print("no device has reported on this broker (is `edge run` running with this broker in its config?)")
    return 0


def _summary(outcome: Outcome) -> int:
    good = sum(1 for result in outcome.results.values() if result == "healthy")
    print(f"job {outcome.job_id}: {good} of {len(outcome.results)} device(s) healthy"
          + (f"; aborted after wave {outcome.waves_done}" if outcome.aborted else ""))
    for device, result in sorted(outcome.results.items()):
        if result != "healthy":
            print(f"  {device}: {result}")
    if outcome.skipped_offline:
        print(f"offline now, will update when back: {', '.join(outcome.skipped_offline)}")
    return 0 if outcome.ok else 1


def run_deploy(args: argparse.Namespace) -> int:
    from edge.fleet.chunks import ArchiveError, pack_bundle
    from edge.fleet.controller import FleetError, FleetWatch, HttpOffer, deploy, wait_for_devices
    from edge.fleet.signing import SigningError, load_private_key
    from edge.fleet.waves import parse_fraction
    from trainer.fleet.table import LiveReport, render

    try:
        wave = parse_fraction(args.wave) if args.wave else None
        abort_above = parse_fraction(args.abort_above) if args.abort_above is not None else None
        private = load_private_key(args.key)
        packed = pack_bundle(args.bundle, args.name, args.version)
        http = None
        if args.http:
            host, _, port = args.http.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"--http {args.http}: give HOST:PORT, the address the devices reach this computer at, e.g. "
                                 "teacher-laptop.local:8765")
            http = HttpOffer(host, int(port))
    except (ValueError, ArchiveError, SigningError, OSError) as exc:
        log.error("%s", exc)
        return 2
    try:
        watch = FleetWatch(_settings(args)).start()
    except FleetError as exc:
        log.error("%s", exc)
        return 2
    try:
        wait_for_devices(watch, 1.0)  # the retained states: who is online, in which group
        outcome = deploy(watch, packed, private, devices=args.device, group=args.group, wave=wave, abort_above=abort_above,
                         wave_timeout_s=args.wave_timeout, report=LiveReport(), http=http)
        print(render(watch.snapshot()))
    except (FleetError, OSError) as exc:  # OSError: the --http port is taken
        log.error("%s", exc)
        return 2
    finally:
        watch.stop()
    if http is not None:
        print(f"{outcome.http_requests} chunk(s) went over HTTP")
    return _summary(outcome)


def run_rollback(args: argparse.Namespace) -> int:
    from edge.fleet.controller import FleetError, FleetWatch, rollback, wait_for_devices
    from edge.fleet.signing import SigningError, load_private_key
    from trainer.fleet.table import LiveReport, render

    try:
        private = load_private_key(args.key)
    except SigningError as exc:
        log.error("%s", exc)
        return 2
    try:
        watch = FleetWatch(_settings(args)).start()
    except FleetError as exc:
        log.error("%s", exc)
        return 2
    try:
        wait_for_devices(watch, 1.0)
        outcome = rollback(watch, private, devices=args.device, group=args.group, wave_timeout_s=args.wave_timeout, report=LiveReport())
        print(render(watch.snapshot()))
    except FleetError as exc:
        log.error("%s", exc)
        return 2
    finally:
        watch.stop()
    return _summary(outcome)
