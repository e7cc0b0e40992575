"""Preview: one webcam frame or one microphone clip from the page, classified by the project's trained bundle
with the device's own code (edge.core: the bundle contract, the ONNX Runtime session, the image decode and fit
of `edge predict`, the sound windows of the microphone pipeline), so what the page shows is what the Pi will say.

Sessions are kept per (project, variant, bundle on disk), a few at a time: a page posts frames in a loop, and
loading a model for each would cost far more than running it. A finished training replaces the bundle folder,
which changes the key, so the next frame loads the new model."""

from __future__ import annotations

import io
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import soundfile
from PIL import Image, UnidentifiedImageError

from edge.core.bundle import VARIANT_FILES, Bundle, BundleError, load_bundle
from edge.core.classify import classify_waveform
from edge.core.images import ImageDecodeError, decode_image, model_min_side
from edge.core.session import Classifier
from trainer.studio.projects import Project, ProjectError

VARIANTS = tuple(VARIANT_FILES)  # fp32, int8
IMAGE_TYPES = ("image/jpeg", "image/png")
WAV_TYPES = ("audio/wav", "audio/x-wav", "audio/wave")
TRAIN_FIRST = "train the model first (2. Train), then preview it"
# a training finishing swaps the bundle folder while a frame is read; a damaged folder answers the same way
REPLACED = "the model could not be loaded (a training may be finishing right now): try again in a moment, or train again"


@dataclass(frozen=True)
class PreviewLimits:
    """What one Preview request may hold. A model-sized webcam frame is 5-30 KB; a 5 s clip at 48 kHz is 480 KB."""

    max_body_bytes: int = 1024 * 1024
    # a 1 MB PNG of one colour can claim hundreds of megapixels: its header is checked before decoding
    max_frame_pixels: int = 4_000_000
    max_clip_seconds: float = 5.0
    min_sample_rate: int = 8000
    max_sample_rate: int = 96000
    # sessions kept loaded (an EfficientNet-Lite0 session is ~20-40 MB): a handful of pupils previewing at once
    # keep theirs; beyond that the least recently used one is loaded again on its next frame
    max_sessions: int = 8


@dataclass(frozen=True)
class PreviewResult:
    label: str
    confidence: float
    scores: dict[str, float]
    variant: str
    ms: float  # on the server: decoding, fitting and the model run

    def to_dict(self) -> dict[str, object]:
        return {"label": self.label, "confidence": self.confidence, "scores": self.scores, "variant": self.variant,
                "ms": round(self.ms, 2)}


def model_info(bundle: Bundle) -> dict[str, object]:
    """What the page needs to send frames or clips the model can take, and which variants it may switch to."""
    info: dict[str, object] = {"task": bundle.task, "labels": list(bundle.labels),
                               "variants": [v for v in VARIANTS if v in bundle.variants]}
    if bundle.task == "image":
        info["input_size"] = list(bundle.image_size)  # [height, width]
    else:
        info.update(sample_rate=bundle.sample_rate, window_samples=bundle.window_samples, hop_samples=bundle.hop_samples)
    return info


class PreviewModels:
    """Loaded classifiers, least recently used dropped first; safe to use from several request threads
    (an ONNX Runtime session may run from several threads at once)."""

    def __init__(self, limits: PreviewLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._loaded: OrderedDict[tuple[str, str, int, int], Classifier] = OrderedDict()

    def bundle(self, project: Project) -> Bundle:
        """The project's current bundle (manifest only read: no model loaded)."""
        if not (project.model_dir / "manifest.json").is_file():
            raise ProjectError(TRAIN_FIRST, 409)
        try:
            return load_bundle(project.model_dir, verify_checksums=False)
        except BundleError:  # a training finishing right now swaps the folder
            raise ProjectError(REPLACED, 409) from None

    def classifier(self, project: Project, variant: str) -> Classifier:
        if variant not in VARIANTS:
            raise ProjectError(f"variant must be one of {', '.join(VARIANTS)}, not {variant[:20]!r}", 400)
        try:
            stat = (project.model_dir / "manifest.json").stat()
        except FileNotFoundError:
            raise ProjectError(TRAIN_FIRST, 409) from None
        # a new training writes a new folder and renames it into place: new inode, new mtime
        key = (project.name, variant, stat.st_mtime_ns, stat.st_ino)
        with self._lock:
            found = self._loaded.get(key)
            if found is not None:
                self._loaded.move_to_end(key)
                return found
        # loaded outside the lock: one pupil's model loading does not hold up the others' frames
        try:
            bundle = load_bundle(project.model_dir)  # checksums verified: this is the model the page will show
        except BundleError:
            raise ProjectError(REPLACED, 409) from None
        if variant not in bundle.variants:
            raise ProjectError(f"this model has no {variant} copy (it has: {', '.join(bundle.variants)}); "
                               "choose fp32, or train again to make one", 404)
        try:
            loaded = Classifier(bundle, variant=variant)
        except BundleError:
            raise ProjectError(REPLACED, 409) from None
        with self._lock:
            for old in [k for k in self._loaded if k[:2] == key[:2]]:  # an older training of the same project
                del self._loaded[old]
            self._loaded[key] = loaded
            while len(self._loaded) > self.limits.max_sessions:
                self._loaded.popitem(last=False)
        return loaded

    def loaded(self) -> int:
        with self._lock:
            return len(self._loaded)


def media_type(content_type: str) -> str:
    """The request's media type when Preview takes it (checked before the body is read), else a 415."""
    kind = content_type.split(";")[0].strip().lower()
    if kind not in IMAGE_TYPES + WAV_TYPES:
        raise ProjectError(f"send a webcam frame (image/jpeg or image/png) or a clip (audio/wav), not {kind[:40]!r}", 415)
    return kind


def classify(models: PreviewModels, project: Project, variant: str, content_type: str, data: bytes) -> PreviewResult:
    """One frame (JPEG/PNG) or clip (16-bit PCM mono WAV) through the project's model. Raises ProjectError."""
    started = time.perf_counter()
    kind = media_type(content_type)
    classifier = models.classifier(project, variant)
    bundle = classifier.bundle
    if bundle.task == "image":
        if kind not in IMAGE_TYPES:
            raise ProjectError(f"this project's model classifies pictures: send image/jpeg or image/png, not {kind[:40]!r}", 415)
        probs = classifier.predict_image(_frame(data, bundle, models.limits))
    else:
        if kind not in WAV_TYPES:
            raise ProjectError(f"this project's model classifies sounds: send audio/wav, not {kind[:40]!r}", 415)
        samples, rate = _clip(data, models.limits)
        # the microphone pipeline's way: every window across the clip (quiet ones too), averaged
        probs, _ = classify_waveform(classifier, samples, rate, all_windows=True)
    best = int(np.argmax(probs))
    return PreviewResult(label=bundle.labels[best], confidence=float(probs[best]),
                         scores={label: float(p) for label, p in zip(bundle.labels, probs)}, variant=variant,
                         ms=1000 * (time.perf_counter() - started))


def _frame(data: bytes, bundle: Bundle, limits: PreviewLimits) -> np.ndarray:
    """RGB pixels of a frame, decoded as `edge predict` decodes a photo, after checking its size from the header."""
    unreadable = "the frame is not a readable JPEG or PNG image"
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise ProjectError(unreadable, 400) from None
    if width * height > limits.max_frame_pixels:
        raise ProjectError(f"the frame is {width}x{height} pixels; send at most {limits.max_frame_pixels // 1_000_000} "
                           f"megapixels (the model looks at {bundle.image_size[1]}x{bundle.image_size[0]})", 413)
    try:
        return decode_image(io.BytesIO(data), min_side=model_min_side(bundle.image_size))
    except ImageDecodeError:
        raise ProjectError(unreadable, 400) from None


def _clip(data: bytes, limits: PreviewLimits) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate from a 16-bit PCM mono WAV, its header checked before reading it."""
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as wav:
            form, subtype, channels, rate, frames = wav.format, wav.subtype, wav.channels, wav.samplerate, wav.frames
            if form != "WAV" or subtype != "PCM_16" or channels != 1:
                raise ProjectError(f"send a 16-bit PCM mono WAV clip (this one is {form} {subtype}, {channels} channels)", 415)
            if not limits.min_sample_rate <= rate <= limits.max_sample_rate:
                raise ProjectError(f"the clip's sample rate is {rate} Hz; send {limits.min_sample_rate}-{limits.max_sample_rate} Hz", 400)
            if frames < 1 or frames > limits.max_clip_seconds * rate:
                raise ProjectError(f"the clip holds {frames / rate:.2f} s; send a clip of at most {limits.max_clip_seconds:g} s", 413)
            samples = wav.read(dtype="float32")
    except (RuntimeError, TypeError, ValueError):  # soundfile's LibsndfileError is a RuntimeError; others on odd headers
        raise ProjectError("the clip is not a readable WAV file", 400) from None
    return np.ascontiguousarray(samples, dtype=np.float32), int(rate)
