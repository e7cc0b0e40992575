"""Fleet tests' helpers: devices as real `edge run` processes on image folders (low fps, one thread), their
configs with the fleet on, bundles that pass or fail the health gate, and `trainer fleet` as a real process."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper

from tests.support.daemon import DaemonProcess, camera_pipeline, write_config
from tests.support.onnx_models import _image_manifest, make_color_bundle
from tests.support.paths import REPO

HEALTH_GATE = {"classifications": 3, "timeout_s": 90, "latency_factor": 1000, "latency_slack_ms": 60000}


def image_folder(path: Path, colors: Sequence[tuple[int, int, int]] = ((0, 0, 255), (255, 0, 0))) -> Path:
    """A few small solid-colour PNGs (BGR): the camera of a test device."""
    path.mkdir(parents=True, exist_ok=True)
    for i, color in enumerate(colors):
        frame = np.zeros((16, 16, 3), np.uint8)
        frame[:] = color
        cv2.imwrite(str(path / f"{i:02d}.png"), frame)
    return path


def failing_bundle(root: Path, labels: Sequence[str] = ("red", "green", "blue"), size: int = 8) -> Path:
    """A bundle that loads (its declared input and output are right) but whose every inference fails: the mean colour
    (3 values) is reshaped to pairs, which ONNX Runtime can only refuse at run time."""
    root.mkdir(parents=True, exist_ok=True)
    x = helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", size, size, 3])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", len(labels)])
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2])
    pairs = helper.make_tensor("pairs", TensorProto.INT64, [2], [-1, 2])
    w = helper.make_tensor("w", TensorProto.FLOAT, [2, len(labels)], [0.1] * (2 * len(labels)))
    nodes = [
        helper.make_node("Cast", ["image"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["xf", "axes"], ["m"], keepdims=0),
        helper.make_node("Reshape", ["m", "pairs"], ["p"]),
        helper.make_node("MatMul", ["p", "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    graph = helper.make_graph(nodes, "fails_at_run_time", [x], [y], initializer=[axes, pairs, w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(root / "model.onnx"))
    _image_manifest(root, labels, size)
    return root


def padded_bundle(root: Path, megabytes: float, labels: Sequence[str] = ("red", "green", "blue")) -> Path:
    """A colour bundle of about `megabytes` (random weights the graph does not use, as a big model's would be)."""
    make_color_bundle(root, labels)
    model = onnx.load(str(root / "model.onnx"))
    count = int(megabytes * 1024 * 1024 / 4)
    noise = np.random.default_rng(0).standard_normal(count).astype(np.float32)
    model.graph.initializer.append(onnx.numpy_helper.from_array(noise, "padding"))
    onnx.save(model, str(root / "model.onnx"))
    _image_manifest(root, labels, 8)
    return root


def device_config(workdir: Path, device_id: str, host: str, port: int, bundle: Path, camera: Path, public_key: Path,
                  group: str | None = "class-a", gate: dict[str, Any] | None = None, fps: float = 2.0) -> Path:
    """A device's folder (its models_dir) and config: one camera pipeline on `camera` at `fps`, the fleet on."""
    folder = workdir / device_id
    (folder / "models").mkdir(parents=True, exist_ok=True)
    own = folder / "models" / bundle.name  # inside models_dir: the fleet goes back to it through the confined reload
    if not own.exists():
        shutil.copytree(bundle, own)
    pipeline = camera_pipeline("cam", own, str(camera))
    pipeline["source"].update({"fps": fps})
    pipeline["publish"] = {"heartbeat_s": 10, "max_rate_hz": 1}
    return write_config(folder / "edge.yaml", host, port, [pipeline], device_id=device_id, models_dir=str(folder / "models"),
                        mqtt={"stats_interval": 2, "discovery": {"enabled": False}},
                        fleet={"public_keys": [str(public_key)], "group": group, "health_gate": gate or HEALTH_GATE})


def start_device(config: Path) -> DaemonProcess:
    return DaemonProcess(config, env={"OMP_NUM_THREADS": "1"})


def trainer_fleet(args: Sequence[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`trainer fleet ARGS` as the teacher runs it."""
    return subprocess.run([sys.executable, "-m", "trainer.cli", "fleet", *args], cwd=str(REPO), capture_output=True, text=True,
                          timeout=timeout)


class Fleet:
    """Test devices by id, and what a listener saw of them (progress, state, status), for assertions."""

    def __init__(self, listener: Any) -> None:
        self.listener = listener
        self.devices: dict[str, DaemonProcess] = {}

    def start(self, device_id: str, config: Path) -> DaemonProcess:
        self.devices[device_id] = start_device(config)
        return self.devices[device_id]

    def stop_all(self) -> None:
        for device in self.devices.values():
            device.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{device.log()[-3000:]}" for name, device in self.devices.items())

    def progress(self, job_id: str | None = None) -> list[tuple[int, str, dict[str, Any]]]:
        """(index among the listener's messages, device, payload) of every progress message (of `job_id`)."""
        out = []
        for index, message in enumerate(list(self.listener.messages)):
            parts = message.topic.split("/")
            if len(parts) == 4 and parts[2:] == ["model", "progress"]:
                data = message.json()
                if job_id is None or data.get("job_id") == job_id:
                    out.append((index, parts[1], data))
        return out

    def states(self) -> dict[str, dict[str, Any]]:
        """Each device's latest retained-topic state."""
        out: dict[str, dict[str, Any]] = {}
        for message in list(self.listener.messages):
            parts = message.topic.split("/")
            if len(parts) == 4 and parts[2:] == ["model", "state"] and message.payload:
                out[parts[1]] = message.json()
        return out

    def status(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for message in list(self.listener.messages):
            parts = message.topic.split("/")
            if len(parts) == 3 and parts[2] == "status" and parts[0] == "edgeteach":
                out[parts[1]] = message.text
        return out
