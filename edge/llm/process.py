"""Starting `edge llm serve` as a child process (what `edge run` does when `llm.enabled` is true).

A separate process, not a thread of the daemon: the model's memory and CPU can be limited on their own
(systemd MemoryMax/CPUQuota, `nice`), and an out-of-memory kill of the LLM leaves the classifiers running.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from edge.core.backoff import Backoff

log = logging.getLogger(__name__)


def llm_serve_command(config_path: str | Path, extra_args: Sequence[str] = ()) -> list[str]:
    return [sys.executable, "-m", "edge.cli", "llm", "serve", "-c", str(config_path), *extra_args]


def start_llm_server(config_path: str | Path, extra_args: Sequence[str] = (), log_file: str | Path | None = None,
                     nice: int = 0) -> subprocess.Popen[bytes]:
    """Starts `edge llm serve -c CONFIG` and returns at once (the model loads in the child; poll
    `wait_until_ready` or its /health). Output goes to `log_file` when given, else to ours. `nice` > 0
    lowers the LLM's CPU priority below the classifiers'."""
    out = open(log_file, "ab") if log_file else None  # noqa: SIM115 - handed to the child, closed below
    command = llm_serve_command(config_path, extra_args)
    nice_tool = shutil.which("nice") if nice > 0 else None
    if nice_tool:  # `nice -n N python ...` execs python in place: same pid, lowered from its first instruction
        command = [nice_tool, "-n", str(nice), *command]
    try:
        # No preexec_fn: it is not safe in a process with threads (the MQTT and pipeline workers). The child stays
        # in our process group and session, so Ctrl-C in a terminal and systemd's stop reach it as before.
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT if out else None)
    finally:
        if out is not None:
            out.close()
    if nice > 0 and not nice_tool:
        _renice(process.pid, nice)
    return process


def _renice(pid: int, increment: int) -> None:
    """Lowers a running child's priority from the parent (when there is no `nice` program); best effort."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + increment))
    except OSError:
        pass


def wait_until_ready(host: str, port: int, timeout: float = 120.0, process: subprocess.Popen[bytes] | None = None) -> bool:
    """Polls GET /health until 200; False on timeout or when `process` exits first."""
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=2) as response:
                if response.status == 200 and json.loads(response.read()).get("status") == "ok":
                    return True
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.2)
    return False


def stop_llm_server(process: subprocess.Popen[bytes], timeout: float = 5.0) -> int:
    """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def port_served(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something already accepts connections on the LLM's address (a wildcard host is probed on
    loopback, where a server on every interface answers too)."""
    probe = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    try:
        with socket.create_connection((probe, port), timeout=timeout):
            return True
    except OSError:
        return False


class LlmChild:
    """`edge llm serve` as a supervised child of `edge run`: started with the daemon, restarted with
    backoff when it dies (an out-of-memory kill, a crash), stopped with it. Polled from the daemon's main
    loop, so it needs no thread of its own.

    One owner of the LLM process (issue 12 item 10): when its port is already served (edgeteach-llm.service,
    a manual `edge llm serve`), no second server is started, which would only lose the race for the port or
    run outside the unit's limits; it says so and looks again after the backoff."""

    def __init__(self, config_path: str | Path, host: str, port: int, log_file: str | Path | None = None, nice: int = 5,
                 initial_backoff_s: float = 5.0, max_backoff_s: float = 300.0) -> None:
        self.config_path = Path(config_path)
        self.host = host
        self.port = port
        self.log_file = log_file
        self.nice = nice
        self.backoff = Backoff(initial_backoff_s, max_backoff_s, healthy_after_s=60.0)  # ran fine a while: restart quickly
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.last_exit_code: int | None = None
        self._restart_at: float | None = None
        self._started_at = 0.0
        self.port_taken = False  # the last start found the port served by someone else

    @property
    def state(self) -> str:
        if self.process is not None and self.process.poll() is None:
            return "running"
        if self.port_taken:
            return "port_in_use"
        return "restarting" if self._restart_at is not None else "stopped"

    def start(self) -> None:
        now = time.monotonic()
        if port_served(self.host, self.port):
            if not self.port_taken:  # once per episode, not at every retry
                log.error("LLM: %s:%d is already served by another process (edgeteach-llm.service? llm.run_by must be 'systemd' "
                          "then); not starting a second server. Looking again in a while", self.host, self.port)
            self.port_taken = True
            self._restart_at = now + self.backoff.next_delay(0.0)
            return
        if self.port_taken:
            log.info("LLM: %s:%d is free again; starting `edge llm serve`", self.host, self.port)
        self.port_taken = False
        self.process = start_llm_server(self.config_path, log_file=self.log_file, nice=self.nice)
        self._started_at = now
        self._restart_at = None

    def poll(self) -> None:
        """Restarts a child that exited, after a backoff that doubles while it keeps dying quickly."""
        now = time.monotonic()
        if self.process is not None and self.process.poll() is not None and self._restart_at is None:
            self.last_exit_code = self.process.returncode
            self._restart_at = now + self.backoff.next_delay(now - self._started_at)
            self.process = None
        if self._restart_at is not None and now >= self._restart_at:
            self.start()
            if self.process is not None and self.last_exit_code is not None:
                self.restarts += 1

    def stop(self, timeout: float = 3.0) -> int | None:
        self._restart_at = None
        if self.process is None:
            return None
        code = stop_llm_server(self.process, timeout=timeout)
        self.process = None
        return code

    def stats(self) -> dict[str, object]:
        return {
            "state": self.state,
            "pid": self.process.pid if self.process is not None else None,
            "restarts": self.restarts,
            "last_exit_code": self.last_exit_code,
        }
