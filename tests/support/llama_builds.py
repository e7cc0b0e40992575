"""llama.cpp builds for the tests: the flags deploy/llama-cpp.sh chooses, and a deliberately broken build.

The broken build is real: the CPU backend (libggml-cpu) compiled from the same llama-cpp-python source
archive that setup keeps in its cache, with one instruction-set extension this machine's CPU does not
have, beside the installed build's other libraries (llama-cpp-python loads them from LLAMA_CPP_LIB_PATH).
Only the CPU backend is rebuilt (about two minutes, cached), since that is where the wrong flags land.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import shutil
import subprocess
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LLAMA_SH = REPO / "deploy" / "llama-cpp.sh"

# (kernel flag that must be absent, CMake flags that make the CPU backend use it). The first one this
# CPU lacks is chosen; each is used by the quantized dot products every generation runs.
_X86_WRONG = (
    ("avx_vnni", "-DGGML_AVX_VNNI=ON"),
    ("avx512f", "-DGGML_AVX512=ON"),
    ("avx512_vnni", "-DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON"),
)
_X86_BASE = "-DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
_ARM_WRONG = (
    ("sve2", "-DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv9-a+sve2"),
    ("i8mm", "-DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv8.6-a+i8mm"),
)


def bash(script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Runs `script` with deploy/llama-cpp.sh sourced, as setup.sh and install.sh do."""
    return subprocess.run(["bash", "-c", f'set -euo pipefail; source "{LLAMA_SH}"; {script}'],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, **(env or {})}, timeout=1800)


def cache_dir() -> Path:
    return Path(bash("llama_cache_dir").stdout.strip())


def cpu_flags() -> set[str]:
    key = "flags" if platform.machine() in ("x86_64", "AMD64") else "Features"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith(key):
            return set(line.split(":", 1)[1].split())
    return set()


def wrong_flags_for_this_cpu() -> tuple[str, str] | None:
    """(missing extension, CMake flags using it), or None when this CPU has every one we know to try."""
    flags = cpu_flags()
    if platform.machine() == "x86_64":
        return next(((ext, f"{_X86_BASE} {cmake}") for ext, cmake in _X86_WRONG if ext not in flags), None)
    if platform.machine() == "aarch64":
        return next(((ext, cmake) for ext, cmake in _ARM_WRONG if ext not in flags), None)
    return None


def installed_lib_dir() -> Path | None:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        return None
    lib = Path(spec.origin).parent / "lib"
    return lib if lib.is_dir() else None


def cached_sdist() -> Path | None:
    version = bash("echo $LLAMA_CPP_PYTHON_VERSION").stdout.strip()
    sdist = cache_dir() / "sdist" / f"llama_cpp_python-{version}.tar.gz"
    return sdist if sdist.is_file() else None


def build_cpu_backend(sdist: Path, cmake_flags: str, work: Path) -> Path:
    """libggml-cpu compiled from `sdist` with `cmake_flags` (cached by archive and flags)."""
    key = hashlib.sha256(f"{sdist.name}|{cmake_flags}".encode()).hexdigest()[:16]
    built = cache_dir() / "ggml-cpu-variants" / key / "libggml-cpu.so"
    if built.is_file():
        return built
    src = work / "src"
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if "/vendor/llama.cpp/" in m.name and m.isreg()]
        if hasattr(tarfile, "data_filter"):
            archive.extractall(src, members=members, filter="data")
        else:  # Python < 3.10.12 has no extraction filters; the archive is the one pip verified
            archive.extractall(src, members=members)
    llama_src = next(src.glob("*/vendor/llama.cpp"))
    build = work / "build"
    configure = ["cmake", "-S", str(llama_src), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=ON",
                 "-DLLAMA_BUILD_COMMON=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_TOOLS=OFF",
                 "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_CURL=OFF", *cmake_flags.split()]
    subprocess.run(configure, check=True, capture_output=True, timeout=600)
    subprocess.run(["cmake", "--build", str(build), "--target", "ggml-cpu", "-j", str(os.cpu_count() or 1)],
                   check=True, capture_output=True, timeout=1800)
    lib = next(p for p in build.rglob("libggml-cpu.so*") if p.is_file() and not p.is_symlink())
    built.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(lib, built)
    (built.parent / "CMAKE_FLAGS").write_text(cmake_flags + "\n")
    shutil.rmtree(work / "src", ignore_errors=True)
    shutil.rmtree(build, ignore_errors=True)
    return built


def lib_dir_with_cpu_backend(cpu_backend: Path, out: Path) -> Path:
    """A copy of the installed build's libraries with its CPU backend replaced by `cpu_backend`."""
    installed = installed_lib_dir()
    assert installed is not None
    shutil.copytree(installed, out, symlinks=True)
    for old in out.glob("libggml-cpu.so*"):
        old.unlink()
        shutil.copy2(cpu_backend, old)   # every name the loader may ask for (libggml-cpu.so, .so.0, ...)
    return out


def broken_lib_dir(sdist: Path, cmake_flags: str, work: Path) -> Path:
    """The installed libraries with libggml-cpu rebuilt using `cmake_flags`."""
    return lib_dir_with_cpu_backend(build_cpu_backend(sdist, cmake_flags, work), work / "lib")
