"""Which listen addresses only this machine can reach: the LLM API, the health endpoints, the dashboard and the
trainer's Studio all need a key or a password on any other. And which names a client may use in the Host header
(`allowed_host_names`, `host_allowed`): the DNS-rebinding check of the LLM API and the dashboard."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a name: it may resolve to a LAN address
        return False


def allowed_host_names(configured_host: str, extra: Iterable[str]) -> frozenset[str]:
    """Names a client may put in the Host header, besides any IP address.

    The check stops DNS rebinding: a web page on evil.example whose name is re-pointed at the device's
    address would otherwise let a student's browser talk to the API. Such a request carries the attacker's
    *name*; an IP address in Host cannot be rebound, so every address is allowed (a Pi on DHCP keeps working
    when its address changes). Names: localhost, the device's hostname and its mDNS name `<hostname>.local`
    (how a Pi is usually reached on a LAN), the configured listen host, and `llm.allowed_hosts` (the LLM API; the dashboard has none)."""
    hostname = socket.gethostname().lower()
    names = {*LOCAL_NAMES, hostname, f"{hostname.split('.')[0]}.local", configured_host.lower()}
    names.update(name.strip().lower().rstrip(".") for name in extra if name.strip())
    return frozenset(names)


def host_allowed(host_header: str, names: frozenset[str]) -> bool:
    if "*" in names:
        return True
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:8080
        host = host[1:host.find("]")] if "]" in host else ""
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    host = host.rstrip(".")
    if not host:
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return host in names
