"""The MQTT broker of the config: reachable, accepting this device's credentials and TLS settings, and not
open to clients without an account (issue 12 item 6: on a shared network anyone could command the device)."""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING

from edge.doctor.base import CheckResult

if TYPE_CHECKING:
    from edge.config import EdgeConfig
    from edge.config.mqtt import MqttSettings


def check_broker(config: EdgeConfig, timeout_s: float) -> list[CheckResult]:
    """The connection row, then, once connected, whether the broker also lets anyone in."""
    connected = check_mqtt(config, timeout_s)
    if connected.status != "ok":
        return [connected]
    return [connected, check_anonymous_access(config.mqtt, timeout_s)]


def check_anonymous_access(settings: MqttSettings, timeout_s: float) -> CheckResult:
    where = f"{settings.host}:{settings.port}"
    if settings.tls.enabled and settings.tls.certfile:
        return CheckResult("mqtt access", "skip", "client certificates: the broker may map them to accounts; not probed")
    anonymous = settings.model_copy(update={"username": None, "password": None, "password_file": None})
    accepted, _ = _try_connect(anonymous, timeout_s)
    if not accepted:
        return CheckResult("mqtt access", "ok", f"{where} refuses clients without an account")
    return CheckResult("mqtt access", "warn",
                       f"{where} lets clients in without an account: anyone on the network can command this device",
                       "close it: `sudo deploy/install.sh` sets up accounts and an ACL on the local Mosquitto "
                       "(docs/deploy.md, \"The local broker\"); on another broker, allow_anonymous false and an acl_file")


def _try_connect(settings: MqttSettings, timeout_s: float) -> tuple[bool, str]:
    """(connected, paho's last error) for one connection attempt with these settings; MqttConfigError
    passes through."""
    import logging

    from edge.mqtt.connection import MqttConnection

    quiet = logging.getLogger("edge.mqtt.connection")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # the table reports the failure; the connection's own log lines would repeat it
    connection: MqttConnection | None = None
    try:
        connection = MqttConnection(settings, client_id=f"edgeteach-doctor-{socket.gethostname()}-{os.getpid()}")
        connection.start()
        deadline = time.monotonic() + timeout_s
        # a refusal (CONNACK with a failure) is an answer too: no need to wait out the timeout for it
        while not connection.wait_connected(0.05):
            if connection.last_error or time.monotonic() >= deadline:
                return False, connection.last_error or f"no CONNACK within {timeout_s:.0f} s"
        return True, ""
    finally:
        if connection is not None:
            connection.stop(timeout=1.0, publish_will=False)
        quiet.setLevel(level)


def check_mqtt(config: EdgeConfig, timeout_s: float) -> CheckResult:
    from edge.mqtt.connection import MqttConfigError

    settings = config.mqtt
    where = f"{settings.host}:{settings.port}"
    who = f" as {settings.username}" if settings.username else " anonymously"
    # A TCP probe first: "nothing listens" and "no such host" deserve plainer words than paho's.
    try:
        with socket.create_connection((settings.host, settings.port), timeout=timeout_s):
            pass
    except socket.gaierror as exc:
        return CheckResult("mqtt", "fail", f"broker host {settings.host!r} not found ({exc})",
                           "fix mqtt.host in the config (a hostname or IP this device can resolve)")
    except ConnectionRefusedError:
        local = settings.host in ("localhost", "127.0.0.1", "::1")
        fix = ("start the local broker: `sudo systemctl enable --now mosquitto` (or `sudo apt install mosquitto`)" if local
               else f"start the broker on {settings.host}, or fix mqtt.host/mqtt.port in the config")
        return CheckResult("mqtt", "fail", f"nothing listens on {where} (connection refused)", fix)
    except OSError as exc:
        return CheckResult("mqtt", "fail", f"cannot reach {where} ({exc})",
                           "check the network and firewall between this device and the broker, and mqtt.host/mqtt.port")
    try:
        connected, error = _try_connect(settings, timeout_s)
    except MqttConfigError as exc:
        return CheckResult("mqtt", "fail", str(exc), "fix the mqtt: section of the config")
    if connected:
        return CheckResult("mqtt", "ok", f"connected to {where}{who} (MQTT {settings.protocol}{', TLS' if settings.tls.enabled else ''})")
    if "refused" in error or "authori" in error.lower() or "password" in error.lower():
        fix = ("check mqtt.username and mqtt.password/password_file against the broker's users "
               "(the installer's broker: `sudo mosquitto_passwd /etc/mosquitto/edgeteach.passwd USER`), and its acl_file")
    elif settings.tls.enabled:
        fix = ("check mqtt.tls (ca_certs must have signed the broker's certificate; the host name must match it) "
               "and that this port speaks TLS")
    else:
        fix = "the port answers but not as an MQTT broker: check mqtt.port (1883 plain, 8883 TLS) and mqtt.tls"
    return CheckResult("mqtt", "fail", f"{where}{who}: {error}", fix)
