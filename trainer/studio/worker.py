"""One training, run in its own process by `jobs`: the trainer's own image or sound pipeline, by the project's
task (no second training path), reporting each epoch through a queue. A process, not a thread, so that Cancel stops it at once
(whatever step it is in) and a crash in native code cannot take the Studio down with it."""

from __future__ import annotations

import logging
from multiprocessing.queues import Queue
from pathlib import Path

from trainer.studio.limits import DEFAULT_BACKBONE, DEFAULT_FINE_TUNE

log = logging.getLogger(__name__)


def train(data_dir: Path, out_dir: Path, epochs: int, batch_size: int, lr: float, cache_dir: Path | None,
          events: Queue, backbone: str = DEFAULT_BACKBONE, fine_tune: int = DEFAULT_FINE_TUNE) -> None:
    """Runs in the child: ("phase", name), ("epoch", row) for each epoch, then ("done", None) or ("error", text)."""
    try:
        from edge.core.datasets import DatasetError
        from trainer.export import ExportError
        from trainer.image.backbones import BackboneError
        from trainer.image.job import ImageTrainOptions, train_image_classifier
        from trainer.studio.projects import read_task

        sound = read_task(data_dir) == "sound"
        events.put(("phase", "reading the recordings" if sound else "reading and embedding the samples"))

        def on_epoch(row: dict[str, float]) -> None:
            events.put(("epoch", dict(row)))
            if int(row["epoch"]) == epochs:
                events.put(("phase", "exporting and checking the model"))

        if sound:  # the sound trainer's own backbone: the image backbones and fine-tuning are not for sound
            from trainer.audio.job import AudioTrainOptions, train_audio_classifier

            try:
                train_audio_classifier(AudioTrainOptions(data_dir=data_dir, out_dir=out_dir, epochs=epochs, batch_size=batch_size,
                                                         lr=lr, progress=False, on_epoch=on_epoch))
            except (DatasetError, ExportError) as exc:
                events.put(("error", str(exc)))
                return
            events.put(("done", None))
            return
        opts = ImageTrainOptions(data_dir=data_dir, out_dir=out_dir, epochs=epochs, batch_size=batch_size, lr=lr,
                                 backbone=backbone, fine_tune=fine_tune, cache_dir=cache_dir, progress=False,
                                 on_epoch=on_epoch)
        try:
            train_image_classifier(opts)
        except (DatasetError, BackboneError, ExportError) as exc:
            events.put(("error", str(exc)))
            return
        events.put(("done", None))
    except Exception as exc:  # reported on the page; the traceback goes to the Studio's log
        log.exception("training failed")
        events.put(("error", f"training failed: {exc.__class__.__name__}: {exc}"))
