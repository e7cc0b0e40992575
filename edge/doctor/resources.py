"""Resources and the SoC: free memory and disk, temperature, Raspberry Pi throttling, and the systemd units."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge.doctor.base import STATE_DIR, CheckResult
from edge.doctor.machine import is_raspberry_pi
from edge.host.procstats import hottest_thermal_zone

if TYPE_CHECKING:
    from edge.config import EdgeConfig


def check_memory() -> CheckResult:
    try:
        import psutil

        memory = psutil.virtual_memory()
    except Exception as exc:
        return CheckResult("memory", "warn", f"cannot read ({exc})")
    detail = f"{memory.available / 2**20:.0f} MiB free of {memory.total / 2**20:.0f} MiB"
    if memory.available < 200 * 2**20:
        return CheckResult("memory", "warn", detail, "stop other programs, use int8 bundles, or disable the LLM (llm.enabled: false)")
    return CheckResult("memory", "ok", detail)


def check_disk() -> CheckResult:
    target = next((p for p in (STATE_DIR, Path.home(), Path("/")) if p.exists()), Path("/"))
    try:
        usage = shutil.disk_usage(target)
    except OSError as exc:
        return CheckResult("disk", "warn", f"cannot read free space of {target} ({exc})")
    free_mb = usage.free / 2**20
    detail = f"{free_mb:.0f} MiB free on {target}"
    if free_mb < 100:
        return CheckResult("disk", "fail", detail,
                           "free space: `sudo journalctl --vacuum-size=100M`, remove old bundles from /var/lib/edgeteach/models")
    if free_mb < 1024:
        return CheckResult("disk", "warn", detail,
                           "less than 1 GiB left: `sudo journalctl --vacuum-size=100M`, remove old bundles and models")
    return CheckResult("disk", "ok", detail)


def check_temperature() -> CheckResult:
    reading = hottest_thermal_zone()
    if reading is None:
        return CheckResult("temperature", "skip", "no thermal sensors readable here")
    hottest, kind = reading
    detail = f"{hottest:.1f} °C ({kind})"
    if hottest >= 80.0:
        return CheckResult("temperature", "warn", f"{detail}: the SoC slows down from 80 °C (a Pi at 85 °C throttles hard)",
                           "add a heatsink or the active cooler, give the case airflow, lower max_fps or use int8 bundles")
    return CheckResult("temperature", "ok", detail)


THROTTLE_BITS = {
    0: "under-voltage now",
    1: "ARM frequency capped now",
    2: "throttled now",
    3: "soft temperature limit now",
    16: "under-voltage has occurred",
    17: "frequency capping has occurred",
    18: "throttling has occurred",
    19: "soft temperature limit has occurred",
}


def decode_throttled(value: int) -> list[str]:
    return [text for bit, text in THROTTLE_BITS.items() if value & (1 << bit)]


def check_throttling() -> CheckResult:
    binary = shutil.which("vcgencmd")
    if not binary:
        return CheckResult("throttling", "skip", "no vcgencmd (not a Raspberry Pi)" if not is_raspberry_pi() else "vcgencmd not installed")
    try:
        out = subprocess.run([binary, "get_throttled"], capture_output=True, text=True, timeout=5).stdout.strip()
        value = int(out.split("=", 1)[1], 16)
    except (OSError, subprocess.SubprocessError, IndexError, ValueError) as exc:
        return CheckResult("throttling", "warn", f"cannot read `vcgencmd get_throttled` ({exc})",
                           "add the user to the video group (vcgencmd needs /dev/vchiq)")
    problems = decode_throttled(value)
    if not problems:
        return CheckResult("throttling", "ok", f"none (get_throttled=0x{value:x})")
    fix = "use the official power supply (5 V 5 A for a Pi 5, 5 V 3 A for a Pi 4) and a short, thick cable" if value & 0x10001 else \
        "cool the Pi: heatsink or active cooler, airflow in the case"
    return CheckResult("throttling", "warn", f"0x{value:x}: {', '.join(problems)}", fix)


@dataclass(frozen=True)
class UnitState:
    """What systemctl says of a unit: `is-enabled` (enabled, disabled, masked, not-found, ...) and `is-active`
    (active, inactive, failed, activating, ...)."""

    enabled: str
    active: str

    @property
    def installed(self) -> bool:
        return bool(self.enabled) and self.enabled != "not-found"

    @property
    def runs(self) -> bool:
        """Starts at boot or runs now."""
        return self.enabled in ("enabled", "enabled-runtime") or self.active in ("active", "activating", "reloading")


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def unit_state(unit: str) -> UnitState:
    """Raises OSError/SubprocessError when systemctl cannot be run (see systemd_running first)."""
    enabled = subprocess.run(["systemctl", "is-enabled", unit], capture_output=True, text=True, timeout=5).stdout.strip()
    active = subprocess.run(["systemctl", "is-active", unit], capture_output=True, text=True, timeout=5).stdout.strip()
    return UnitState(enabled or "not-found", active)


def check_services(config: EdgeConfig | None = None) -> list[CheckResult]:
    if not systemd_running():
        return [CheckResult("service", "skip", "systemd is not running here")]
    rows: list[CheckResult] = []
    for unit in ("edgeteach.service", "edgeteach-llm.service"):
        try:
            state = unit_state(unit)
        except (OSError, subprocess.SubprocessError) as exc:
            rows.append(CheckResult(unit, "skip", f"systemctl failed ({exc})"))
            continue
        enabled, active = state.enabled, state.active
        # the LLM unit is wanted only when it is the LLM's owner (llm.run_by: systemd; the `llm owner` check)
        wanted = unit == "edgeteach.service" or (config is not None and config.llm.enabled and config.llm.run_by == "systemd")
        if not enabled or enabled == "not-found":
            rows.append(CheckResult(unit, "skip", "not installed"))
        elif wanted and enabled != "enabled":
            rows.append(CheckResult(unit, "warn", f"{enabled}, {active}: it will not start at boot",
                                    f"`sudo systemctl enable --now {unit}`"))
        elif active == "failed":
            rows.append(CheckResult(unit, "warn", f"{enabled}, failed",
                                    f"read why: `journalctl -u {unit.removesuffix('.service')} -b -n 50`; fix, then `sudo "
                                    f"systemctl restart {unit}`"))
        else:
            rows.append(CheckResult(unit, "ok", f"{enabled}, {active}"))
    return rows
