"""`trainer studio` as a real process: it prints where to open it, serves the page, trains through its own
child process (started from the `trainer` script, not from pytest), asks for the password on a LAN address,
and stops on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.trainer.studio.client import Client
from tests.trainer.studio.conftest import jpeg

TRAINER = Path(sys.executable).parent / "trainer"


@contextmanager
def studio_process(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[tuple[subprocess.Popen[str], int]]:
    proc = subprocess.Popen([str(TRAINER), "studio", "--port", "0", "--projects", str(tmp_path / "projects"),
                             "--cache-dir", str(tmp_path / "cache"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env={**os.environ, **(env or {})})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"open http://127\.0\.0\.1:(\d+)/", line)
        assert found, line + proc.stdout.read()
        yield proc, int(found.group(1))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.slow
def test_serves_trains_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    with studio_process(tmp_path) as (proc, port):
        c = Client(port)
        assert b"/static/studio.js" in c.get("/").body
        c.post("/api/projects", {"name": "p"})
        for label, colour in (("red", (0, 0, 255)), ("blue", (255, 0, 0))):
            c.post("/api/projects/p/classes", {"name": label})
            for i in range(4):
                assert c.post(f"/api/projects/p/classes/{label}/samples", body=jpeg(colour, 15 + 5 * i)).status == 201
        assert c.post("/api/projects/p/train", {"epochs": 2, "batch_size": 4}).status == 200
        deadline = time.monotonic() + 180
        while (job := c.get("/api/projects/p/train").json()["job"])["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.3)
        assert job["state"] == "done" and len(job["history"]) == 2, job
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 130  # the shell's code for "stopped by Ctrl-C" (uvicorn re-raises the signal)
        assert proc.stdout is not None
        assert "Traceback" not in proc.stdout.read()
    assert (tmp_path / "projects" / "p" / ".studio" / "model" / "manifest.json").is_file()


def test_a_lan_address_asks_for_the_password(tmp_path: Path) -> None:
    with studio_process(tmp_path, "--host", "0.0.0.0", env={"EDGETEACH_STUDIO_PASSWORD": "blue-whale"}) as (proc, port):
        page = Client(port).get("/")
        assert page.status == 303 and page.headers["location"] == "/login"
        assert Client(port).get("/api/projects").status == 401
