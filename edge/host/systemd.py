"""sd_notify without libsystemd: READY, WATCHDOG, STOPPING and STATUS over $NOTIFY_SOCKET.

Does nothing when the process was not started by systemd (no NOTIFY_SOCKET), so callers never branch."""

from __future__ import annotations

import os
import socket


class SystemdNotifier:
    def __init__(self, socket_path: str | None = None) -> None:
        path = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET", "")
        if path.startswith("@"):
            path = "\0" + path[1:]  # abstract namespace socket
        self._path = path
        self._sock: socket.socket | None = None
        if path:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            # Never block the caller (the daemon's main loop) on a receiver that stopped reading:
            # a full socket queue drops the message (notify returns False) instead.
            self._sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    @staticmethod
    def watchdog_interval() -> float | None:
        """Seconds between pings systemd expects (half of WatchdogSec), or None when no watchdog is set."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            return max(0.1, int(usec) / 1e6 / 2)
        except ValueError:
            return None

    def notify(self, message: str) -> bool:
        if self._sock is None:
            return False
        try:
            self._sock.sendto(message.encode("utf-8"), self._path)
            return True
        except OSError:
            return False  # systemd going away must never take the daemon with it

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def reloading(self) -> bool:
        return self.notify("RELOADING=1")
