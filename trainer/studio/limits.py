"""Every bound and default of the Studio, defined once (the CLI, the app and the docs read them from here)."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields

from edge.llm.pull import DEFAULT_DIR as PULL_DIR
from trainer.audio.job import AudioTrainOptions
from trainer.image.job import ImageTrainOptions

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8700
DEFAULT_PROJECTS = "studio-projects"
PASSWORD_ENV = "EDGETEACH_STUDIO_PASSWORD"


@dataclass(frozen=True)
class StudioLimits:
    """What one browser may send or make. A webcam frame is ~20 KB and a phone photo 3-8 MB."""

    max_upload_bytes: int = 10 * 1024 * 1024  # one image file
    # pixels of one image: a 10 MB PNG of one colour can claim 200 megapixels (600 MB once decoded); a 48 MP
    # phone photo passes
    max_pixels: int = 50_000_000
    # one sound file: 120 s of 48 kHz stereo 16-bit is 23 MB; the page's own recordings are 16-bit mono
    max_sound_bytes: int = 24 * 1024 * 1024
    max_clip_seconds: float = 30.0  # one sound of a class
    max_background_seconds: float = 120.0  # one `_background_noise_` recording
    max_samples_per_class: int = 2000
    max_classes: int = 50
    max_projects: int = 200
    max_name_chars: int = 60  # project and class names
    max_json_bytes: int = 4096  # settings and names sent as JSON
    max_order_json_bytes: int = 32 * 1024  # a class order: max_classes names of max_name_chars, even \u-escaped
    max_queue: int = 20  # trainings waiting at once
    max_connections: int = 64
    idle_timeout_s: int = 10
    # class password guesses: wrong ones allowed per client address, and in all, per minute (then 429)
    max_wrong_passwords_per_client: int = 10
    max_wrong_passwords_total: int = 60


def _trainer_default(name: str) -> object:
    # the "Advanced" panel starts from what `trainer train` uses, so the two never drift apart
    default = next(f.default for f in fields(ImageTrainOptions) if f.name == name)
    assert default is not MISSING
    return default


DEFAULT_EPOCHS = int(_trainer_default("epochs"))  # type: ignore[call-overload]
DEFAULT_BATCH = int(_trainer_default("batch_size"))  # type: ignore[call-overload]
DEFAULT_LR = float(_trainer_default("lr"))  # type: ignore[arg-type]
DEFAULT_BACKBONE = str(_trainer_default("backbone"))
DEFAULT_FINE_TUNE = int(_trainer_default("fine_tune"))  # type: ignore[call-overload]
# backbone blocks trained with the head: each one is run forward and backward on every training view in every
# epoch (on a CPU, minutes instead of seconds), and more than two rarely helps a classroom-sized data set
MAX_FINE_TUNE = 2
MAX_EPOCHS = 500
MAX_BATCH = 512
MAX_LR = 1.0

# Sound projects start from the sound trainer's own defaults (trainer.audio.job.AudioTrainOptions), and record
# clips as long as the window its bundles classify (what `trainer train` uses), and background of this length.
SOUND_DEFAULTS: dict[str, object] = {f.name: f.default for f in fields(AudioTrainOptions) if f.name in ("epochs", "batch_size", "lr")}
CLIP_SECONDS = float(next(f.default for f in fields(AudioTrainOptions) if f.name == "window_seconds"))  # type: ignore[arg-type]
BACKGROUND_SECONDS = 20.0

# The LLM playground (trainer/studio/playground.py): GGUF models from this folder, where `edge llm pull` saves them.
DEFAULT_LLM_MODELS = PULL_DIR  # the LLM playground reads the models `edge llm pull` saved


@dataclass(frozen=True)
class PlaygroundLimits:
    """What one prompt to the LLM playground may ask. The Studio's computer answers one prompt at a time."""

    max_prompt_chars: int = 2000  # a trick question is a few lines; this bounds the tokenizer's work too
    max_system_chars: int = 1000
    max_body_bytes: int = 16 * 1024  # the JSON of a full prompt and system prompt, escaped
    default_max_tokens: int = 128
    max_tokens: int = 512  # longest answer a pane may ask for
    max_temperature: float = 2.0
    max_seed: int = 2**31 - 1
    context_size: int = 2048  # prompt + answer, in tokens, for every model loaded here
    max_engines: int = 2  # models kept loaded between prompts (the two panes)
    # memory kept free beside the models: a model needs about its file's size, plus its context and work buffers
    memory_reserve_bytes: int = 1024**3
    max_models_listed: int = 100
