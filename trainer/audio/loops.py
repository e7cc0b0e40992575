"""Training a sound classifier end to end (front end in the model, backbone trained with augmentation).

Unlike the image trainer's cached-embedding head training, sound models learn their features: a small
CNN trained from scratch with augmentation generalises to new speakers far better than frozen ImageNet
features (bench/bench_audio_trainer.py measures both), and it is cheap enough to train on a laptop CPU.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from edge.core.audio_windows import BACKGROUND_LABEL
from edge.core.datasets import Splits
from trainer.audio.data import AudioSettings, Augment, WindowSet, augment_waveforms, build_windows, noise_pool, spec_augment
from trainer.audio.frontend import FrontEndConfig
from trainer.audio.models import DEFAULT_AUDIO_BACKBONE, AudioClassifier
from trainer.head import class_weights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AudioTrainConfig:
    backbone: str = DEFAULT_AUDIO_BACKBONE
    epochs: int = 45
    batch_size: int = 32
    lr: float = 0.003
    weight_decay: float = 1e-3
    label_smoothing: float = 0.05
    seed: int = 0
    settings: AudioSettings = AudioSettings()
    augment: Augment = Augment()
    n_mels: int = 40
    width: int = 16  # compact_cnn channels of the first block (then 2x, 4x, 6x)
    feature_mean: str = "band"  # FrontEndConfig.mean: per-band mean removal (channel normalisation) measured +2 points on 5 unseen speakers
    # One thread: these small convolutions gain little from a second one on an idle 2-core machine, and
    # with anything else running two threads were 5x slower per step (108 vs 587 ms per batch; measured
    # once, not in docs/benchmarks.md).
    threads: int = 1
    progress: bool = True


@dataclass
class AudioTrainResult:
    model: AudioClassifier
    labels: tuple[str, ...]
    history: list[dict[str, float]]
    train: WindowSet
    val: WindowSet
    timing: dict[str, float]
    config: AudioTrainConfig
    extra: dict[str, Any] = field(default_factory=dict)


@torch.no_grad()
def predict_windows(model: AudioClassifier, windows: WindowSet, window: int, batch_size: int = 128) -> np.ndarray:
    """Probabilities [n_windows, classes], no augmentation."""
    model.eval()
    out = []
    for start in range(0, len(windows), batch_size):
        batch = windows.windows(range(start, min(len(windows), start + batch_size)), window)
        out.append(torch.softmax(model(torch.from_numpy(batch)), dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.head.out_features), np.float32)


# each epoch's row as it is recorded (the Studio streams them to the page); not on AudioTrainConfig, which
# the report serialises
EpochCallback = Callable[[dict[str, float]], None]


def train_end_to_end(splits: Splits, clips: dict[Path, np.ndarray], config: AudioTrainConfig = AudioTrainConfig(),
                     on_epoch: EpochCallback | None = None) -> AudioTrainResult:
    """Trains on the windows of `splits.train` (decoded `clips`), validating on `splits.val` each epoch;
    `on_epoch` gets each epoch's row as it is recorded (an exception it raises stops training)."""
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _train_end_to_end(splits, clips, config, on_epoch)
    finally:
        torch.set_num_threads(threads)


@dataclass
class _Windows:
    """What both loops start from: the seeded generator, the training and validation windows, and the
    noise pool mixed into the training windows."""

    rng: np.random.Generator
    labels: tuple[str, ...]
    train: WindowSet
    val: WindowSet
    window: int
    pool: np.ndarray
    pool_source: str
    is_background: np.ndarray


def _prepare(splits: Splits, clips: dict[Path, np.ndarray], config: AudioTrainConfig, every_class: bool) -> _Windows:
    """Seeds torch and the generator, cuts the windows and picks the noise pool; with `every_class`, a class
    left without training windows is an error."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    settings = config.settings
    labels = splits.labels
    train = build_windows(splits.train, clips, settings)
    val = build_windows(splits.val, clips, settings)
    missing = [labels[i] for i in range(len(labels)) if i not in set(train.labels)]
    if every_class and missing:
        from edge.core.datasets import DatasetError

        raise DatasetError(
            f"class(es) {', '.join(missing)} have no usable training sound left after skipping unreadable, too short or "
            f"silent files (see the warnings above); add recordings to those folders"
        )
    background_label = labels.index(BACKGROUND_LABEL) if BACKGROUND_LABEL in labels else None
    pool, pool_source = noise_pool(train, background_label, settings.sample_rate, rng)
    is_background = np.array([lab == background_label for lab in train.labels])
    return _Windows(rng, labels, train, val, settings.window, pool, pool_source, is_background)


def _fit_front_end(model: AudioClassifier, data: _Windows) -> float:
    """The front end's scale from up to 512 training windows."""
    fit_rows = data.rng.choice(len(data.train), size=min(len(data.train), 512), replace=False)
    return model.front_end.fit_scale(torch.from_numpy(data.train.windows(fit_rows, data.window)))


def _train_end_to_end(splits: Splits, clips: dict[Path, np.ndarray], config: AudioTrainConfig,
                      on_epoch: EpochCallback | None) -> AudioTrainResult:
    data = _prepare(splits, clips, config, every_class=True)
    rng, labels, train, val, window = data.rng, data.labels, data.train, data.val, data.window
    pool, pool_source, is_background = data.pool, data.pool_source, data.is_background
    settings = config.settings

    model = AudioClassifier(config.backbone, len(labels), FrontEndConfig(sample_rate=settings.sample_rate, n_mels=config.n_mels,
                                                                         mean=config.feature_mean), width=config.width)
    scale = _fit_front_end(model, data)
    log.debug("front-end scale %.3f", scale)

    criterion = nn.CrossEntropyLoss(weight=class_weights(np.asarray(train.labels, np.int64), len(labels)),
                                    label_smoothing=config.label_smoothing)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train) / config.batch_size))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch,
                                                    pct_start=0.15)
    targets = np.asarray(train.labels, np.int64)
    val_targets = torch.tensor(val.labels, dtype=torch.long)
    history: list[dict[str, float]] = []
    t1 = time.perf_counter()
    bar = tqdm(range(config.epochs), desc=f"training {config.backbone}", unit="epoch", disable=not config.progress)
    for epoch in bar:
        model.train()
        order = rng.permutation(len(train))
        total_loss, correct, seen = 0.0, 0, 0
        for step in range(steps_per_epoch):
            rows = order[step * config.batch_size : (step + 1) * config.batch_size]
            if rows.size == 0:
                continue
            batch = train.windows(rows, window, rng if config.augment.shift else None)
            waves = augment_waveforms(batch, is_background[rows], pool, config.augment, rng)
            feats = spec_augment(model.front_end(waves), config.augment, rng)
            logits = model.features(feats)
            y = torch.from_numpy(targets[rows])
            loss = criterion(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += float(loss.detach()) * rows.size
            correct += int((logits.argmax(1) == y).sum())
            seen += rows.size
        record = {"epoch": epoch + 1, "train_loss": total_loss / max(seen, 1), "train_accuracy": correct / max(seen, 1)}
        if len(val):
            probs = torch.from_numpy(predict_windows(model, val, window))
            record["val_loss"] = float(nn.functional.nll_loss(torch.log(probs.clamp_min(1e-8)), val_targets))
            record["val_accuracy"] = float((probs.argmax(1) == val_targets).float().mean())
        history.append(record)
        bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k != "epoch"})
        if on_epoch is not None:
            on_epoch(record)
    model.eval()
    t_train = time.perf_counter() - t1
    return AudioTrainResult(
        model=model,
        labels=labels,
        history=history,
        train=train,
        val=val,
        timing={"train_seconds": t_train, "seconds_per_epoch": t_train / max(1, config.epochs)},
        config=config,
        extra={"front_end_scale": scale, "train_windows": len(train), "val_windows": len(val), "augment": asdict(config.augment),
               "mixed_noise": pool_source},
    )


FROZEN_VIEWS = 2  # augmented copies of each training window embedded for the frozen backbone


@torch.no_grad()
def _embed(model: AudioClassifier, waves: np.ndarray | torch.Tensor, batch_size: int = 64) -> np.ndarray:
    out = []
    for start in range(0, len(waves), batch_size):
        chunk = torch.as_tensor(waves[start : start + batch_size])
        out.append(model.backbone(model.front_end(chunk)).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.backbone.feature_dim), np.float32)


def train_frozen_backbone(splits: Splits, clips: dict[Path, np.ndarray], config: AudioTrainConfig = AudioTrainConfig(),
                          on_epoch: EpochCallback | None = None) -> AudioTrainResult:
    """Teachable Machine's recipe over sound: a frozen ImageNet backbone embeds every window once (plus
    FROZEN_VIEWS augmented copies), and the image trainer's head (trainer.head.train_head) learns on
    the cached embeddings. Cheap, but ImageNet features transfer poorly to new voices (see the bench)."""
    from trainer.head import HeadConfig, train_head

    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _train_frozen(splits, clips, config, train_head, HeadConfig, on_epoch)
    finally:
        torch.set_num_threads(threads)


def _train_frozen(splits: Splits, clips: dict[Path, np.ndarray], config: AudioTrainConfig, train_head: Any,
                  HeadConfig: Any, on_epoch: EpochCallback | None) -> AudioTrainResult:
    data = _prepare(splits, clips, config, every_class=False)
    rng, labels, train, val, window = data.rng, data.labels, data.train, data.val, data.window
    pool, pool_source, is_background = data.pool, data.pool_source, data.is_background
    model = AudioClassifier(config.backbone, len(labels), FrontEndConfig(sample_rate=config.settings.sample_rate,
                                                                         n_mels=config.n_mels)).eval()
    scale = _fit_front_end(model, data)
    t1 = time.perf_counter()
    rows = np.arange(len(train))
    xs = [_embed(model, train.windows(rows, window))]
    ys = [np.asarray(train.labels, np.int64)]
    views = FROZEN_VIEWS if config.augment.mix_probability > 0 else 0
    for _ in tqdm(range(views), desc="embedding augmented views", disable=not config.progress, leave=False):
        waves = augment_waveforms(train.windows(rows, window, rng), is_background, pool, config.augment, rng)
        xs.append(_embed(model, waves))
        ys.append(np.asarray(train.labels, np.int64))
    x_val = _embed(model, val.windows(range(len(val)), window))
    t_embed = time.perf_counter() - t1
    head_config = HeadConfig(seed=config.seed)
    result = train_head(np.concatenate(xs), np.concatenate(ys), x_val, np.asarray(val.labels, np.int64), len(labels), head_config,
                        progress=config.progress, on_epoch=on_epoch)
    model.head = result.head
    model.eval()
    return AudioTrainResult(
        model=model,
        labels=labels,
        history=result.history,
        train=train,
        val=val,
        timing={"train_seconds": t_embed + result.seconds, "embed_seconds": t_embed, "head_seconds": result.seconds},
        config=config,
        extra={"front_end_scale": scale, "train_windows": len(train), "val_windows": len(val), "augment": asdict(config.augment),
               "mixed_noise": pool_source, "head": result.config, "frozen_views": views},
    )
