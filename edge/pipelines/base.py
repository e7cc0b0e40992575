"""What the daemon sees of a pipeline: the interface between pipelines/ and the MQTT/daemon layer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Protocol


@dataclass
class Decision:
    """One classified, smoothed and decided reading of a pipeline. `changed` is True when the decided
    label differs from the previous decision (an MQTT event is published then)."""

    pipeline: str
    label: str
    confidence: float
    scores: dict[str, float]
    ts: float  # Unix seconds when the frame/window was captured
    seq: int
    model: str  # bundle path or name
    model_sha256: str
    latency_ms: float  # capture -> decision
    changed: bool = False
    raw_label: str = ""  # top label before threshold/smoothing
    extra: dict[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("changed")
        data.pop("extra")
        data.update(self.extra)
        return data


DecisionCallback = Callable[[Decision], None]
StatusCallback = Callable[[str, str, str], None]  # (pipeline name, state, detail)


class Pipeline(Protocol):
    """Implemented by the vision and audio pipelines. All methods are thread-safe."""

    name: str
    kind: str  # "camera" or "microphone"

    def start(self) -> None: ...

    def stop(self, timeout: float = 3.0) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    @property
    def paused(self) -> bool: ...

    def set_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Applies runtime settings (threshold, smoothing, ...); raises ValueError naming a bad key or
        value and changes nothing then. Returns the settings now in force."""
        ...

    def reload(self, bundle_path: str) -> None:
        """Loads and validates a new bundle, then swaps it in. Raises BundleError and keeps the old
        model running when the new one is bad."""
        ...

    def snapshot_jpeg(self) -> bytes | None:
        """The last captured frame as JPEG (camera pipelines), else None."""
        ...

    def stats(self) -> dict[str, Any]:
        """Counters: frames_in, frames_classified, frames_dropped, fps, latency_p50_ms, latency_p95_ms,
        queue_size, source_state, source_restarts, ..."""
        ...
