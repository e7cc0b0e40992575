"""`edge llm serve` as a real subprocess for tests, with a real GGUF model and a real broker."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.broker import free_port
from tests.support.gguf_models import TestModel, missing_reason, model_path

REPO = Path(__file__).resolve().parents[2]


def require_model(model: TestModel) -> Path:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed: run scripts/setup.sh llm")
    path = model_path(model)
    if path is None:
        pytest.skip(missing_reason(model))
    return path


@dataclass
class LlmServerProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    api_key: str | None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get_json(self, path: str) -> Any:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        with urllib.request.urlopen(urllib.request.Request(f"{self.base_url}{path}", headers=headers), timeout=10) as response:
            return json.loads(response.read())

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.base_url}/metrics", timeout=10) as response:
            return response.read().decode()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def start_server(workdir: Path, config_text: str, extra_args: tuple[str, ...] = (), api_key: str | None = None,
                 timeout: float = 90.0) -> LlmServerProcess:
    port = free_port()
    config = workdir / "edge.yaml"
    config.write_text(config_text.replace("PORT", str(port)))
    log_path = workdir / "llm-serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "edge.cli", "-v", "llm", "serve", "-c", str(config), *extra_args],
                                   cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    server = LlmServerProcess(process, port, log_path, api_key)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"edge llm serve exited with {process.returncode}:\n{server.log_text()}")
        try:
            if server.get_json("/health").get("status") == "ok":
                return server
        except OSError:
            pass
        time.sleep(0.2)
    server.stop()
    raise TimeoutError(f"edge llm serve not ready after {timeout}s:\n{server.log_text()}")
