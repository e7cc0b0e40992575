"""A limit on wrong password guesses for a web page (the Studio's class password, the dashboard's): at most N
per client address and M in all within a minute, so neither one computer nor many at once can try passwords
quickly. A guess is counted the moment it is found wrong, before the answer's delay, so guesses sent in
parallel are counted as they arrive rather than after their delays; once a limit is reached every guess from
there (a right one too) is refused until the oldest counted one is a minute old."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_S = 60.0
# wrong guesses allowed per client address and in all, per WINDOW_S (then 429): the dashboard's; the Studio
# sets its own in trainer/studio/limits.py
DEFAULT_PER_CLIENT = 10
DEFAULT_TOTAL = 60


@dataclass(frozen=True)
class Refusal:
    wait_s: int  # whole seconds until a guess may be sent again
    everyone: bool  # the limit for all clients, not this one's


class WrongGuesses:
    """Wrong guesses of the last WINDOW_S seconds, per client address and in all. Memory stays bounded: a
    guess is only counted while the total is under `total`, so at most `total` entries are ever kept."""

    def __init__(self, per_client: int, total: int, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_client, self.total, self.window_s, self.clock = per_client, total, window_s, clock
        self._all: deque[float] = deque()
        self._by_client: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _forget_old(self, now: float) -> None:
        while self._all and now - self._all[0] >= self.window_s:
            self._all.popleft()
        for client in list(self._by_client):
            times = self._by_client[client]
            while times and now - times[0] >= self.window_s:
                times.popleft()
            if not times:
                del self._by_client[client]

    def refusal(self, client: str) -> Refusal | None:
        """Why a guess from `client` may not be judged now, or None when it may."""
        with self._lock:
            now = self.clock()
            self._forget_old(now)
            mine = self._by_client.get(client, deque())
            if len(mine) >= self.per_client:
                return Refusal(self._wait(mine[0], now), everyone=False)
            if len(self._all) >= self.total:
                return Refusal(self._wait(self._all[0], now), everyone=True)
            return None

    def count_wrong(self, client: str) -> Refusal | None:
        """Counts one wrong guess; a Refusal instead when a limit was reached meanwhile (a parallel guess)."""
        with self._lock:
            now = self.clock()
            self._forget_old(now)
            mine = self._by_client.setdefault(client, deque())
            if len(mine) >= self.per_client:
                return Refusal(self._wait(mine[0], now), everyone=False)
            if len(self._all) >= self.total:
                return Refusal(self._wait(self._all[0], now), everyone=True)
            mine.append(now)
            self._all.append(now)
            return None

    def _wait(self, oldest: float, now: float) -> int:
        return max(1, math.ceil(oldest + self.window_s - now))
