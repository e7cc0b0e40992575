"""The MQTT broker of the config: reachable, and accepting this device's credentials and TLS settings."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

from edge.doctor.base import CheckResult

if TYPE_CHECKING:
    from edge.config import EdgeConfig


def check_mqtt(config: EdgeConfig, timeout_s: float) -> CheckResult:
    import logging

    from edge.mqtt.connection import MqttConfigError, MqttConnection

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
    quiet = logging.getLogger("edge.mqtt.connection")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # the table reports the failure; the connection's own log lines would repeat it
    connection: MqttConnection | None = None
    try:
        try:
            connection = MqttConnection(settings, client_id=f"edgeteach-doctor-{socket.gethostname()}-{os.getpid()}")
        except MqttConfigError as exc:
            return CheckResult("mqtt", "fail", str(exc), "fix the mqtt: section of the config")
        connection.start()
        if connection.wait_connected(timeout_s):
            return CheckResult("mqtt", "ok",
                               f"connected to {where}{who} (MQTT {settings.protocol}{', TLS' if settings.tls.enabled else ''})")
        error = connection.last_error or f"no CONNACK within {timeout_s:.0f} s"
        if "refused" in error or "authori" in error.lower() or "password" in error.lower():
            fix = ("check mqtt.username and mqtt.password/password_file against the broker's users "
                   "(`sudo mosquitto_passwd /etc/mosquitto/passwd USER`), and its acl_file")
        elif settings.tls.enabled:
            fix = ("check mqtt.tls (ca_certs must have signed the broker's certificate; the host name must match it) "
                   "and that this port speaks TLS")
        else:
            fix = "the port answers but not as an MQTT broker: check mqtt.port (1883 plain, 8883 TLS) and mqtt.tls"
        return CheckResult("mqtt", "fail", f"{where}{who}: {error}", fix)
    finally:
        if connection is not None:
            connection.stop(timeout=1.0, publish_will=False)
        quiet.setLevel(level)
