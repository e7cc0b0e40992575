"""A private Mosquitto on a free loopback port: the live demo's broker when none is named, and the real broker
the tests run against (tests/support/broker.py). One place that writes its config, starts it and waits for it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PACKAGED_BINARY = Path("/usr/sbin/mosquitto")  # Debian's package puts it outside a user's PATH


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or (str(PACKAGED_BINARY) if PACKAGED_BINARY.exists() else None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0, process: subprocess.Popen[bytes] | None = None) -> None:
    """Returns once something listens on 127.0.0.1:port; TimeoutError after `timeout` s or when `process` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if process is not None and process.poll() is not None:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port}: the process exited with {process.returncode}") from None
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Mosquitto:
    """One mosquitto process; `stop()` and `start()` again on the same port simulate an outage."""

    workdir: Path
    port: int
    extra_config: str = ""
    log: bool = False  # log everything to workdir/mosquitto.log
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def start(self) -> Mosquitto:
        """Starts it and waits until it listens: FileNotFoundError without mosquitto, TimeoutError (stopped
        again) when it does not come up."""
        binary = mosquitto_binary()
        if binary is None:
            raise FileNotFoundError("mosquitto is not installed")
        conf = self.workdir / "mosquitto.conf"
        logging = f"log_dest file {self.workdir / 'mosquitto.log'}\nlog_type all\n" if self.log else ""
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n{logging}{self.extra_config}")
        self.process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(self.port, process=self.process)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
