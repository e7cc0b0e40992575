"""Waiting on conditions with deadlines instead of fixed sleeps.

A fixed `time.sleep(x)` before an assert is either too short on a loaded machine (flaky) or too long
everywhere (slow), and before a NEGATIVE assert ("nothing was published") it proves nothing at all: the
forbidden thing may simply not have happened yet. So tests wait for a condition with a generous deadline,
and check "nothing happened" only after a positive marker that must come after the forbidden thing
(a reply to a ping sent after it, a counter that moved past it, a sync message through the broker).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, message: str | Callable[[], str], interval: float = 0.05) -> T:
    """Calls `predicate()` until it returns something truthy and returns that value; raises AssertionError
    naming `message` (a string, or a callable giving one, e.g. to attach a log) after `timeout` seconds.
    The predicate is called once more at the deadline, so a slow last poll never fails a test that passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(interval, left))
    value = predicate()
    if value:
        return value
    text = message() if callable(message) else message
    raise AssertionError(f"timed out after {timeout:g} s waiting for {text}")
