"""`edge run` with `llm.enabled`: the daemon starts `edge llm serve` as its child, restarts it when it
dies, reports it in stats, and stops it on SIGTERM. Real daemon, real broker, real GGUF model."""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.support.broker import Broker, free_port
from tests.support.daemon import DaemonProcess, camera_pipeline, wait_until, write_color_video, write_config
from tests.support.gguf_models import SMOLLM2
from tests.support.llm_server import require_model
from tests.support.onnx_models import make_color_bundle

pytestmark = pytest.mark.timeout(180)


def _llm_healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def _llm_children(pid: int) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and {"llm", "serve"} <= set(child.cmdline()):
                found.append(child)
        except psutil.Error:  # exited (or not yet reaped) while we looked
            continue
    return found


def test_daemon_supervises_its_llm_child(tmp_path: Path, broker: Broker) -> None:
    model = require_model(SMOLLM2)
    bundle = make_color_bundle(tmp_path / "colors")
    video = write_color_video(tmp_path / "colors.avi", ["red", "green"], seconds_each=1.0, fps=10)
    llm_port = free_port()
    config = write_config(
        tmp_path / "edge.yaml", broker.host, broker.port,
        [camera_pipeline("cam", bundle, str(video), source={"loop": True})],
        llm={"enabled": True, "model": str(model), "port": llm_port, "threads": 1, "context_size": 512},
    )
    daemon = DaemonProcess(config)
    try:
        wait_until(lambda: _llm_healthy(llm_port), 90, f"the LLM child to answer /health\n{daemon.log()}")
        (child,) = _llm_children(daemon.pid)
        first_pid = child.pid

        os.kill(first_pid, signal.SIGKILL)  # an out-of-memory kill, say
        wait_until(lambda: [c.pid for c in _llm_children(daemon.pid)] not in ([], [first_pid]), 30,
                   f"a new LLM child after the kill\n{daemon.log()}")
        wait_until(lambda: _llm_healthy(llm_port), 90, f"the restarted LLM child to answer\n{daemon.log()}")
        assert daemon.alive(), "the daemon must survive its LLM dying"
        with urllib.request.urlopen(f"http://127.0.0.1:{llm_port}/v1/models", timeout=5) as response:
            assert json.loads(response.read())["data"], "the restarted server serves the model"

        (new_child,) = _llm_children(daemon.pid)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(8) == 0
        wait_until(lambda: not psutil.pid_exists(new_child.pid) or new_child.status() == psutil.STATUS_ZOMBIE, 5,
                   "the LLM child to stop with the daemon")
    finally:
        daemon.stop()
