"""`trainer train --task audio`: folders of sound files in, a checked ONNX bundle and a report out.

The steps: scan and split (edge.core.datasets, shared with images), decode and check each file
(edge.core.audio + audio_windows, shared with the device), train with augmentation
(trainer.audio.loops), then the steps shared with images (trainer.finish): export waveform ->
probabilities with the log-mel front end inside, check parity and quantize (trainer.export), score both
variants per file through ONNX Runtime with the device's windowing (edge.core.audio_windows.score_files),
write the bundle and the report (trainer.outputs, trainer.report).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from edge.core.audio import DEFAULT_SAMPLE_RATE
from edge.core.audio_windows import BACKGROUND_LABEL, MIN_CLIP_SECONDS, score_files
from edge.core.datasets import DEFAULT_VAL_FRACTION, DatasetError, FolderDataset, Sample, Splits, make_splits, scan_dataset
from edge.core.evaluate import classification_metrics
from edge.core.session import make_session
from trainer.audio.data import AudioSettings, Augment, decode_clips
from trainer.audio.loops import AudioTrainConfig, train_end_to_end, train_frozen_backbone
from trainer.audio.models import DEFAULT_AUDIO_BACKBONE, AudioProbabilityModel
from trainer.class_order import ordered, read_order
from trainer.finish import Finish, KeepFloat, Timer, export_and_score, with_predictions

log = logging.getLogger(__name__)

PARITY_WINDOWS = 64
CALIBRATION_WINDOWS = 128
FRONT_END_SCOPE = "/model/front_end/"  # ONNX node-name prefix of the log-mel front end
# ImageNet backbones are used Teachable-Machine style (frozen, head on cached embeddings): fine-tuning
# them end to end on a 2-core CPU takes far longer than the 10 minutes a maker should wait.
FROZEN_BACKBONES = ("efficientnet_lite0",)


@dataclass
class AudioTrainOptions:
    data_dir: Path
    out_dir: Path
    backbone: str = DEFAULT_AUDIO_BACKBONE
    epochs: int = AudioTrainConfig.epochs
    batch_size: int = AudioTrainConfig.batch_size
    lr: float = AudioTrainConfig.lr
    seed: int = 0
    val_split: float = DEFAULT_VAL_FRACTION
    int8: bool = True
    sample_rate: int = DEFAULT_SAMPLE_RATE
    window_seconds: float = 1.0
    hop_seconds: float = 0.5
    augment: bool = True
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    # each epoch's accuracy and loss as it ends (as ImageTrainOptions.on_epoch): the Studio's live curves
    on_epoch: Callable[[dict[str, float]], None] | None = None


def _check_options(opts: AudioTrainOptions) -> None:
    if opts.sample_rate < 4000:
        raise DatasetError(f"--sample-rate {opts.sample_rate} is too low for sound classification; use 8000 or more "
                           f"(default {DEFAULT_SAMPLE_RATE})")
    if not MIN_CLIP_SECONDS * 2 <= opts.window_seconds <= 10:
        raise DatasetError(f"--window {opts.window_seconds} s: use a window between {MIN_CLIP_SECONDS * 2} and 10 seconds (default 1.0)")
    if not 0 < opts.hop_seconds <= opts.window_seconds:
        raise DatasetError(f"--hop {opts.hop_seconds} s must be positive and at most the window ({opts.window_seconds} s)")


def _front_end_nodes(path: Path) -> list[str]:
    """Names of the front end's nodes: they stay float in the int8 model (quantizing the STFT kernels
    and the log's input range costs accuracy and saves almost no time)."""
    graph = onnx.load(str(path), load_external_data=False).graph
    return [node.name for node in graph.node if node.name.startswith(FRONT_END_SCOPE)]


LONE_BACKGROUND_VAL = 0.2  # share of a single background recording held out for validation


def _split_lone_background(dataset: FolderDataset, clips: dict[Path, np.ndarray], settings: AudioSettings) -> tuple[Path, Path] | None:
    """Teachable Machine users bring ONE long background recording; the two-files-per-class rule would
    refuse it. Its first 80 % becomes a training example and its last 20 % the validation one (two
    in-memory parts, never written to the data folder). Returns (train part, val part) or None."""
    if dataset.layout != "classes":
        return None
    part = dataset.parts["all"]
    usable = [p for p in part.files.get(BACKGROUND_LABEL, []) if p in clips]
    if len(usable) != 1 or clips[usable[0]].size < 2 * settings.window:
        return None
    path = usable[0]
    clip = clips.pop(path)
    cut = int(clip.size * (1 - LONE_BACKGROUND_VAL))
    head, tail = Path(f"{path}#first-{100 - int(100 * LONE_BACKGROUND_VAL)}%"), Path(f"{path}#last-{int(100 * LONE_BACKGROUND_VAL)}%")
    clips[head], clips[tail] = clip[:cut], clip[cut:]
    part.files[BACKGROUND_LABEL] = [head, tail] + [p for p in part.files[BACKGROUND_LABEL] if p != path]
    log.info("%s: the only %s recording; its first %d %% trains and its last %d %% validates", path, BACKGROUND_LABEL,
             100 - int(100 * LONE_BACKGROUND_VAL), int(100 * LONE_BACKGROUND_VAL))
    return head, tail


def _place_background_parts(splits: Splits, parts: tuple[Path, Path]) -> None:
    """Whichever part the seeded split put where, the long part trains and the short part validates."""
    head, tail = parts
    splits.train = [Sample(head, s.label) if s.path in parts else s for s in splits.train]
    splits.val = [Sample(tail, s.label) if s.path in parts else s for s in splits.val]


def _scorer(settings: AudioSettings, labels: tuple[str, ...],
            clips: dict[Path, np.ndarray]) -> Callable[[Path, list[Sample]], dict[str, Any]]:
    """Per-file metrics of one exported variant, windows cut and averaged exactly as `trainer evaluate` does."""

    def score(path: Path, samples: list[Sample]) -> dict[str, Any]:
        session = make_session(path)
        name = session.get_inputs()[0].name
        kept, probs, _ = score_files([s.path for s in samples], lambda x: session.run(None, {name: x})[0], settings.sample_rate,
                                     settings.window, settings.hop, preloaded=clips)
        y_true = [samples[i].label for i in kept]
        y_pred = [int(np.argmax(p)) for p in probs]
        return with_predictions(classification_metrics(y_true, y_pred, labels), kept, y_pred)

    return score


def train_audio_classifier(opts: AudioTrainOptions) -> dict[str, Any]:
    """Runs the whole sound pipeline; returns the report dictionary (also written to out_dir)."""
    _check_options(opts)
    timer = Timer()
    settings = AudioSettings(opts.sample_rate, opts.window_seconds, opts.hop_seconds)
    dataset = scan_dataset(opts.data_dir, "audio")
    # the labels' order in the bundle: the Studio's (studio.json), as for images; else alphabetical
    dataset.labels = ordered(dataset.labels, read_order(opts.data_dir))

    with timer.step("decode"):
        clips, skipped = decode_clips(dataset.all_files, settings.sample_rate, progress=opts.progress)
        parts = _split_lone_background(dataset, clips, settings)
        splits = make_splits(dataset, [Path(s["path"]) for s in skipped], opts.val_split, opts.seed)
        if parts:
            _place_background_parts(splits, parts)

    config = AudioTrainConfig(
        backbone=opts.backbone, epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr, seed=opts.seed,
        settings=settings, augment=Augment() if opts.augment else Augment.off(), progress=opts.progress,
    )
    trainer = train_frozen_backbone if opts.backbone in FROZEN_BACKBONES else train_end_to_end
    result = trainer(splits, clips, config, opts.on_epoch)
    timer.record("train", result.timing["train_seconds"])

    def parity_inputs() -> np.ndarray:
        # PyTorch computes the STFT with an FFT, the graph with the fixed-kernel convolution: parity checks both agree.
        source = result.val if len(result.val) else result.train
        return source.windows(range(min(PARITY_WINDOWS, len(source))), settings.window)

    finish = Finish(
        model=AudioProbabilityModel(result.model).eval(),
        example=torch.zeros((1, settings.window)),
        input_name="waveform",
        parity_inputs=parity_inputs,
        calibration_pool=len(result.train),
        calibration_size=CALIBRATION_WINDOWS,
        calibration=lambda rows: result.train.windows(rows, settings.window),
        score=_scorer(settings, splits.labels, clips),
        keep_float=KeepFloat(first_convs=0, nodes=_front_end_nodes, label="log-mel front end"),
    )

    front_end = result.model.front_end.config.describe() | {"scale": result.extra["front_end_scale"]}
    settings_report = {
        "backbone": opts.backbone,
        "epochs": opts.epochs,
        "batch_size": opts.batch_size,
        "lr": opts.lr,
        "seed": opts.seed,
        "val_split": opts.val_split,
        "sample_rate": settings.sample_rate,
        "window_seconds": opts.window_seconds,
        "hop_seconds": opts.hop_seconds,
        "augment": result.extra["augment"],
        "mixed_noise": result.extra["mixed_noise"],
        "train_config": {k: v for k, v in asdict(replace(config, settings=settings)).items() if k not in ("augment", "settings")},
        **opts.extra,
    }
    data_summary = {
        "root": str(dataset.root),
        "layout": dataset.layout,
        "counts": splits.counts(),
        "skipped": skipped,
        "training_windows": result.extra["train_windows"],
        "validation_windows": result.extra["val_windows"],
        "background_class": BACKGROUND_LABEL in splits.labels,
    }
    preprocessing = {
        "sample_rate": settings.sample_rate,
        "window_samples": settings.window,
        "hop_samples": settings.hop,
        "channels": 1,
        "input_range": "float32 mono, -1..1",
        "resample": "edge.core.audio.resample (windowed sinc) from the file's or microphone's rate",
        "windowing": "clips: one window centred on the loud part; long sounds: windows every hop_samples; "
        "file score = mean of its windows' probabilities (edge.core.audio_windows)",
        "front_end": front_end,
    }
    return export_and_score(Path(opts.out_dir), finish, splits, timer, int8=opts.int8, seed=opts.seed, task="audio", backbone=opts.backbone,
                            input_spec={"name": "waveform", "dtype": "float32", "shape": [-1, settings.window]},
                            preprocessing=preprocessing, data_summary=data_summary, settings=settings_report, history=result.history)
