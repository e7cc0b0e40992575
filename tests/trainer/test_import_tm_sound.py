"""`trainer import-tm` on a Teachable Machine sound model (speech-commands "BROWSER_FFT", TF.js).

- The front end inside the ONNX graph against **Chromium's own Web Audio**: headless Chromium renders the same
  44.1 kHz samples through an OfflineAudioContext into an AnalyserNode (fftSize 2048, smoothingTimeConstant 0),
  suspended every 1024 samples to read getFloatFrequencyData, as speech-commands reads it live. Each bin of
  each of the 43 frames must agree within 0.5 dB on a tone, noise and speech.
- The network with the fixture's real model.json architecture (its weights.bin is not published: random
  weights of the right shapes, written here) against the independent numpy evaluation of
  tests/trainer/test_import_tm_layers.py, and `edge predict` on a WAV.
"""

from __future__ import annotations

import base64
import http.server
import json
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import soundfile

from edge.core.bundle import load_bundle
from tests.support.paths import REPO
from tests.trainer.test_import_tm_layers import reference_model, tfjs_reference_weights
from trainer.tm.importer import import_tm
from trainer.tm.sound_frontend import BINS, FRAMES, HOP, SAMPLE_RATE, WINDOW_SAMPLES

DB_TOLERANCE = 0.5

CHROMIUM_PAGE = """<!doctype html><html><body><pre id="out">pending</pre><script>
const samples = new Float32Array(Uint8Array.from(atob("%s"), c => c.charCodeAt(0)).buffer);
// rendering runs one block past the clip: a suspend at the very end of the rendering is not allowed
const ctx = new OfflineAudioContext(1, samples.length + 1024, %d);
const buffer = ctx.createBuffer(1, samples.length, %d);
buffer.copyToChannel(samples, 0);
const source = ctx.createBufferSource();
source.buffer = buffer;
const analyser = ctx.createAnalyser();
analyser.fftSize = 2048;
analyser.smoothingTimeConstant = 0;
source.connect(analyser);
analyser.connect(ctx.destination);
const frames = [];
for (let end = %d; end <= samples.length; end += %d) {
  ctx.suspend(end / ctx.sampleRate).then(() => {
    const data = new Float32Array(analyser.frequencyBinCount);
    analyser.getFloatFrequencyData(data);
    frames.push(Array.from(data.slice(0, %d)));
    ctx.resume();
  });
}
source.start(0);
ctx.startRendering().then(() => fetch("/frames", {method: "POST", body: JSON.stringify(frames)}),
                         (e) => fetch("/frames", {method: "POST", body: JSON.stringify(String(e))}));
</script></body></html>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return name
    pytest.fail("headless Chromium is not installed: run scripts/setup.sh (Debian package chromium, the Web Audio reference)")


def chromium_spectrogram(samples: np.ndarray, tmp_path: Path) -> np.ndarray:
    """[43, 232] dB frames from Chromium's AnalyserNode, frame k read when sample (k + 2) * 1024 has been rendered.
    The page is served from, and posts its frames back to, a server on 127.0.0.1 for this one exchange
    (rendering is asynchronous: --dump-dom would race it)."""
    data = base64.b64encode(samples.astype("<f4").tobytes()).decode()
    page = (CHROMIUM_PAGE % (data, SAMPLE_RATE, SAMPLE_RATE, 2 * HOP, HOP, BINS)).encode()
    posted: queue.Queue[bytes] = queue.Queue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def do_POST(self) -> None:  # noqa: N802
            posted.put(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    browser = subprocess.Popen([chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
                                f"http://127.0.0.1:{server.server_address[1]}/"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        body = posted.get(timeout=120)
    finally:
        browser.terminate()
        browser.wait(timeout=30)
        server.shutdown()
        server.server_close()
    frames = np.asarray(json.loads(body), np.float64)
    assert frames.shape == (FRAMES, BINS), frames.shape
    return frames


def graph_spectrogram(bundle: Path, samples: np.ndarray) -> np.ndarray:
    """The dB frames inside the bundle's graph (its `db` value, before the patch normalisation)."""
    model = onnx.load(str(load_bundle(bundle).model_path()))
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info("db"))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run(["db", "probabilities"], {"waveform": samples[None].astype(np.float32)})
    return np.asarray(outputs[0][0], np.float64)


def random_weights_export(shared_dir: Path, tmp_path: Path, seed: int = 0) -> Path:
    """The real audio model.json and metadata.json, with a weights.bin of random weights of the right shapes."""
    export = tmp_path / "tm-audio"
    export.mkdir()
    source = shared_dir / "teachable-machine" / "tfjs-audio-architecture"
    for name in ("model.json", "metadata.json"):
        (export / name).write_bytes((source / name).read_bytes())
    rng = np.random.default_rng(seed)
    manifest = json.loads((export / "model.json").read_text())["weightsManifest"]
    chunks = []
    for spec in manifest[0]["weights"]:
        shape = spec["shape"]
        fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        chunks.append((rng.standard_normal(int(np.prod(shape))) * (1.0 / np.sqrt(fan_in) if len(shape) > 1 else 0.1)).astype("<f4"))
    (export / "weights.bin").write_bytes(b"".join(c.tobytes() for c in chunks))
    return export


@pytest.fixture(scope="module")
def sound_bundle(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("tm-sound")
    return import_tm(random_weights_export(shared_dir, tmp), tmp / "bundle").bundle


def signals(tmp_path: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    t = np.arange(WINDOW_SAMPLES) / SAMPLE_RATE
    out = {
        "tone": (0.5 * np.sin(2 * np.pi * 1000 * t) + 0.001 * rng.standard_normal(t.size)).astype(np.float32),
        "noise": (0.2 * rng.standard_normal(t.size)).astype(np.float32),
    }
    if shutil.which("espeak-ng") and shutil.which("sox"):
        raw, wav = tmp_path / "raw.wav", tmp_path / "speech.wav"
        subprocess.run(["espeak-ng", "-w", str(raw), "yes go left"], check=True, capture_output=True)
        subprocess.run(["sox", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", str(wav)], check=True, capture_output=True)
        speech, _ = soundfile.read(str(wav), dtype="float32")
        clip = np.zeros(WINDOW_SAMPLES, np.float32)
        clip[: min(len(speech), WINDOW_SAMPLES)] = speech[:WINDOW_SAMPLES]
        out["speech"] = clip + (0.0005 * rng.standard_normal(WINDOW_SAMPLES)).astype(np.float32)
    return out


def test_front_end_matches_chromium_web_audio(sound_bundle: Path, tmp_path: Path) -> None:
    cases = signals(tmp_path)
    assert "speech" in cases, "espeak-ng and sox make the speech case (scripts/setup.sh installs them)"
    for name, samples in cases.items():
        ours = graph_spectrogram(sound_bundle, samples)
        theirs = chromium_spectrogram(samples, tmp_path)
        diff = np.abs(ours - theirs)
        print(f"\n{name}: front end vs Chromium AnalyserNode, {FRAMES}x{BINS} bins: median {np.median(diff):.4f} dB, "
              f"max {diff.max():.3f} dB")
        assert diff.max() < DB_TOLERANCE, name


def test_network_matches_numpy_reference_with_random_weights(shared_dir: Path, sound_bundle: Path, tmp_path: Path) -> None:
    export = random_weights_export(shared_dir, tmp_path)
    config, weights = tfjs_reference_weights(export / "model.json")
    rng = np.random.default_rng(2)
    batch = (0.3 * rng.standard_normal((6, WINDOW_SAMPLES))).astype(np.float32)
    session = ort.InferenceSession(str(load_bundle(sound_bundle).model_path()), providers=["CPUExecutionProvider"])
    model = onnx.load(str(load_bundle(sound_bundle).model_path()))
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info("patch"))
    patch, ours = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(["patch", "probabilities"],
                                                                                                         {"waveform": batch})
    reference = reference_model(config, np.asarray(patch, np.float64)[..., None], weights)
    diff = float(np.abs(ours - reference).max())
    print(f"\nsound network vs numpy reference (random weights): max |dp| {diff:.1e}; classes {ours.argmax(1).tolist()}")
    assert diff < 1e-3
    assert (ours.argmax(1) == reference.argmax(1)).all()
    assert np.allclose(session.run(None, {"waveform": batch})[0], ours)
    # the patch is normalised as speech-commands does: zero mean and unit variance over all 43 x 232 values
    assert np.allclose(patch.mean(axis=(1, 2)), 0, atol=1e-4) and np.allclose(patch.std(axis=(1, 2)), 1, atol=1e-3)


def test_sound_bundle_contract_and_edge_predict(sound_bundle: Path, tmp_path: Path) -> None:
    bundle = load_bundle(sound_bundle)
    assert bundle.task == "audio"
    assert list(bundle.labels) == ["Background Noise", "bar", "foo", "yeah"]  # wordLabels, in output order
    assert (bundle.sample_rate, bundle.window_samples) == (SAMPLE_RATE, WINDOW_SAMPLES)
    wav = tmp_path / "clip.wav"
    t = np.arange(16000 * 2) / 16000
    soundfile.write(str(wav), (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)  # another rate: resampled
    code = "import sys; from edge.cli.main import main; sys.exit(main())"
    done = subprocess.run([sys.executable, "-c", code, "predict", str(sound_bundle), str(wav), "--json"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["label"] in bundle.labels and abs(sum(result["scores"].values()) - 1) < 1e-3
