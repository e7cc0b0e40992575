"""A native crash fails one test, names the signal, and the rest of the suite still runs and reports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO

CRASHING_SUITE = '''
import os
import signal

import pytest


def test_before():
    assert True


@pytest.mark.native_llm
def test_native_generation_that_works_passes_in_its_child():
    assert True


@pytest.mark.native_llm
def test_native_generation_segfaults():
    os.kill(os.getpid(), signal.SIGSEGV)   # what a llama.cpp built for another CPU does


@pytest.mark.native_llm
def test_native_generation_hits_an_illegal_instruction():
    os.kill(os.getpid(), signal.SIGILL)


def test_after():
    assert True
'''


def test_a_segfault_in_a_native_test_fails_that_test_and_the_run_goes_on(tmp_path: Path) -> None:
    (tmp_path / "test_crashing.py").write_text(CRASHING_SUITE)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.support.crash_isolation", "-p", "no:cacheprovider",
         "-W", "ignore::pytest.PytestUnknownMarkWarning", str(tmp_path / "test_crashing.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 1, out          # failed, not killed by the signal (-11) and not passed (0)
    assert "CRASHED with signal 11 (SIGSEGV)" in out, out
    assert "CRASHED with signal 4 (SIGILL)" in out, out
    assert "2 failed, 3 passed" in out, out   # a forked test can pass; the tests after the crash ran
