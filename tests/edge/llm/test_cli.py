"""`edge llm` commands end to end: refusals with clear errors, compare with two real models, and the
child-process helper `edge run` uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.llm.process import start_llm_server, stop_llm_server, wait_until_ready
from tests.support.broker import free_port
from tests.support.gguf_models import GEMMA3, SMOLLM2
from tests.support.llm_server import REPO, require_model

pytestmark = pytest.mark.timeout(180)


def edge(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_serve_refuses_a_missing_model(tmp_path: Path) -> None:
    run = edge("llm", "serve", "--model", str(tmp_path / "nope.gguf"), "--port", str(free_port()), "--no-mqtt")
    assert run.returncode == 1
    assert "nope.gguf does not exist" in run.stderr and "edge llm pull" in run.stderr


def test_serve_refuses_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text("llm:\n  port: 99999\n  model_sha256: abc\n")
    run = edge("llm", "serve", "-c", str(config))
    assert run.returncode == 2
    assert "llm.port" in run.stderr and "llm.model_sha256" in run.stderr


def test_serve_refuses_a_model_with_the_wrong_sha256() -> None:
    model = require_model(SMOLLM2)
    run = edge("llm", "serve", "--model", str(model), "--sha256", "0" * 64, "--port", str(free_port()), "--no-mqtt")
    assert run.returncode == 1
    assert "has SHA-256" in run.stderr and "llm.model_sha256 expects 000" in run.stderr


def test_child_process_helper_starts_and_stops_the_server(tmp_path: Path) -> None:
    model = require_model(SMOLLM2)
    port = free_port()
    config = tmp_path / "edge.yaml"
    # The model path is relative: it means "next to the config file", like bundle paths.
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny.gguf").symlink_to(model)
    config.write_text(f"device_id: t\nllm:\n  enabled: true\n  model: models/tiny.gguf\n  port: {port}\n  mqtt: false\n")
    process = start_llm_server(config, log_file=tmp_path / "llm.log")
    try:
        assert wait_until_ready("127.0.0.1", port, timeout=90, process=process), (tmp_path / "llm.log").read_text()
    finally:
        assert stop_llm_server(process) == 0
    assert "LLM ready: model tiny" in (tmp_path / "llm.log").read_text()


def test_compare_two_real_models_side_by_side() -> None:
    a, b = require_model(SMOLLM2), require_model(GEMMA3)
    run = edge("llm", "compare", "--model", str(a), "--model", str(b), "--max-tokens", "12", "--threads", "1", "--json",
               "Is a tomato a fruit?")
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout)
    assert [r["model"] for r in results] == ["SmolLM2-135M-Instruct.Q4_1", "gemma-3-270m-q4_k_m"]
    assert results[0]["chat_format"] == "gguf-template"
    assert results[1]["chat_format"] == "gemma"  # base model without a template: the documented default
    for r in results:
        assert r["answer"].strip() and 0 < r["timings"]["predicted_n"] <= 12
    columns = edge("llm", "compare", "--model", str(a), "--model", str(b), "--max-tokens", "6", "--width", "100", "Hi")
    assert columns.returncode == 0, columns.stderr
    header = columns.stdout.splitlines()[2]
    assert "SmolLM2-135M-Instruct.Q4_1" in header and " | gemma-3-270m-q4_k_m" in header


def test_chat_loads_the_model_itself_and_keeps_the_conversation() -> None:
    model = require_model(SMOLLM2)
    run = subprocess.run(
        [sys.executable, "-m", "edge.cli", "llm", "chat", "--model", str(model), "--max-tokens", "16", "--temperature", "0",
         "--threads", "1"],
        input="What is 2 + 2?\n/reset\n\nName three colours.\n", cwd=REPO,
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    answers = run.stdout.split("model> ")[1:]
    assert len(answers) == 2
    assert "4" in answers[0] and "Red" in answers[1]
    assert "(conversation forgotten)" in run.stderr


def test_pull_explains_what_it_needs(tmp_path: Path) -> None:
    wrong = edge("llm", "pull", "some/repo", "weights.bin", "--dir", str(tmp_path))
    assert wrong.returncode == 1 and "llama.cpp loads .gguf files" in wrong.stderr
    offline = subprocess.run([sys.executable, "-m", "edge.cli", "llm", "pull", "some/repo", "model.gguf", "--dir", str(tmp_path)],
                             cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 1
    # Without huggingface_hub: how to install it; with it (offline here): why the download failed.
    assert "pip install huggingface_hub" in offline.stderr or "cannot download some/repo/model.gguf" in offline.stderr


def test_pull_says_how_to_install_huggingface_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from edge.cli import main as edge_main

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # `import huggingface_hub` now raises ImportError
    assert edge_main(["llm", "pull", "some/repo", "model.gguf", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "needs the huggingface_hub package" in err
    assert "scripts/setup.sh edge llm" in err and f"{sys.executable} -m pip install huggingface_hub" in err
