"""edge.host.memory: after `fix_mmap_threshold`, a big block freed and asked for again is still served by its
own mmap (so its pages go back to the system on free) instead of glibc's heap; a malloc tunable set by the user
wins. Each case runs in a fresh interpreter: the threshold is per process and only moves once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.paths import REPO

# glibc's mallinfo2().hblkhd: bytes held in blocks served by mmap. A 1 MiB block malloc'd, freed, then malloc'd
# again: glibc's dynamic threshold rose to 1 MiB at the first free, so without a fixed threshold the second one
# comes from the heap and hblkhd does not count it.
PROBE = """
import ctypes, json, sys
from edge.host.memory import fix_mmap_threshold

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
applied = fix_mmap_threshold() if sys.argv[1] == "fix" else None
size = 1 << 20
libc.free(libc.malloc(size))
before = libc.mallinfo2().hblkhd
block = libc.malloc(size)
mapped = libc.mallinfo2().hblkhd - before
libc.free(block)
print(json.dumps({"applied": applied, "mapped_bytes": mapped}))
"""


def probe(mode: str, **env: str) -> dict[str, int | bool | None]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    full_env.update(env)
    out = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=str(REPO), env=full_env, capture_output=True, text=True,
                         timeout=60, check=True)
    result: dict[str, int | bool | None] = json.loads(out.stdout)
    return result


@pytest.fixture(autouse=True)
def glibc_only() -> None:
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        libc = ""
    if not libc.startswith("glibc"):
        pytest.skip("glibc's malloc only")


def test_without_the_fix_glibc_serves_a_freed_size_from_its_heap() -> None:
    # The premise: otherwise the next test could not fail.
    assert probe("plain")["mapped_bytes"] == 0


def test_a_fixed_threshold_keeps_big_blocks_in_their_own_mmap() -> None:
    result = probe("fix")
    assert result["applied"] is True
    assert result["mapped_bytes"] >= 1 << 20


def test_a_malloc_tunable_set_by_the_user_wins() -> None:
    result = probe("fix", MALLOC_TRIM_THRESHOLD_="33554432")
    assert result["applied"] is False
    result = probe("fix", GLIBC_TUNABLES="glibc.malloc.mmap_threshold=4194304")
    assert result["applied"] is False
    assert result["mapped_bytes"] == 0  # the user's 4 MiB threshold, not ours


def test_other_glibc_tunables_do_not_stop_it() -> None:
    assert probe("fix", GLIBC_TUNABLES="glibc.cpu.hwcap_mask=0")["applied"] is True


def test_edge_run_fixes_the_threshold_before_the_daemon_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    import edge.daemon.daemon
    import edge.host.memory
    from edge.cli.main import main

    calls: list[str] = []
    monkeypatch.setattr(edge.host.memory, "fix_mmap_threshold", lambda: calls.append("fix") or True)
    monkeypatch.setattr(edge.daemon.daemon, "run_daemon", lambda path: calls.append(f"run {path}") or 0)
    assert main(["run", "-c", "some.yaml"]) == 0
    assert calls == ["fix", "run some.yaml"]
