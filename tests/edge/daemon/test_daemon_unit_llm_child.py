"""How `edge run` starts its LLM child (edge.llm.process): lowered priority without preexec_fn (unsafe in a
threaded daemon), in the daemon's own process group so it is stopped with it, and never a second server on
a port that is already served (issue 12 item 10: edgeteach-llm.service owns it then)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import edge.llm.process as llm_process
from edge.llm.process import LlmChild, start_llm_server, stop_llm_server
from tests.support.broker import free_port

_SLEEPER = [sys.executable, "-c", "import time; time.sleep(30)"]


@pytest.fixture
def popen_kwargs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    monkeypatch.setattr(llm_process, "llm_serve_command", lambda *_a, **_k: list(_SLEEPER))
    seen: list[dict[str, Any]] = []
    real = subprocess.Popen

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(llm_process.subprocess, "Popen", spy)
    return seen


def _nice_of(pid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, pid)


def _settled_nice_of(pid: int, timeout: float = 5.0) -> int:
    """The child's niceness once it runs Python (after the fork and `nice -n` have exec'd it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1:2] != [b"-c"]:
        time.sleep(0.01)
    return _nice_of(pid)


@pytest.mark.parametrize("have_nice_tool", [True, False])
def test_child_is_niced_without_preexec_fn_and_stays_in_our_group(
        popen_kwargs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, have_nice_tool: bool) -> None:
    if not have_nice_tool:
        monkeypatch.setattr(llm_process.shutil, "which", lambda _name: None)
    ours = _nice_of(0)
    process = start_llm_server(tmp_path / "edge.yaml", nice=5)
    try:
        assert popen_kwargs and all(kw.get("preexec_fn") is None for kw in popen_kwargs)
        assert not any(kw.get("start_new_session") or kw.get("process_group") is not None for kw in popen_kwargs)
        assert _settled_nice_of(process.pid) == min(19, ours + 5)
        assert os.getpgid(process.pid) == os.getpgid(0)  # a signal to the daemon's group reaches the LLM too
        assert os.getsid(process.pid) == os.getsid(0)
    finally:
        assert stop_llm_server(process, timeout=2.0) != 0
    assert process.poll() is not None


def test_nice_zero_leaves_the_priority_alone(popen_kwargs: list[dict[str, Any]], tmp_path: Path) -> None:
    process = start_llm_server(tmp_path / "edge.yaml", nice=0)
    try:
        assert _settled_nice_of(process.pid) == _nice_of(0)
        assert popen_kwargs[0]["stdout"] is None
    finally:
        stop_llm_server(process, timeout=2.0)


def test_llm_child_is_stopped_with_the_daemon(popen_kwargs: list[dict[str, Any]], tmp_path: Path) -> None:
    child = LlmChild(tmp_path / "edge.yaml", "127.0.0.1", free_port(), nice=3)
    child.start()
    assert child.state == "running" and child.process is not None
    pid = child.process.pid
    assert _settled_nice_of(pid) == min(19, _nice_of(0) + 3)
    child.stop(timeout=2.0)
    assert child.state == "stopped" and child.process is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.fixture
def served_port() -> Any:
    """A port something else already listens on (what edgeteach-llm.service's server looks like from here)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server
    server.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_no_second_server_on_a_served_port(popen_kwargs: list[dict[str, Any]], served_port: socket.socket, tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture, host: str) -> None:
    port = served_port.getsockname()[1]
    child = LlmChild(tmp_path / "edge.yaml", host, port, initial_backoff_s=0.05)

    with caplog.at_level(logging.ERROR, logger="edge.llm.process"):
        child.start()
        time.sleep(0.1)
        child.poll()  # the retry after the backoff finds the port still served

    assert popen_kwargs == [] and child.process is None
    assert child.state == "port_in_use" and child.stats()["state"] == "port_in_use"
    refusals = [r.getMessage() for r in caplog.records if "already served" in r.getMessage()]
    assert len(refusals) == 1 and f"{host}:{port}" in refusals[0] and "llm.run_by" in refusals[0], refusals


def test_child_starts_once_the_port_is_free_again(popen_kwargs: list[dict[str, Any]], served_port: socket.socket, tmp_path: Path) -> None:
    child = LlmChild(tmp_path / "edge.yaml", "127.0.0.1", served_port.getsockname()[1], initial_backoff_s=0.05)
    child.start()
    assert child.process is None
    served_port.close()
    deadline = time.monotonic() + 5
    while child.process is None and time.monotonic() < deadline:
        time.sleep(0.06)
        child.poll()
    try:
        assert child.state == "running" and len(popen_kwargs) == 1
        assert child.restarts == 0  # it never ran before: not a restart
    finally:
        child.stop(timeout=2.0)
