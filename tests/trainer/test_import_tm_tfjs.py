"""TF.js exports against **TF.js itself**: the model.json and weights.bin loaded by `@tensorflow/tfjs-layers` on
the pure-JavaScript CPU backend under Node (installed into .cache/tfjs by scripts/setup.sh, pinned; nothing is
fetched here), fed the same inputs as the imported bundle.

- image exports: the device's own pixels (edge/core/images.py), scaled as Teachable Machine does, into TF.js;
  the same pixels into the bundle;
- the sound network with the real model.json architecture of a published TM audio model (random weights of
  the right shapes, as its weights.bin is not published): the spectrogram patch computed by the bundle's own
  front end (checked against Chromium in test_import_tm_sound.py) into TF.js, the waveform into the bundle.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edge.core.bundle import load_bundle
from edge.core.session import Classifier
from tests.support.paths import REPO
from tests.trainer.test_import_tm_layers import samples_for
from tests.trainer.test_import_tm_sound import random_weights_export
from trainer.tm.importer import import_tm
from trainer.tm.sound_frontend import WINDOW_SAMPLES

TFJS = REPO / ".cache" / "tfjs"
TOLERANCE = 1e-3  # float32 in both; measured about 1e-6

RUNNER = """
const tf = require("@tensorflow/tfjs-core");
require("@tensorflow/tfjs-backend-cpu");
const tfl = require("@tensorflow/tfjs-layers");
const fs = require("fs");
(async () => {
  await tf.setBackend("cpu");
  const [dir, inputPath, shapeJson, outPath] = process.argv.slice(2);
  const doc = JSON.parse(fs.readFileSync(dir + "/model.json"));
  const weightSpecs = doc.weightsManifest.flatMap(g => g.weights);
  const bytes = Buffer.concat(doc.weightsManifest.flatMap(g => g.paths.map(p => fs.readFileSync(dir + "/" + p))));
  const weightData = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const model = await tfl.loadLayersModel(tf.io.fromMemory({modelTopology: doc.modelTopology, weightSpecs, weightData}));
  const raw = fs.readFileSync(inputPath);
  const input = tf.tensor(new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4), JSON.parse(shapeJson));
  const output = await model.predict(input).array();
  fs.writeFileSync(outPath, JSON.stringify({backend: tf.getBackend(), version: tf.version_core, output}));
})().catch(e => { console.error(e); process.exit(1); });
"""


def tfjs_predict(model_dir: Path, inputs: np.ndarray, tmp_path: Path) -> np.ndarray:
    node = shutil.which("node")
    if node is None or not (TFJS / "node_modules" / "@tensorflow" / "tfjs-layers").is_dir():
        pytest.skip("TF.js under Node is not installed: scripts/setup.sh installs it into .cache/tfjs (needs node and npm)")
    runner = tmp_path / "run.js"
    runner.write_text(RUNNER)
    (tmp_path / "input.bin").write_bytes(np.ascontiguousarray(inputs, "<f4").tobytes())
    done = subprocess.run([node, str(runner), str(model_dir), str(tmp_path / "input.bin"), json.dumps(list(inputs.shape)),
                           str(tmp_path / "out.json")], capture_output=True, text=True, timeout=300,
                          env={"NODE_PATH": str(TFJS / "node_modules"), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["backend"] == "cpu"
    return np.asarray(result["output"], np.float32)


@pytest.mark.parametrize("name,folder", [("tfjs-signs", "tfjs-signs/tm-my-image-model"),
                                         ("tfjs-keras-same-model/tfjs", "tfjs-keras-same-model/tfjs")])
def test_tfjs_image_export_matches_tfjs(shared_dir: Path, tmp_path: Path, name: str, folder: str) -> None:
    tm = shared_dir / "teachable-machine"
    result = import_tm(tm / folder, tmp_path / "bundle")
    pixels = np.stack([p for _, p in samples_for(name, tm)])
    ours = Classifier(load_bundle(result.bundle), threads=1).predict_images(pixels)
    theirs = tfjs_predict(tm / folder, pixels.astype(np.float32) / 127.5 - 1, tmp_path)  # Teachable Machine's scaling
    diff = float(np.abs(ours - theirs).max())
    print(f"\n{name}: fp32 vs TF.js (tfjs-layers, cpu backend) on {len(pixels)} photos, max |dp| {diff:.1e}")
    assert diff < TOLERANCE
    assert (ours.argmax(1) == theirs.argmax(1)).all()


def test_sound_network_matches_tfjs_with_random_weights(shared_dir: Path, tmp_path: Path) -> None:
    export = random_weights_export(shared_dir, tmp_path, seed=3)
    bundle = import_tm(export, tmp_path / "bundle").bundle
    rng = np.random.default_rng(4)
    t = np.arange(WINDOW_SAMPLES) / 44100
    batch = np.stack([0.3 * rng.standard_normal(WINDOW_SAMPLES), 0.5 * np.sin(2 * np.pi * 700 * t),
                      0.2 * np.sin(2 * np.pi * 3000 * t) + 0.05 * rng.standard_normal(WINDOW_SAMPLES)]).astype(np.float32)
    model = onnx.load(str(load_bundle(bundle).model_path()))
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info("patch"))
    patch, ours = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(["patch", "probabilities"],
                                                                                                         {"waveform": batch})
    theirs = tfjs_predict(export, np.asarray(patch)[..., None], tmp_path)
    diff = float(np.abs(ours - theirs).max())
    print(f"\nsound network vs TF.js (random weights): max |dp| {diff:.1e}")
    assert diff < TOLERANCE
    assert (ours.argmax(1) == theirs.argmax(1)).all()

