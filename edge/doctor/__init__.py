"""`edge doctor`: checks everything the device daemon depends on and says how to fix each failure.

One module per kind of check: `machine` (Python, packages, ONNX Runtime providers, the board),
`config_file`, `cameras`, `microphones`, `broker` (MQTT), `bundles`, `llm`, `resources` (memory, disk,
temperature, throttling, the systemd units); `base` holds the row type and the options, `runner` runs them
all in order and formats the report. Checks never raise: a check that crashes becomes a `fail` row naming
the exception, so one broken library cannot hide the others.
"""

from __future__ import annotations

from edge.doctor.base import DEFAULT_CONFIG, STATE_DIR, CheckResult, DoctorOptions, Status
from edge.doctor.resources import decode_throttled
from edge.doctor.runner import as_json, exit_code, format_table, run_checks

__all__ = [
    "DEFAULT_CONFIG",
    "STATE_DIR",
    "CheckResult",
    "DoctorOptions",
    "Status",
    "as_json",
    "decode_throttled",
    "exit_code",
    "format_table",
    "run_checks",
]
