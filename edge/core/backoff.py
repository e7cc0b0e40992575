"""Exponential backoff, the one rule for restarting what keeps failing (a camera or microphone source, the
LLM child process): initial, 2x initial, 4x ... up to a maximum; back to initial after a healthy run."""

from __future__ import annotations


class Backoff:
    """initial, 2x initial, 4x ... up to maximum; back to initial after a healthy run."""

    def __init__(self, initial_s: float = 0.5, max_s: float = 30.0, healthy_after_s: float = 10.0) -> None:
        self.initial_s, self.max_s, self.healthy_after_s = initial_s, max_s, healthy_after_s
        self.failures = 0

    def next_delay(self, ran_for_s: float) -> float:
        """The wait before the next start, given how long the last one ran."""
        if ran_for_s >= self.healthy_after_s:
            self.failures = 0
        factor: int = 2 ** self.failures  # int ** int is typed Any (negative exponents give a float)
        delay = min(self.max_s, self.initial_s * factor)
        self.failures += 1
        return delay
