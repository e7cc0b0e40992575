"""systemd's side of sd_notify for tests: a unix datagram socket whose messages a thread collects
continuously (as systemd does; Linux queues only ~10 datagrams per socket)."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path


class NotifySocket:
    def __init__(self) -> None:
        # unix socket paths are limited to ~107 bytes; pytest's tmp folders can be longer
        self._dir = Path(tempfile.mkdtemp(prefix="sdn"))
        self.path = self._dir / "notify"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []  # (time.monotonic() when received, the line)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.monotonic()
            self.messages.extend((now, line) for line in data.decode().splitlines())

    def times(self, line: str, after: float = 0.0) -> list[float]:
        """When `line` arrived, each time after `after`."""
        return [t for t, m in list(self.messages) if m == line and t > after]

    def wait_for(self, line: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(msg == line for _, msg in list(self.messages)):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self._closed.set()
        self._thread.join(1)
        self.sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)
