"""The llama.cpp build is portable by construction, verified by a smoke generation, and a broken build
stops the setup with a clear message (deploy/llama-cpp.sh, edge/llm/smoke.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import llama_builds
from tests.support.gguf_models import SMOLLM2
from tests.support.llama_builds import REPO, bash
from tests.support.llm_server import require_model

SAPPHIRE_RAPIDS = ("flags : fpu sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma f16c bmi2 avx512f avx512dq avx512bw avx512vl "
                   "avx512_vnni avx512_bf16 avx_vnni amx_tile amx_int8 amx_bf16\n")
OLD_X86 = "flags : fpu sse sse2 ssse3 sse4_1 sse4_2 popcnt\n"
PI4 = "Features : fp asimd evtstrm crc32 cpuid\n"
PI5 = "Features : fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n"

# What a CMake switch needs the kernel to report (x86 /proc/cpuinfo "flags").
X86_NEEDS = {"GGML_SSE42": "sse4_2", "GGML_AVX": "avx", "GGML_AVX2": "avx2", "GGML_FMA": "fma", "GGML_F16C": "f16c",
             "GGML_BMI2": "bmi2", "GGML_AVX512": "avx512f", "GGML_AVX512_VNNI": "avx512_vnni", "GGML_AVX512_BF16": "avx512_bf16",
             "GGML_AVX512_VBMI": "avx512vbmi", "GGML_AVX_VNNI": "avx_vnni", "GGML_AMX_TILE": "amx_tile", "GGML_AMX_INT8": "amx_int8",
             "GGML_AMX_BF16": "amx_bf16"}


def cpu_args(cpuinfo: str, arch: str, tmp_path: Path) -> str:
    file = tmp_path / "cpuinfo"
    file.write_text(cpuinfo)
    return bash(f'llama_cpu_args "{file}" {arch}').stdout.strip()


def switched_on(args: str) -> set[str]:
    return set(re.findall(r"-D(GGML_\w+)=ON", args))


def test_x86_baseline_is_avx2_even_on_a_cpu_with_avx512_and_amx(tmp_path: Path) -> None:
    args = cpu_args(SAPPHIRE_RAPIDS, "x86_64", tmp_path)
    assert "-DGGML_NATIVE=OFF" in args
    assert switched_on(args) == {"GGML_SSE42", "GGML_AVX", "GGML_AVX2", "GGML_FMA", "GGML_F16C", "GGML_BMI2"}
    for off in ("GGML_AVX512", "GGML_AVX_VNNI", "GGML_AMX_TILE", "GGML_AMX_INT8"):
        assert f"-D{off}=OFF" in args   # explicit, so no CMake default can turn them on


def test_x86_without_avx2_gets_no_avx_at_all(tmp_path: Path) -> None:
    args = cpu_args(OLD_X86, "x86_64", tmp_path)
    assert switched_on(args) == {"GGML_SSE42"}
    assert "-DGGML_AVX=OFF" in args and "-DGGML_NATIVE=OFF" in args


def test_arm_level_follows_the_kernels_hwcaps(tmp_path: Path) -> None:
    assert cpu_args(PI4, "aarch64", tmp_path) == "-DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv8-a"
    assert cpu_args(PI5, "aarch64", tmp_path) == "-DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16"


def test_every_extension_the_build_uses_is_enabled_by_this_kernel() -> None:
    args = bash('llama_cmake_args ""').stdout.strip()
    flags = llama_builds.cpu_flags()
    assert "-DGGML_NATIVE=OFF" in args
    if sys.platform == "linux" and Path("/proc/cpuinfo").is_file() and "x86_64" in bash("uname -m").stdout:
        needed = {X86_NEEDS[name] for name in switched_on(args)}
        assert needed <= flags, f"build uses {sorted(needed - flags)}, which this kernel does not report"


def test_the_override_replaces_the_baseline_and_changes_the_cache_key() -> None:
    custom = bash('llama_cmake_args ""', env={"EDGETEACH_LLAMA_CMAKE_ARGS": "-DGGML_NATIVE=ON"}).stdout.strip()
    assert custom == "-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF"
    portable = bash('llama_cmake_args ""').stdout.strip()
    keys = {bash(f'llama_build_key "{sys.executable}" "{a}"').stdout.strip() for a in (custom, portable)}
    assert len(keys) == 2   # a wheel built with other flags is never reused


def _require_llama() -> Path:
    lib = llama_builds.installed_lib_dir()
    if lib is None:
        pytest.skip("llama-cpp-python is not installed (scripts/setup.sh llm)")
    return lib


def test_the_installed_build_is_the_portable_one_and_holds_no_avx512() -> None:
    lib = _require_llama()
    key = bash(f'llama_build_key "{sys.executable}" "$(llama_cmake_args "")"').stdout.strip()
    assert (lib.parent / "EDGETEACH_BUILD").read_text().strip() == key, "llama-cpp-python was not installed by deploy/llama-cpp.sh"
    objdump = shutil.which("objdump")
    if objdump is None or "x86_64" not in bash("uname -m").stdout:
        pytest.skip("objdump (binutils) on x86_64 is needed to read the instructions")
    cpu_lib = next(p for p in lib.glob("libggml-cpu.so*") if p.is_file())
    text = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(cpu_lib)], capture_output=True, text=True, check=True).stdout
    assert "ymm" in text                                   # AVX2 is there ...
    assert not re.search(r"%zmm|%k[1-7]\b", text)         # ... but no AVX-512 register ...
    assert not re.search(r"\btile|\{vex\} vpdpbusd", text)  # ... no AMX tile or AVX-VNNI instruction


def test_setup_smoke_generation_passes_on_the_installed_build() -> None:
    _require_llama()
    model = require_model(SMOLLM2)
    run = bash(f'llama_smoke "{sys.executable}" "{model}" "test"')
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"smoke generation ok: [1-9]\d* tokens", run.stdout), run.stdout


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_broken_build_stops_setup_with_the_signal_and_the_flags_to_try(tmp_path: Path) -> None:
    """A libggml-cpu compiled for an extension this CPU lacks: setup's smoke step stops with the signal
    named and the portable flags, and a native test in pytest fails alone instead of killing the run."""
    _require_llama()
    model = require_model(SMOLLM2)
    wrong = llama_builds.wrong_flags_for_this_cpu()
    if wrong is None:
        pytest.skip("this CPU has every extension we know how to build wrongly for (AVX-VNNI, AVX-512)")
    sdist = llama_builds.cached_sdist()
    if sdist is None:
        pytest.skip("no llama-cpp-python source archive in the cache: run scripts/setup.sh llm")
    extension, flags = wrong
    broken = llama_builds.broken_lib_dir(sdist, flags, tmp_path)

    run = bash(f'llama_smoke "{sys.executable}" "{model}" "{flags}"', env={"LLAMA_CPP_LIB_PATH": str(broken)})
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "smoke generation FAILED" in out and "SIGILL" in out, out   # the signal, named
    assert "-DGGML_NATIVE=OFF -DGGML_AVX2=ON" in out, out               # the flags to try
    assert "setup stopped" in out, out

    suite = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/edge/llm/test_worker.py"],
                           cwd=REPO, capture_output=True, text=True, timeout=600,
                           env={**os.environ, "LLAMA_CPP_LIB_PATH": str(broken)})
    report = suite.stdout + suite.stderr
    assert suite.returncode == 1, report
    assert "CRASHED with signal 4 (SIGILL)" in report, report
    # the generating test fails with the signal; the tokenizing one, in its own process after it, still runs and passes
    assert "test_timeouts_stop_a_running_request_and_expire_a_queued_one" in report, report
    assert re.search(r"\b1 failed, 1 passed\b", report), f"{extension}: {report}"
