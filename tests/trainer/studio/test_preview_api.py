"""Preview over real HTTP: frames and clips classified by the project's bundle (tiny real ONNX models, an int8 copy
made by ONNX Runtime's own quantizer) with the answers `edge predict` gives, and every bad request refused with a
clear 4xx: no model, unknown project, wrong media type, too big, not an image, no such variant."""

from __future__ import annotations

import io
import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile

from edge.core.bundle import write_manifest
from edge.tools.predict import predict_file
from tests.support.onnx_models import color_bundle, tone, tone_bundle
from tests.trainer.studio.client import Client, Reply
from tests.trainer.studio.conftest import Running
from trainer.studio.preview import PreviewLimits, PreviewModels, classify
from trainer.studio.projects import Project


def _with_int8(bundle: Path) -> Path:
    """Adds an int8 variant made by ONNX Runtime's dynamic quantizer (MatMulInteger: real int8 arithmetic)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's advice to pre-process is not this test's concern
    quantize_dynamic(str(bundle / "model.onnx"), str(bundle / "model.int8.onnx"), weight_type=QuantType.QInt8)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["variants"]["int8"] = "model.int8.onnx"
    write_manifest(bundle, manifest)
    return bundle


def _project(studio: Running, name: str) -> Path:
    assert studio.client.post("/api/projects", {"name": name}).status == 201
    return studio.project(name) / ".studio" / "model"


def _png(bgr: tuple[int, int, int], size: tuple[int, int] = (96, 72)) -> bytes:
    image = np.full((size[1], size[0], 3), bgr, np.uint8)
    cv2.circle(image, (size[0] // 2, size[1] // 2), min(size) // 5, (255, 255, 255), -1)
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def _wav(samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    out = io.BytesIO()
    soundfile.write(out, samples, rate, subtype=subtype, format="WAV")
    return out.getvalue()


def _post(c: Client, project: str, body: bytes, content_type: str, variant: str | None = None) -> Reply:
    query = f"?variant={variant}" if variant else ""
    return c.request("POST", f"/api/projects/{project}/preview{query}", body=body, headers={"Content-Type": content_type})


def test_no_model_unknown_project_and_what_the_page_is_told(studio: Running) -> None:
    c = studio.client
    _project(studio, "fresh")
    for reply in (c.get("/api/projects/fresh/preview"), _post(c, "fresh", _png((0, 0, 255)), "image/png")):
        assert reply.status == 409 and "train the model first" in reply.json()["error"]
    for reply in (c.get("/api/projects/nope/preview"), _post(c, "nope", _png((0, 0, 255)), "image/png")):
        assert reply.status == 404 and "no project named 'nope'" in reply.json()["error"]
    assert _post(c, "..", _png((0, 0, 255)), "image/png").status == 404

    _with_int8(color_bundle(_project(studio, "colours")))
    assert c.get("/api/projects/colours/preview").json() == {
        "task": "image", "labels": ["red", "blue"], "variants": ["fp32", "int8"], "input_size": [16, 16]}


def test_frames_agree_with_edge_predict_in_both_variants(studio: Running, tmp_path: Path) -> None:
    c = studio.client
    bundle = _with_int8(color_bundle(_project(studio, "colours")))
    # the last one barely redder than blue: unsaturated scores, so any other decode, crop or model shows
    for label, bgr in (("red", (30, 30, 220)), ("blue", (200, 60, 20)), ("red", (120, 120, 128))):
        picture = tmp_path / f"{label}.png"
        picture.write_bytes(_png(bgr))
        for variant in ("fp32", "int8"):
            reply = _post(c, "colours", picture.read_bytes(), "image/png", variant)
            assert reply.status == 200, reply.body
            page = reply.json()
            expected = predict_file(bundle, picture, variant=variant)
            assert expected.label == label
            assert (page["label"], page["variant"]) == (label, variant)
            assert page["scores"] == pytest.approx(expected.scores, abs=1e-6)  # the same decode, fit and model run
            assert page["confidence"] == pytest.approx(expected.confidence, abs=1e-6) and page["ms"] >= 0
    # the two variants really are two models: on a frame barely redder than blue, int8's rounding shows
    close = _png((120, 120, 128))
    fp32 = _post(c, "colours", close, "image/png", "fp32").json()["scores"]["red"]
    int8 = _post(c, "colours", close, "image/png", "int8").json()["scores"]["red"]
    assert 0.5 < fp32 < 0.99 and 0.5 < int8 < 0.99 and fp32 != int8
    # a JPEG frame, as the page sends them
    ok, jpeg = cv2.imencode(".jpg", np.full((224, 224, 3), (200, 60, 20), np.uint8))
    assert _post(c, "colours", jpeg.tobytes(), "image/jpeg; charset=binary").json()["label"] == "blue"


def test_bad_frames_are_refused_with_a_reason(studio: Running) -> None:
    c = studio.client
    color_bundle(_project(studio, "colours"))  # fp32 only
    frame = _png((30, 30, 220))
    cases = [
        (_post(c, "colours", frame, "text/plain"), 415, "send a webcam frame"),
        # the media type is checked before the body is read: a big upload meant for something else is told why
        (_post(c, "colours", b"x" * (2 * PreviewLimits().max_body_bytes), "video/mp4"), 415, "send a webcam frame"),
        (_post(c, "colours", _wav(tone(300, 0.5, 16000), 16000), "audio/wav"), 415, "classifies pictures"),
        (_post(c, "colours", b"\xff\xd8\xff\xe0 not really a jpeg" * 10, "image/jpeg"), 400, "not a readable JPEG or PNG"),
        (_post(c, "colours", b"", "image/png"), 400, "not a readable"),
        (_post(c, "colours", b"x" * (PreviewLimits().max_body_bytes + 1), "image/jpeg"), 413, "the most accepted here"),
        (_post(c, "colours", _png((0, 0, 0), (3000, 2000)), "image/png"), 413, "3000x2000 pixels"),
        (_post(c, "colours", frame, "image/png", "int8"), 404, "no int8 copy"),
        (_post(c, "colours", frame, "image/png", "int4"), 400, "variant must be one of fp32, int8"),
    ]
    for reply, status, words in cases:
        assert reply.status == status and words in reply.json()["error"], (status, reply.status, reply.body)
    no_csrf = Client(studio.server.port, csrf=False).request("POST", "/api/projects/colours/preview", body=frame,
                                                              headers={"Content-Type": "image/png"})
    assert no_csrf.status == 403
    assert _post(c, "colours", frame, "image/png").json()["label"] == "red"  # the server is still answering


def test_a_new_training_is_previewed_at_once(studio: Running, tmp_path: Path) -> None:
    c = studio.client
    model = _project(studio, "colours")
    color_bundle(model)
    assert _post(c, "colours", _png((30, 30, 220)), "image/png").json()["label"] == "red"
    # a training ends by renaming a new bundle folder into place (trainer/studio/jobs.py): here with the labels swapped
    new = color_bundle(tmp_path / "new", labels=("blue", "red"))
    shutil.rmtree(model)
    new.rename(model)
    assert _post(c, "colours", _png((30, 30, 220)), "image/png").json()["label"] == "blue"
    # caught half-way (or damaged): a clear 409, not a crash
    (model / "model.onnx").unlink()
    (model / "manifest.json").touch()  # a new key: the loaded session is not reused
    for reply in (_post(c, "colours", _png((30, 30, 220)), "image/png"), c.get("/api/projects/colours/preview")):
        assert reply.status == 409 and "try again in a moment, or train again" in reply.json()["error"], reply.body


def test_sound_clips_any_rate_through_the_device_windows(studio: Running) -> None:
    c = studio.client
    tone_bundle(_project(studio, "whistles"))  # 16 kHz, 0.5 s windows: a low tone from a high one
    info = c.get("/api/projects/whistles/preview").json()
    assert info == {"task": "audio", "labels": ["low", "high"], "variants": ["fp32"], "sample_rate": 16000,
                    "window_samples": 8000, "hop_samples": 4000}
    for label, hz in (("low", 300), ("high", 4000)):
        for rate in (16000, 44100, 48000):  # a browser records at its own rate: resampled to the model's
            reply = _post(c, "whistles", _wav(tone(hz, 1.0, rate), rate), "audio/wav")
            assert reply.status == 200 and reply.json()["label"] == label, (hz, rate, reply.body)
    cases = [
        (_post(c, "whistles", _png((30, 30, 220)), "image/png"), 415, "classifies sounds"),
        (_post(c, "whistles", _wav(np.stack([tone(300, 0.5, 16000)] * 2, axis=1), 16000), "audio/wav"), 415, "mono"),
        (_post(c, "whistles", _wav(tone(300, 0.5, 16000), 16000, "PCM_24"), "audio/wav"), 415, "16-bit PCM"),
        (_post(c, "whistles", _wav(tone(300, 6.0, 16000), 16000), "audio/wav"), 413, "at most 5 s"),
        (_post(c, "whistles", _wav(tone(300, 0.5, 4000), 4000), "audio/wav"), 400, "8000-96000 Hz"),
        (_post(c, "whistles", b"RIFF\x00\x00\x00\x00WAVEjunk" * 4, "audio/wav"), 400, "not a readable WAV"),
    ]
    for reply, status, words in cases:
        assert reply.status == status and words in reply.json()["error"], (status, reply.status, reply.body)


def test_sessions_are_bounded_least_recently_used_first(tmp_path: Path) -> None:
    models = PreviewModels(PreviewLimits(max_sessions=2))
    projects = [Project(name, tmp_path / name) for name in ("a", "b", "c")]
    for project in projects:
        color_bundle(project.model_dir)
    first = models.classifier(projects[0], "fp32")
    second = models.classifier(projects[1], "fp32")
    assert models.classifier(projects[0], "fp32") is first  # kept: no reload per frame
    third = models.classifier(projects[2], "fp32")  # b is now the least recently used: dropped
    assert models.loaded() == 2
    assert models.classifier(projects[2], "fp32") is third and models.classifier(projects[0], "fp32") is first
    assert models.classifier(projects[1], "fp32") is not second and models.loaded() == 2  # loaded again
    red = classify(models, projects[2], "fp32", "image/png", _png((30, 30, 220)))
    assert red.label == "red" and set(red.scores) == {"red", "blue"}
