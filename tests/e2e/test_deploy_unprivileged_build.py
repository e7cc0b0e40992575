"""Code from a package index never runs as root during an install (issue 12 item 14).

deploy/llama-cpp.sh, as the installer uses it (as root, with LLAMA_BUILD_USER), is run for real on a stand-in
for llama-cpp-python's source archive: an sdist of the same name and version whose setup.py writes down the
user it ran as and the CMAKE_ARGS it got. The real llama.cpp build takes minutes (tests/e2e/test_llama_build.py
covers it); what is tested here is who runs it and who owns the result. Switching users needs root, and the
build user must be able to run the Python: the system's /usr/bin/python3 with its setuptools is used."""

from __future__ import annotations

import os
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.support.paths import REPO

PYTHON = Path("/usr/bin/python3")
BUILD_USER = "nobody"
SETUP_PY = '''\
import os
from setuptools import setup

os.makedirs("llama_cpp", exist_ok=True)
with open("llama_cpp/__init__.py", "w") as handle:
    handle.write(f"BUILT_BY_UID = {os.getuid()}\\nCMAKE_ARGS = {os.environ.get('CMAKE_ARGS')!r}\\n")
setup(name="llama_cpp_python", version="0.3.36", packages=["llama_cpp"])
'''


def fake_sdist(cache: Path) -> None:
    source = cache / "src/llama_cpp_python-0.3.36"
    source.mkdir(parents=True)
    (source / "setup.py").write_text(SETUP_PY)
    (cache / "sdist").mkdir()
    with tarfile.open(cache / "sdist/llama_cpp_python-0.3.36.tar.gz", "w:gz") as archive:
        archive.add(source, arcname=source.name)


def test_llama_wheel_is_built_as_the_build_user_and_kept_as_roots(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("switching to the build user needs root (the installer runs as root)")
    probe = subprocess.run(["runuser", "-u", BUILD_USER, "--", str(PYTHON), "-c", "import setuptools"], capture_output=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"{BUILD_USER} cannot run {PYTHON} with setuptools here: {probe.stderr.decode()[-300:]}")
    cache = tmp_path / "cache"  # root's, private (pytest's folders are 0700), like /root/.cache
    fake_sdist(cache)
    script = f'source "{REPO}/deploy/llama-cpp.sh"; llama_wheel "{PYTHON}" "-DGGML_NATIVE=OFF -DSTAND_IN=1" --no-build-isolation'

    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "EDGETEACH_CACHE": str(cache), "LLAMA_BUILD_USER": BUILD_USER})

    assert result.returncode == 0, result.stdout + result.stderr
    wheel = Path(result.stdout.strip().splitlines()[-1])
    assert wheel.is_file() and wheel.is_relative_to(cache / "llama-wheels"), result.stdout
    assert wheel.stat().st_uid == 0 and not wheel.stat().st_mode & 0o022  # root's: the build user cannot swap it later
    with zipfile.ZipFile(wheel) as archive:
        built = archive.read("llama_cpp/__init__.py").decode()
    assert f"BUILT_BY_UID = {subprocess.run(['id', '-u', BUILD_USER], capture_output=True, text=True).stdout.strip()}" in built
    assert "-DSTAND_IN=1" in built  # the build flags reach the build user's pip
    assert not list(Path("/tmp").glob("tmp.*/out/llama_cpp_python-*"))  # no scratch folder left behind
