"""Starting `edge llm serve` as a child process (what `edge run` does when `llm.enabled` is true).

A separate process, not a thread of the daemon: the model's memory and CPU can be limited on their own
(systemd MemoryMax/CPUQuota, `nice`), and an out-of-memory kill of the LLM leaves the classifiers running.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional, Sequence


def llm_serve_command(config_path: str | Path, extra_args: Sequence[str] = ()) -> list[str]:
    return [sys.executable, "-m", "edge.cli", "llm", "serve", "-c", str(config_path), *extra_args]


def start_llm_server(config_path: str | Path, extra_args: Sequence[str] = (), log_file: Optional[str | Path] = None,
                     nice: int = 0) -> subprocess.Popen[bytes]:
    """Starts `edge llm serve -c CONFIG` and returns at once (the model loads in the child; poll
    `wait_until_ready` or its /health). Output goes to `log_file` when given, else to ours. `nice` > 0
    lowers the LLM's CPU priority below the classifiers'."""
    out = open(log_file, "ab") if log_file else None  # noqa: SIM115 - handed to the child, closed below
    try:
        return subprocess.Popen(
            llm_serve_command(config_path, extra_args),
            stdout=out, stderr=subprocess.STDOUT if out else None,
            preexec_fn=(lambda: _renice(nice)) if nice else None,
        )
    finally:
        if out is not None:
            out.close()


def _renice(increment: int) -> None:
    import os

    os.nice(increment)


def wait_until_ready(host: str, port: int, timeout: float = 120.0, process: Optional[subprocess.Popen[bytes]] = None) -> bool:
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
