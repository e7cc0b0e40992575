"""Training the classifier head (and optionally the last blocks) on cached embeddings (task-agnostic).

Inputs are whatever the frozen part produced: pooled features [N, D] by default, or a block's
activations when fine-tuning. The loop, class weighting, seeding and per-epoch history are shared by
the image and audio trainers.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

log = logging.getLogger(__name__)


@dataclass
class HeadConfig:
    epochs: int = 50  # Teachable Machine's defaults
    batch_size: int = 16
    lr: float = 0.001
    hidden: int = 100  # Dense(100, relu) as Teachable Machine
    dropout: float = 0.0
    # Teachable Machine uses none; 1e-3 (Adam, L2) measured best of 0/1e-4/1e-3/1e-2 on both real-frame
    # benchmark sets (val accuracy 92.8 -> 98.2 % and 92.8 -> 95.9 %; measured once, not in docs/benchmarks.md,
    # which has no results file for those runs).
    weight_decay: float = 1e-3
    seed: int = 0
    balance_classes: bool = True


@dataclass
class TrainResult:
    head: nn.Module
    trainable: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_head(in_features: int, n_classes: int, hidden: int = 100, dropout: float = 0.0) -> nn.Module:
    """Dense(hidden, relu) -> Dense(n_classes), as Teachable Machine; hidden=0 gives a linear head."""
    if hidden <= 0:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, n_classes))
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes))


def class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights (averaging 1 over the examples) so a class with few examples is not
    drowned by a big one: every class then weighs the same in the loss. Used by the image head and the sound
    trainer alike; only the ratios matter to a mean-reduced CrossEntropyLoss (it divides by the summed weights)."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (n_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to `n` (0: left as they are) for the block, then restored."""
    threads = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _set_bn_eval(module: nn.Module) -> None:
    # Few examples give poor batch statistics: keep the pretrained ones even while fine-tuning.
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module, batch: int = 256) -> tuple[float, float]:
    if len(x) == 0:
        return float("nan"), float("nan")
    model.eval()
    total_loss, correct = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(x), batch):
            logits = model(x[s : s + batch])
            total_loss += float(loss_fn(logits, y[s : s + batch])) * len(logits)
            correct += int((logits.argmax(-1) == y[s : s + batch]).sum())
    return total_loss / len(x), correct / len(x)


def train_head(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    config: HeadConfig,
    trainable: nn.Module | None = None,
    progress: bool = True,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Adam on cross-entropy (class-weighted), one pass over shuffled mini-batches per epoch; records
    train and validation loss and accuracy after every epoch (Teachable Machine's curves). `on_epoch` gets each
    epoch's row as it is recorded (the Studio streams them to the page; an exception it raises stops training)."""
    import time

    started = time.perf_counter()
    # Mini-batches of 16 through a small head are too small to gain from threads; on a busy 2-core
    # machine two threads made it ten times slower than one (thread hand-off dominates). Fine-tuned
    # conv blocks are big enough to use them.
    with _torch_threads(1 if trainable is None else 0):
        seed_everything(config.seed)
        trainable = trainable if trainable is not None else nn.Identity()
        xt = torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32))
        yt = torch.from_numpy(np.asarray(y_train, dtype=np.int64))
        xv = torch.from_numpy(np.ascontiguousarray(x_val, dtype=np.float32))
        yv = torch.from_numpy(np.asarray(y_val, dtype=np.int64))
        with torch.no_grad():
            feature_dim = int(trainable.eval()(xt[:1]).shape[-1])
        head = make_head(feature_dim, n_classes, config.hidden, config.dropout)
        model = nn.Sequential(trainable, head)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
        weights = class_weights(y_train, n_classes) if config.balance_classes else None
        loss_fn = nn.CrossEntropyLoss(weight=weights)
        plain_loss = nn.CrossEntropyLoss()
        generator = torch.Generator().manual_seed(config.seed)
        history: list[dict[str, float]] = []
        bar = tqdm(range(1, config.epochs + 1), desc="training head", unit="epoch", disable=not progress, leave=False)
        for epoch in bar:
            model.train()
            _set_bn_eval(model)
            order = torch.randperm(len(xt), generator=generator)
            for s in range(0, len(xt), config.batch_size):
                idx = order[s : s + config.batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(xt[idx]), yt[idx])
                loss.backward()
                optimizer.step()
            train_loss, train_acc = _evaluate(model, xt, yt, plain_loss)
            val_loss, val_acc = _evaluate(model, xv, yv, plain_loss)
            history.append({"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_acc, "val_loss": val_loss,
                            "val_accuracy": val_acc})
            bar.set_postfix(loss=f"{train_loss:.3f}", val_acc=f"{val_acc:.3f}")
            if on_epoch is not None:
                on_epoch(history[-1])
        model.eval()
        return TrainResult(head=head.eval(), trainable=trainable.eval(), history=history, config=asdict(config),
                           seconds=time.perf_counter() - started)
