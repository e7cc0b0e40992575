"""`edge run` starts no second LLM server when the LLM's port is already served (issue 12 item 10).

The real daemon and a real broker; the LLM port is held by a listening socket, which is what
edgeteach-llm.service's server looks like from the daemon. The daemon's stats say why there is no child,
its log says it once, and no `edge llm serve` process appears."""

from __future__ import annotations

import socket
from pathlib import Path

import psutil
import pytest

from tests.support.broker import Broker
from tests.support.daemon import DaemonProcess, write_config
from tests.support.mqtt_listener import Listener

pytestmark = pytest.mark.timeout(120)


def _llm_children(pid: int) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if {"llm", "serve"} <= set(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def test_daemon_leaves_a_served_llm_port_alone(tmp_path: Path, broker: Broker) -> None:
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    port = held.getsockname()[1]
    # no model: were a child started anyway, it would exit at once and the stats would say "restarting"
    config = write_config(tmp_path / "edge.yaml", broker.host, broker.port, [], llm={"enabled": True, "port": port, "run_by": "daemon"})
    listener = Listener(broker.host, broker.port, ("edgeteach/testdev/stats",))
    daemon = DaemonProcess(config)
    try:
        stats = listener.wait_for(lambda m: m.topic == "edgeteach/testdev/stats", timeout=60, count=3, what="three stats messages")
        assert daemon.alive(), daemon.log()
        for message in stats:
            assert message.json()["llm"]["state"] == "port_in_use", (message.text, daemon.log())
            assert message.json()["llm"]["pid"] is None
        assert _llm_children(daemon.pid) == []
        log = daemon.log()
        assert log.count("is already served by another process") == 1, log
        assert f"127.0.0.1:{port}" in log and "llm.run_by" in log
    finally:
        daemon.stop()
        listener.close()
        held.close()
