"""glibc's malloc held to a fixed mmap threshold, so the daemon's large buffers go back to the system.

glibc serves a request of at least the *mmap threshold* (128 KiB at start) with its own mmap, unmapped again on
free. But the threshold is dynamic: each time such a block is freed, it rises to that block's size (up to
32 MiB). The daemon frees big blocks all the time (a 640x480 camera frame is 900 KiB; ONNX Runtime's
model loading, the protobuf and its copies, several MiB), so after a few frames they all come from the heap
and its per-thread arenas, where fragmentation keeps the freed pages resident. Measured with
bench/bench_footprint.py (docs/benchmarks.md), `edge run` with a camera and a microphone pipeline kept 25-40 MB
more RSS that way, which a Raspberry Pi Zero 2 W (512 MB in all) cannot spare; fixing the threshold at glibc's
own starting value cost about 3 % more CPU per image (an mmap and its page faults for each frame).

Setting MALLOC_MMAP_THRESHOLD_ (or any of glibc's MALLOC_*_ tunables) in the environment does the same before
Python starts; when one is set it wins and nothing is changed here. On a C library that is not glibc (musl,
macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>: mallopt parameter numbers
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value, made fixed (it turns the dynamic threshold off)
USER_TUNABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version") else None


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fixes glibc's mmap threshold at `threshold` bytes for this process (call it early, before the big
    allocations). True when it was set; False where the user set a malloc tunable or the C library is not glibc."""
    chosen = [name for name in USER_TUNABLES if name in os.environ]
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        chosen.append("GLIBC_TUNABLES")
    if chosen:
        log.debug("malloc: %s set in the environment; left as it is", ", ".join(chosen))
        return False
    libc = _glibc()
    if libc is None:
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return bool(libc.mallopt(M_MMAP_THRESHOLD, int(threshold)))
