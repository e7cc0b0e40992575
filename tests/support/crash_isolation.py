"""A pytest plugin: each test marked `native_llm` runs alone in a fresh pytest process.

llama.cpp built for another CPU dies with SIGILL or SIGSEGV inside its first matrix product. In the pytest
process that would end the whole run with "Segmentation fault" and no report; in a child process it fails
that one test, "running the test CRASHED with signal 11 (SIGSEGV)", and the rest of the suite still runs.

A fresh interpreter, not a fork (pytest-forked did this before): a forked child inherits the parent's threads'
locks and OpenMP's thread pool (llama.cpp and torch both use libgomp, which is not fork-safe), and in a full
run, after the trainer's tests, a forked llama.cpp test hung; its time limit then fired in the parent, inside
pytest-forked's wait, and ended the whole run with INTERNALERROR. Here the parent's own time limit is turned
off for these tests and the child gets the test's limit, plus `KILL_MARGIN_S` after which the parent kills it:
a hung child fails its test and the run goes on.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from _pytest.reports import TestReport

CHILD_ENV = "EDGETEACH_ISOLATED_TEST"  # set in the child: run the test right there
# past the test's own limit (pytest-timeout, inside the child), the parent kills the child (the variable: for the test of this)
KILL_MARGIN_S = float(os.environ.get("EDGETEACH_KILL_MARGIN_S", "60"))
OUTPUT_TAIL_CHARS = 20_000  # of the child's output, kept in a failure's report
LIMIT_KEY = pytest.StashKey[float]()


def _isolated(item: pytest.Item) -> bool:
    return item.get_closest_marker("native_llm") is not None and not os.environ.get(CHILD_ENV)


def _limit_s(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    if marker is not None:
        value = marker.kwargs.get("timeout", marker.args[0] if marker.args else None)
        if value is not None:
            return float(value)
    return float(item.config.getini("timeout") or 0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _isolated(item):
            item.stash[LIMIT_KEY] = _limit_s(item)
            item.add_marker(pytest.mark.timeout(0), append=False)  # the parent waits on the child's own limit


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    if not _isolated(item):
        return None
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    started = time.monotonic()
    outcome, longrepr = _run_child(item)
    duration = time.monotonic() - started
    # What the tests before set up here (module and session fixtures) is torn down as far as the next test needs,
    # as pytest's own protocol does after every test; the child did this test's own setup and teardown.
    teardown, teardown_text = "passed", None
    try:
        item.session._setupstate.teardown_exact(nextitem)
    except Exception as exc:  # a fixture's finaliser failed: said on this test, as pytest would
        teardown, teardown_text = "failed", f"tearing down the fixtures of the tests before: {exc!r}"
    for when, result, text in (("setup", "passed", None), ("call", outcome, longrepr), ("teardown", teardown, teardown_text)):
        report = TestReport(item.nodeid, item.location, {k: 1 for k in item.keywords}, result, text, when,
                            duration=duration if when == "call" else 0.0)
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def _run_child(item: pytest.Item) -> tuple[str, object]:
    """("passed" | "failed" | "skipped", the report's longrepr) of the test run in a fresh pytest process."""
    limit = item.stash.get(LIMIT_KEY, 0.0)
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", __name__, "--no-header",
               "-W", "ignore::pytest.PytestUnknownMarkWarning", f"--rootdir={item.config.rootpath}", item.nodeid]
    env = {**os.environ, CHILD_ENV: "1"}
    try:
        run = subprocess.run(command, cwd=item.config.rootpath, env=env, capture_output=True, text=True,
                             timeout=limit + KILL_MARGIN_S if limit else None)
    except subprocess.TimeoutExpired as exc:
        out = "".join(part.decode(errors="replace") if isinstance(part, bytes) else part  # bytes, despite text=True
                      for part in (exc.stdout or "", exc.stderr or ""))
        return "failed", f"the test's child process was killed after {limit + KILL_MARGIN_S:.0f} s (its limit, {limit:.0f} s, " \
                         f"did not end it: hung in native code?)\n{out[-OUTPUT_TAIL_CHARS:]}"
    out = run.stdout + run.stderr
    if run.returncode < 0:
        name = signal.Signals(-run.returncode).name
        return "failed", f"running the test CRASHED with signal {-run.returncode} ({name})\n{out[-OUTPUT_TAIL_CHARS:]}"
    if run.returncode == 0:
        skip = re.search(r"^SKIPPED \[\d+\] (.+?):(\d+): (.*)$", out, re.MULTILINE)
        if skip and not re.search(r"\b\d+ passed\b", out):
            return "skipped", (skip.group(1), int(skip.group(2)) - 1, skip.group(3))
        return "passed", None
    return "failed", f"the test failed in its own process (exit status {run.returncode}):\n{out[-OUTPUT_TAIL_CHARS:]}"
