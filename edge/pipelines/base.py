"""A pipeline: a source, a model and post-processing, emitting Decisions. What the daemon sees of one (the
`Pipeline` protocol, `Decision`) and what camera and microphone pipelines share (`BasePipeline`: the model,
swappable at run time, post-processing, pause/resume, runtime settings, statistics and the decision callback)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import numpy as np
from pydantic import ValidationError

from edge.config.pipelines import CameraPipelineConfig, MicrophonePipelineConfig, bundle_task_mismatch
from edge.core.bundle import Bundle, BundleError, load_bundle
from edge.pipelines.latest import LatestClassified
from edge.pipelines.postprocess import PostProcessor, PostSettings
from edge.sources.base import StatusCallback
from edge.sources.supervisor import STOPPED, SourceSupervisor

if TYPE_CHECKING:  # ONNX Runtime and OpenCV load only when a pipeline is built (load_model)
    from edge.core.session import Classifier

log = logging.getLogger(__name__)

# The config section a pipeline runs on: VisionPipeline takes a camera entry, AudioPipeline a microphone one.
ConfigT = TypeVar("ConfigT", CameraPipelineConfig, MicrophonePipelineConfig)


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

    def snapshot_jpeg(self, max_side: int | None = None) -> bytes | None:
        """The last captured frame as JPEG (camera pipelines), its longer side at most `max_side`, else None."""
        ...

    def stats(self) -> dict[str, Any]:
        """Counters: frames_in, frames_classified, frames_dropped, fps, latency_p50_ms, latency_p95_ms,
        queue_size, source_state, source_restarts, ..."""
        ...


COMMON_PARAMS = ("threshold", "unknown_label", "smoothing", "min_hold_s")


def load_model(cfg: CameraPipelineConfig | MicrophonePipelineConfig, bundle_path: str | None = None) -> Classifier:
    """Loads and checks a bundle for this pipeline (task matches kind, variant exists, session builds)."""
    from edge.core.session import Classifier

    path = bundle_path or cfg.bundle
    bundle: Bundle = load_bundle(path)
    want = bundle_task_mismatch(cfg.kind, bundle.task)
    if want:
        raise BundleError(f"{path}: an {bundle.task} bundle cannot drive the {cfg.kind} pipeline '{cfg.name}'; it needs an {want} bundle")
    return Classifier(bundle, variant=cfg.variant, threads=cfg.threads, providers=cfg.providers)


def _rounded(seconds: float | None) -> float | None:
    return round(seconds, 2) if seconds is not None else None


class RateMeter:
    """Events per second over the last few seconds."""

    def __init__(self, horizon_s: float = 5.0) -> None:
        self.horizon_s = horizon_s
        self._times: deque[float] = deque()

    def tick(self, now: float) -> None:
        self._times.append(now)
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.horizon_s:
            self._times.popleft()

    def rate(self, now: float) -> float:
        self._trim(now)
        if len(self._times) < 2:
            return 0.0
        span = max(now - self._times[0], 1e-6)
        return (len(self._times) - 1) / span if span < self.horizon_s else len(self._times) / self.horizon_s


class BasePipeline(Generic[ConfigT]):
    """Base of VisionPipeline and AudioPipeline; subclasses add the source handling and the inference loop."""

    kind = ""
    extra_params: tuple[str, ...] = ()

    def __init__(self, cfg: ConfigT, on_decision: DecisionCallback | None = None, on_status: StatusCallback | None = None,
                 classifier: Classifier | None = None) -> None:
        self.cfg: ConfigT = cfg
        self.name: str = cfg.name
        self.on_decision = on_decision
        self.on_status = on_status
        self.classifier = classifier or load_model(cfg)
        self.post = PostProcessor(self.classifier.bundle.labels, PostSettings.from_pipeline(cfg))
        self._lock = threading.RLock()  # guards classifier/post/cfg swaps against the inference thread
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._cond = threading.Condition()  # capture -> inference hand-off; notified on stop/resume too
        self._thread: threading.Thread | None = None
        self.supervisor: SourceSupervisor | None = None
        self.seq = 0
        self.frames_in = 0
        self.frames_classified = 0
        self.frames_dropped = 0
        self.frames_skipped_paused = 0
        self.errors = 0
        self.last_error = ""
        self._latencies: deque[float] = deque(maxlen=500)
        self._inference_ms: deque[float] = deque(maxlen=500)
        self._in_rate = RateMeter()
        self._out_rate = RateMeter()
        self.started_at = 0.0
        self.latest = LatestClassified()  # what the model last saw or heard, for the dashboard (a reference swap)

    # -- source status -------------------------------------------------------------------------------
    def _relay_status(self, name: str, state: str, detail: str) -> None:
        if self.on_status is not None:
            self.on_status(name, state, detail)

    # -- lifecycle -----------------------------------------------------------------------------------
    def _make_supervisor(self) -> SourceSupervisor:
        raise NotImplementedError

    def _inference_loop(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self.started_at = time.time()
        self.supervisor = self._make_supervisor()
        self._thread = threading.Thread(target=self._guarded_loop, name=f"infer-{self.name}", daemon=True)
        self._thread.start()
        self.supervisor.start()

    def _guarded_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._inference_loop()
            except Exception as exc:  # the loop itself must never die silently; restart it
                self.errors += 1
                self.last_error = f"{exc.__class__.__name__}: {exc}"
                log.exception("%s: inference loop crashed; restarting it", self.name)
                self._stop.wait(0.5)

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        self._wake()
        deadline = time.monotonic() + timeout
        if self.supervisor is not None:
            self.supervisor.stop(max(0.1, deadline - time.monotonic()))
        if self._thread is not None:
            self._thread.join(max(0.1, deadline - time.monotonic()))
        self._thread = None

    def _wake(self) -> None:
        """Wakes the inference thread waiting on `_cond` (for stop and resume)."""
        with self._cond:
            self._cond.notify_all()

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()
        self._wake()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    # -- runtime changes -----------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        data = self.cfg.model_dump(include=set(COMMON_PARAMS) | set(self.extra_params))
        return data

    def set_params(self, params: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(params, dict):
            raise ValueError(f"settings must be a JSON object like {{\"threshold\": 0.8}}, got {type(params).__name__}")
        allowed = set(COMMON_PARAMS) | set(self.extra_params)
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise ValueError(f"cannot set {', '.join(unknown)} at run time; settable: {', '.join(sorted(allowed))}")
        with self._lock:
            data = self.cfg.model_dump()
            for key, value in params.items():
                if key == "smoothing" and isinstance(value, dict) and isinstance(data.get("smoothing"), dict):
                    data["smoothing"] = {**data["smoothing"], **value}  # a partial smoothing update keeps the rest
                else:
                    data[key] = value
            try:
                new_cfg = type(self.cfg).model_validate(data)
                settings = PostSettings.from_pipeline(new_cfg)
            except ValidationError as exc:
                problems = []
                for err in exc.errors():
                    path = ".".join(str(p) for p in err["loc"])
                    problems.append(f"{path}: {err.get('input')!r} is not allowed: {err['msg'].replace('Input should be', 'must be')}")
                raise ValueError("; ".join(problems)) from None
            self.cfg = new_cfg
            self.post.reconfigure(settings)
            self._apply_params(new_cfg)
            return self.params()

    def _apply_params(self, cfg: ConfigT) -> None:
        """Subclasses pick up their own settings (mirror, max_fps, hop_s)."""

    def reload(self, bundle_path: str) -> None:
        new = load_model(self.cfg, bundle_path)  # raises BundleError; the old model keeps running
        with self._lock:
            labels_changed = new.bundle.labels != self.classifier.bundle.labels
            self.classifier = new
            self.cfg = self.cfg.model_copy(update={"bundle": str(bundle_path)})
            if labels_changed:
                self.post = PostProcessor(new.bundle.labels, self.post.settings)
            self._on_model_changed(new)
        log.info("%s: now running %s (%s)", self.name, bundle_path, new.sha256[:12])

    def _on_model_changed(self, classifier: Classifier) -> None:
        """Subclasses recompute what depends on the model (audio window sizes)."""

    def snapshot_jpeg(self, max_side: int | None = None) -> bytes | None:
        return None

    # -- decisions -----------------------------------------------------------------------------------
    def _decide(self, probs: np.ndarray, capture_ts: float, inference_ms: float, classifier: Classifier,
                extra: dict[str, Any] | None = None) -> Decision:
        now = time.time()
        with self._lock:
            outcome = self.post.update(probs, capture_ts)
            self.seq += 1
            seq = self.seq
        latency_ms = max(0.0, (now - capture_ts) * 1000.0)
        self.frames_classified += 1
        self._latencies.append(latency_ms)
        self._inference_ms.append(inference_ms)
        self._out_rate.tick(time.monotonic())
        decision = Decision(
            pipeline=self.name,
            label=outcome.label,
            confidence=round(outcome.confidence, 6),
            scores={k: round(v, 6) for k, v in outcome.scores.items()},
            ts=capture_ts,
            seq=seq,
            model=str(classifier.bundle.path),
            model_sha256=classifier.sha256,
            latency_ms=round(latency_ms, 3),
            changed=outcome.changed,
            raw_label=outcome.raw_label,
            extra=dict(extra or {}),
        )
        if self.on_decision is not None:
            try:
                self.on_decision(decision)
            except Exception:
                self.errors += 1
                log.exception("%s: decision consumer failed; carrying on", self.name)
        return decision

    def _inference_failed(self, exc: Exception) -> None:
        self.errors += 1
        self.last_error = f"{exc.__class__.__name__}: {exc}"
        if self.errors <= 5 or self.errors % 100 == 0:
            log.error("%s: inference failed (%s); skipping this input (%d errors so far)", self.name, self.last_error, self.errors)

    # -- stats ---------------------------------------------------------------------------------------
    def queue_size(self) -> int:
        return 0

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        lat = np.array(self._latencies, dtype=np.float64) if self._latencies else None
        inf = np.array(self._inference_ms, dtype=np.float64) if self._inference_ms else None
        sup = self.supervisor
        classifier = self.classifier
        return {
            "pipeline": self.name,
            "kind": self.kind,
            "frames_in": self.frames_in,
            "frames_classified": self.frames_classified,
            "frames_dropped": self.frames_dropped,
            "frames_skipped_paused": self.frames_skipped_paused,
            "errors": self.errors,
            "last_error": self.last_error,
            "fps": round(self._out_rate.rate(now), 3),
            "input_fps": round(self._in_rate.rate(now), 3),
            "latency_p50_ms": round(float(np.percentile(lat, 50)), 3) if lat is not None else None,
            "latency_p95_ms": round(float(np.percentile(lat, 95)), 3) if lat is not None else None,
            "inference_p50_ms": round(float(np.percentile(inf, 50)), 3) if inf is not None else None,
            "queue_size": self.queue_size(),
            "source_state": sup.state if sup is not None else STOPPED,
            "source_detail": sup.detail if sup is not None else "",
            "source_restarts": sup.restarts if sup is not None else 0,
            # seconds since the source's last frame/block; /healthz is 503 while it exceeds source_stall_timeout_s
            "last_frame_age_s": _rounded(sup.last_item_age() if sup is not None else None),
            "source_stall_timeout_s": sup.stall_timeout_s if sup is not None else None,
            "source_stalled": sup.stale() if sup is not None else False,
            "source_stalls": sup.stalls if sup is not None else 0,
            "paused": self.paused,
            "model": str(classifier.bundle.path),
            "model_sha256": classifier.sha256,
            "variant": classifier.variant,
            "providers": classifier.providers,
            "label": self.post.current,
        }
