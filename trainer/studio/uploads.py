"""One uploaded image (a file or a webcam frame) or sound (a WAV file or a microphone clip) checked and saved
into a class folder.

The bytes are decoded with the device's own code (edge.core.images, edge.core.audio) before they are kept, so
what the trainer later reads is known to be an image or a sound; the saved name is made here, never taken
from the browser."""

from __future__ import annotations

import io
import os
import secrets
from pathlib import Path

import soundfile
from PIL import Image, UnidentifiedImageError

from edge.core.audio import AudioDecodeError, load_audio
from edge.core.audio_windows import BACKGROUND_LABEL, MIN_CLIP_SECONDS
from edge.core.images import ImageDecodeError, decode_image
from trainer.studio.limits import StudioLimits
from trainer.studio.names import safe_file_stem
from trainer.studio.projects import Project, ProjectError, ProjectStore

# the formats `trainer train` reads (edge.core.images.IMAGE_SUFFIXES), by what Pillow finds in the bytes
SUFFIX_BY_FORMAT = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "WEBP": ".webp", "GIF": ".gif"}


def save_image(store: ProjectStore, project: Project, class_name: str, filename: str, data: bytes) -> str:
    """Checks `data` is an image the trainer reads and writes it to the class folder; returns the saved name."""
    limits: StudioLimits = store.limits
    if len(data) > limits.max_upload_bytes:
        raise ProjectError(f"{filename!r} is {len(data)} bytes; one image may be at most {limits.max_upload_bytes} bytes", 413)
    if not data:
        raise ProjectError(f"{filename!r} is empty", 400)
    folder = project.class_dir(class_name)
    if len(project.samples(class_name)) >= limits.max_samples_per_class:
        raise ProjectError(f"class {class_name!r} already holds {limits.max_samples_per_class} samples, the most one class may", 409)
    # a hidden name while it is checked: neither `trainer train` nor a listing sees a half-written file
    tmp = folder / f".upload-{secrets.token_hex(8)}"
    try:
        try:
            tmp.write_bytes(data)
        except FileNotFoundError:  # the class folder went away meanwhile
            raise ProjectError(f"project {project.name!r} has no class {class_name!r}", 404) from None
        try:
            with Image.open(tmp) as img:  # reads the header only: the size is known before any decoding
                kind, (width, height) = img.format or "", img.size
            if width * height > limits.max_pixels:
                raise ProjectError(f"{filename!r} is {width}x{height} pixels; one image may have at most "
                                   f"{limits.max_pixels // 1_000_000} megapixels", 413)
            decode_image(tmp)
        except (ImageDecodeError, UnidentifiedImageError, OSError, Image.DecompressionBombError):
            raise ProjectError(f"{filename!r} is not an image the trainer can read (JPEG, PNG, BMP, WebP or GIF)", 415) from None
        suffix = SUFFIX_BY_FORMAT.get(kind)
        if suffix is None:
            raise ProjectError(f"{filename!r} is a {kind} image; the trainer reads JPEG, PNG, BMP, WebP or GIF", 415)
        name = f"{safe_file_stem(filename)}_{secrets.token_hex(4)}{suffix}"
        target = folder / name
        with store.lock:
            if not folder.is_dir():  # the class was deleted or renamed meanwhile
                raise ProjectError(f"project {project.name!r} has no class {class_name!r}", 404)
            os.link(tmp, target)  # fails rather than overwrite an existing sample
        return name
    finally:
        tmp.unlink(missing_ok=True)


# WAV sample formats accepted (soundfile's names): 8-bit (unsigned, as WAV stores it), 16/24/32-bit PCM, float
WAV_SUBTYPES = {"PCM_U8": "8-bit", "PCM_16": "16-bit", "PCM_24": "24-bit", "PCM_32": "32-bit", "FLOAT": "float",
                "DOUBLE": "float"}
WAV_RATES = (8000, 48000)  # Hz: a telephone to a studio microphone; the trainer resamples to the model's rate
WAV_CHANNELS = (1, 2)  # mono or stereo (the trainer averages the channels)


def save_sound(store: ProjectStore, project: Project, class_name: str, filename: str, data: bytes) -> str:
    """Checks `data` is a WAV the trainer reads (format, channels, rate and length from its header, then
    decoded in full) and writes it to the class folder (or `_background_noise_`); returns the saved name."""
    limits: StudioLimits = store.limits
    if len(data) > limits.max_sound_bytes:
        raise ProjectError(f"{filename!r} is {len(data)} bytes; one sound may be at most {limits.max_sound_bytes} bytes", 413)
    if not data:
        raise ProjectError(f"{filename!r} is empty", 400)
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ProjectError(f"{filename!r} is not a WAV file; record it here, or convert it to WAV first", 415)
    folder = project.sample_dir(class_name)
    if len(project.samples(class_name)) >= limits.max_samples_per_class:
        raise ProjectError(f"class {class_name!r} already holds {limits.max_samples_per_class} samples, the most one class may", 409)
    background = class_name == BACKGROUND_LABEL
    try:  # the header alone: the length is known before anything is decoded
        info = soundfile.info(io.BytesIO(data))
    except (soundfile.LibsndfileError, RuntimeError, TypeError):
        raise ProjectError(f"{filename!r} is not a WAV file the trainer can read", 415) from None
    if info.format not in ("WAV", "WAVEX") or info.subtype not in WAV_SUBTYPES:
        raise ProjectError(f"{filename!r} holds {info.subtype_info or info.subtype} samples; the trainer reads "
                           f"WAV with 8, 16, 24 or 32-bit PCM or float samples", 415)
    if info.channels not in WAV_CHANNELS or not WAV_RATES[0] <= info.samplerate <= WAV_RATES[1]:
        raise ProjectError(f"{filename!r} has {info.channels} channel(s) at {info.samplerate} Hz; use mono or stereo "
                           f"from {WAV_RATES[0]} to {WAV_RATES[1]} Hz", 415)
    longest = limits.max_background_seconds if background else limits.max_clip_seconds
    if info.frames > longest * info.samplerate:
        what = "a background recording" if background else "one sound of a class"
        raise ProjectError(f"{filename!r} lasts {info.frames / info.samplerate:.1f} s; {what} may last at most "
                           f"{longest:g} s: cut it shorter", 413)
    if background:
        with store.lock:  # `_background_noise_` is made on its first recording
            folder.mkdir(exist_ok=True)
    tmp = folder / f".upload-{secrets.token_hex(8)}"  # hidden, as for images
    try:
        try:
            tmp.write_bytes(data)
        except FileNotFoundError:  # the class folder went away meanwhile
            raise ProjectError(f"project {project.name!r} has no class {class_name!r}", 404) from None
        try:
            samples, rate = load_audio(tmp)  # the trainer's own reading, in full: a cut-off file fails here
        except AudioDecodeError:
            raise ProjectError(f"{filename!r} is not a WAV file the trainer can read", 415) from None
        if samples.size < MIN_CLIP_SECONDS * rate:
            raise ProjectError(f"{filename!r} lasts {1000 * samples.size / rate:.0f} ms; a sound needs at least "
                               f"{1000 * MIN_CLIP_SECONDS:.0f} ms", 400)
        name = f"{safe_file_stem(filename)}_{secrets.token_hex(4)}.wav"
        with store.lock:
            if not folder.is_dir():  # the class was deleted or renamed meanwhile
                raise ProjectError(f"project {project.name!r} has no class {class_name!r}", 404)
            os.link(tmp, folder / name)  # fails rather than overwrite an existing sample
        return name
    finally:
        tmp.unlink(missing_ok=True)


THUMB_SIDE = 112  # twice the page's 56 px thumbnails, for sharp screens


def thumbnail(path: Path) -> bytes:
    """A small JPEG of a sample for the class's thumbnail strip: a phone photo is megabytes, its thumbnail
    a few KB, which matters with a class of browsers on one Wi-Fi."""
    image = Image.fromarray(decode_image(path, min_side=THUMB_SIDE))
    image.thumbnail((THUMB_SIDE, THUMB_SIDE))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()
