"""Each enabled pipeline's bundle: there, of the right task, and running once in ONNX Runtime."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from edge.config.pipelines import bundle_task_mismatch
from edge.doctor.base import CheckResult

if TYPE_CHECKING:
    from edge.config import PipelineConfig


def check_bundle(index: int, pipeline: PipelineConfig) -> CheckResult:
    import numpy as np

    from edge.core.bundle import BundleError, load_bundle
    from edge.core.session import Classifier

    name = f"bundle {pipeline.name}"
    path = Path(pipeline.bundle)
    if not path.exists():
        return CheckResult(name, "fail", f"{path} does not exist",
                           f"copy the folder `trainer train` made to {path} (e.g. `scp -r my-bundle pi@DEVICE:` then "
                           f"`sudo mv ~/my-bundle {path}` "
                           f"and `sudo chown -R edgeteach: {path}`), or fix pipelines[{index}].bundle")
    try:
        bundle = load_bundle(path)
        want = bundle_task_mismatch(pipeline.kind, bundle.task)
        if want:
            return CheckResult(name, "fail", f"{path} is an {bundle.task} bundle but {pipeline.name} is a {pipeline.kind} pipeline",
                               f"point pipelines[{index}].bundle at an {want} bundle")
        started = time.perf_counter()
        classifier = Classifier(bundle, variant=pipeline.variant, threads=1, providers=pipeline.providers)
        shape = [1 if d < 0 else d for d in bundle.input.shape]
        probabilities = classifier.run(np.zeros(shape, dtype=np.uint8 if bundle.input.dtype == "uint8" else np.float32))
        elapsed_ms = (time.perf_counter() - started) * 1000
    except BundleError as exc:
        return CheckResult(name, "fail", str(exc),
                           "copy the bundle again from the trainer's output folder (or re-export it with `trainer train`); `edge config "
                           "check` names the problem too")
    except Exception as exc:
        return CheckResult(name, "fail", f"{path}: ONNX Runtime cannot run it ({type(exc).__name__}: {exc})",
                           "re-export the bundle with `trainer train`; if it runs on the trainer, report it with this message")
    if probabilities.shape[-1] != len(bundle.labels):
        return CheckResult(name, "fail", f"{path}: model gives {probabilities.shape[-1]} scores for {len(bundle.labels)} labels",
                           "re-export the bundle with `trainer train`")
    return CheckResult(name, "ok",
                       f"{bundle.task}, {len(bundle.labels)} labels, {pipeline.variant} on {', '.join(classifier.providers)} (loaded and "
                       f"ran in {elapsed_ms:.0f} ms)")
