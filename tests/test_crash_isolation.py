"""A native crash or hang fails one test, says why, and the rest of the suite still runs and reports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO

CRASHING_SUITE = '''
import os
import signal
import time

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


@pytest.mark.native_llm
@pytest.mark.timeout(2)
def test_native_generation_hangs_where_its_time_limit_cannot_reach():
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})   # as a thread stuck in native code
    time.sleep(120)


@pytest.mark.native_llm
def test_native_generation_without_a_model_skips():
    pytest.skip("no test model cached")


def test_after():
    assert True
'''


def test_a_crash_or_hang_in_a_native_test_fails_that_test_and_the_run_goes_on(tmp_path: Path) -> None:
    (tmp_path / "test_crashing.py").write_text(CRASHING_SUITE)
    env = {**os.environ, "PYTHONPATH": str(REPO), "EDGETEACH_KILL_MARGIN_S": "3"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.support.crash_isolation", "-p", "no:cacheprovider",
         "-W", "ignore::pytest.PytestUnknownMarkWarning", str(tmp_path / "test_crashing.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 1, out          # failed, not killed by the signal (-11) and not passed (0)
    assert "CRASHED with signal 11 (SIGSEGV)" in out, out
    assert "CRASHED with signal 4 (SIGILL)" in out, out
    assert "killed after 5 s" in out, out    # the hang: its 2 s limit could not end it, the parent did at 2 + 3 s
    assert "3 failed, 3 passed, 1 skipped" in out, out   # an isolated test can pass or skip; the tests after ran
