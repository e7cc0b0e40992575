"""The local LLM: llama.cpp importable (and built with GPU offload where asked), the GGUF model, and a few
tokens generated in a child process."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from edge.doctor.base import STATE_DIR, CheckResult
from edge.doctor.machine import is_jetson
from edge.doctor.resources import UnitState, systemd_running, unit_state

if TYPE_CHECKING:
    from edge.config import EdgeConfig
    from edge.config.llm import LlmSettings

LLM_UNIT = "edgeteach-llm.service"


def llm_unit_state() -> UnitState | None:
    """edgeteach-llm.service's state; None where systemd does not run (or cannot be asked)."""
    if not systemd_running():
        return None
    try:
        return unit_state(LLM_UNIT)
    except (OSError, subprocess.SubprocessError):
        return None


def check_llm_owner(settings: LlmSettings, unit: UnitState | None) -> CheckResult:
    """Exactly one owner of the LLM server (issue 12 item 10): `edge run`'s child (llm.run_by: daemon) or
    edgeteach-llm.service (llm.run_by: systemd). Two would race for the port; none leaves the LLM off."""
    port = f"port {settings.port}"
    if not settings.enabled:
        if unit is not None and unit.runs:
            return CheckResult("llm owner", "warn",
                               f"{LLM_UNIT} is {unit.enabled}, {unit.active}, but llm.enabled is false: it starts a server the "
                               "config does not want",
                               f"`sudo systemctl disable --now {LLM_UNIT}`, or set llm.enabled: true (and llm.run_by: systemd)")
        return CheckResult("llm owner", "ok", "no LLM server (llm.enabled is false)")
    if settings.run_by == "systemd":
        if unit is None:
            return CheckResult("llm owner", "fail", "llm.run_by is systemd, but systemd does not run here: nothing starts the LLM server",
                               "set llm.run_by: daemon (then `edge run` starts it), or run `edge llm serve` yourself")
        if not unit.installed:
            return CheckResult("llm owner", "fail",
                               f"llm.run_by is systemd, but {LLM_UNIT} is not installed: nothing starts the LLM server",
                               "install it: `sudo deploy/install.sh` (without --no-llm), or set llm.run_by: daemon")
        if not unit.runs:
            return CheckResult("llm owner", "fail", f"llm.run_by is systemd, but {LLM_UNIT} is {unit.enabled}, {unit.active}: nothing "
                               "starts the LLM server", f"`sudo systemctl enable --now {LLM_UNIT}`, or set llm.run_by: daemon")
        return CheckResult("llm owner", "ok", f"{LLM_UNIT} runs it ({unit.enabled}, {unit.active}) on {port}")
    if unit is not None and unit.runs:
        return CheckResult("llm owner", "fail", f"llm.run_by is daemon, so `edge run` starts an LLM server, and {LLM_UNIT} is "
                           f"{unit.enabled}, {unit.active}: two servers race for {port}",
                           f"set llm.run_by: systemd in the config and `sudo systemctl restart edgeteach` (the unit's limits then "
                           f"apply), or `sudo systemctl disable --now {LLM_UNIT}`")
    return CheckResult("llm owner", "ok", f"`edge run` starts it as its child on {port} (llm.run_by: daemon)")


def check_llm(config: EdgeConfig | None) -> list[CheckResult]:
    if config is None:
        return [CheckResult("llm", "skip", "no config")]
    owner = check_llm_owner(config.llm, llm_unit_state())
    if not config.llm.enabled:
        return [CheckResult("llm", "skip", "llm.enabled is false")] + ([owner] if owner.status != "ok" else [])
    settings = config.llm
    rows: list[CheckResult] = [owner]
    try:
        import llama_cpp
    except Exception as exc:
        rows.append(CheckResult("llm", "fail", f"llama.cpp (llama-cpp-python) cannot be imported ({exc})",
                                "install it: `sudo deploy/install.sh` without --no-llm (add --cuda on a Jetson), "
                                "or set llm.enabled: false"))
        return rows
    try:
        gpu = bool(llama_cpp.llama_supports_gpu_offload())
    except Exception:
        gpu = False
    backend = "GPU offload" if gpu else "CPU only"
    if settings.gpu_layers != 0 and not gpu:
        rows.append(CheckResult("llm", "warn",
                                f"llama-cpp-python {llama_cpp.__version__}, {backend}, but llm.gpu_layers is "
                                f"{settings.gpu_layers}: it will run on the CPU",
                                "rebuild llama.cpp with CUDA: `sudo deploy/install.sh --cuda` (docs/jetson.md), or set llm.gpu_layers: 0"))
    elif is_jetson() and not gpu:
        rows.append(CheckResult("llm", "warn", f"llama-cpp-python {llama_cpp.__version__}, {backend} on a Jetson",
                                "rebuild with CUDA for a 3-10x faster LLM: `sudo deploy/install.sh --cuda`"))
    else:
        rows.append(CheckResult("llm", "ok", f"llama-cpp-python {llama_cpp.__version__}, {backend}"))
    model_row = _check_gguf(settings.model)
    rows.append(model_row)
    if model_row.status == "ok" and settings.model:
        rows.append(_check_generation(Path(settings.model)))
    return rows


def _check_generation(model: Path) -> CheckResult:
    """A few tokens in a child process: a llama.cpp built for another CPU crashes here, not in the service."""
    from edge.llm.smoke import PORTABLE_FLAGS_HINT, smoke_generate

    result = smoke_generate(model, tokens=4, timeout_s=180)
    if result.ok:
        return CheckResult("llm generation", "ok", f"{result.tokens} tokens at {result.tokens_per_s:.1f} tokens/s on 1 thread")
    cause = (f"crashed with {result.signal_name}" if result.signal_name
             else f"failed: {result.detail.splitlines()[-1] if result.detail else '?'}")
    return CheckResult("llm generation", "fail", f"llama.cpp {cause}", PORTABLE_FLAGS_HINT)


def _check_gguf(model: str | None) -> CheckResult:
    if not model:
        return CheckResult("llm model", "fail", "llm.model is not set", "download a GGUF (`edge llm pull`) and set llm.model to its path")
    path = Path(model)
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
        size = path.stat().st_size
    except OSError as exc:
        return CheckResult("llm model", "fail", f"{path}: {exc.strerror or exc}",
                           f"put the GGUF at {path} readable by the service user (models live in {STATE_DIR}/models), or fix llm.model")
    if magic != b"GGUF":
        return CheckResult("llm model", "fail", f"{path} is not a GGUF file (starts with {magic!r})",
                           "download the model again (`edge llm pull`); llama.cpp reads .gguf files only")
    try:
        import psutil

        available = psutil.virtual_memory().available
    except Exception:
        available = 0
    detail = f"{path} ({size / 1e6:.0f} MB)"
    if available and size > available:
        return CheckResult("llm model", "warn", f"{detail} is larger than the free memory ({available / 1e6:.0f} MB)",
                           "use a smaller or more quantised model (Q4_K_M), or stop other programs")
    return CheckResult("llm model", "ok", detail)
