"""trainer/export.py: int8 quantization (checked on a tiny Conv graph built with onnx.helper, weight
scales worked out by hand), the calibration reader, ONNX export, the parity check and the bundle files.

Every torch op here runs on one thread (fixture below): the mutation run forks workers from a process
that ran these tests, and an OpenMP pool started before a fork can hang the child."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from trainer import __version__ as TRAINER_VERSION
from trainer.export import (
    OPSET,
    PARITY_TOLERANCE,
    ParityError,
    _Calibration,
    batch_session,
    check_parity,
    export_onnx,
    ort_predict,
    quantize_int8,
    remove_stale,
    torch_predict,
    write_bundle,
)
from trainer.image.backbones import ImageProbabilityModel


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def own_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stray relative file (a mutant writing to "None") must not be found by the next test."""
    monkeypatch.chdir(tmp_path)


RNG = np.random.default_rng(0)
W1 = RNG.normal(0, 1, (4, 3, 3, 3)).astype(np.float32)
W2 = RNG.normal(0, 1, (4, 4, 3, 3)).astype(np.float32)
WF = RNG.normal(0, 1, (4, 2)).astype(np.float32)
CALIBRATION = RNG.normal(0, 1, (16, 3, 8, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """x [N,3,8,8] -> conv1 -> relu -> conv2 -> relu -> global average pool -> flatten -> matmul head -> softmax."""
    path = tmp_path_factory.mktemp("q") / "m.onnx"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("p", TensorProto.FLOAT, ["N", 2])
    inits = [numpy_helper.from_array(W1, "w1"), numpy_helper.from_array(W2, "w2"), numpy_helper.from_array(WF, "wf")]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("MatMul", ["f", "wf"], ["l"], name="head"),
        helper.make_node("Softmax", ["l"], ["p"], name="sm", axis=-1),
    ]
    model = helper.make_model(helper.make_graph(nodes, "t", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def graph(path: Path) -> tuple[dict[str, np.ndarray], list[str], list[onnx.NodeProto]]:
    model = onnx.load(str(path))
    initializers = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return initializers, [n.op_type for n in model.graph.node], list(model.graph.node)


# -- quantize_int8 --------------------------------------------------------------------------------------


def test_defaults_qdq_per_channel_7_bit_weights_first_conv_float(conv_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "q.onnx"
    info = quantize_int8(conv_model, out, CALIBRATION, float_first_convs=1)
    assert info == {"format": "qdq", "per_channel": True, "reduce_range": True, "calibration": "minmax",
                    "calibration_inputs": 16, "float_nodes": ["conv1"]}
    inits, ops, nodes = graph(out)
    assert "QLinearConv" not in ops and ops.count("QuantizeLinear") >= 2 and "DequantizeLinear" in ops
    assert "w1_quantized" not in inits and "w1" in inits  # the first conv stays float
    # per-channel symmetric int8, reduce_range (7 bits): scale_c = max|w_c| / 64, zero point 0
    assert inits["w2_scale"].shape == (4,)
    assert np.allclose(inits["w2_scale"], np.abs(W2).reshape(4, -1).max(axis=1) / 64, rtol=1e-6)
    assert inits["w2_zero_point"].dtype == np.int8 and not inits["w2_zero_point"].any()
    assert np.abs(inits["w2_quantized"]).max() == 64
    # activations uint8; a ReLU output starts at 0 -> zero point 0
    assert inits["r1_zero_point"].dtype == np.uint8 and inits["r1_zero_point"] == 0
    # the head (MatMul) and the softmax are not in QUANTIZED_OPS: no quantized head weights
    assert "wf_quantized" not in inits
    assert [n.name for n in nodes if n.op_type == "MatMul"] == ["head"]
    assert np.abs(ort_predict(out, CALIBRATION) - ort_predict(conv_model, CALIBRATION)).max() < 0.1


def test_per_tensor_and_full_range_weights(conv_model: Path, tmp_path: Path) -> None:
    quantize_int8(conv_model, tmp_path / "t.onnx", CALIBRATION, per_channel=False, float_first_convs=1)
    inits, _, _ = graph(tmp_path / "t.onnx")
    assert inits["w2_scale"].shape == () and np.isclose(inits["w2_scale"], np.abs(W2).max() / 64, rtol=1e-6)
    info = quantize_int8(conv_model, tmp_path / "f.onnx", CALIBRATION, reduce_range=False, float_first_convs=1)
    assert info["reduce_range"] is False
    inits, _, _ = graph(tmp_path / "f.onnx")
    assert np.allclose(inits["w2_scale"], np.abs(W2).reshape(4, -1).max(axis=1) / 127, rtol=1e-6)


def test_float_first_convs_counts_convs_in_graph_order(conv_model: Path, tmp_path: Path) -> None:
    assert quantize_int8(conv_model, tmp_path / "a.onnx", CALIBRATION, float_first_convs=0)["float_nodes"] == []
    inits, _, _ = graph(tmp_path / "a.onnx")
    assert "w1_quantized" in inits and "w2_quantized" in inits
    assert quantize_int8(conv_model, tmp_path / "b.onnx", CALIBRATION, float_first_convs=2)["float_nodes"] == ["conv1", "conv2"]
    assert quantize_int8(conv_model, tmp_path / "c.onnx", CALIBRATION, float_first_convs=-3)["float_nodes"] == []
    assert quantize_int8(conv_model, tmp_path / "d.onnx", CALIBRATION)["float_nodes"] == ["conv1", "conv2"]  # default 9 > 2 convs


def test_nodes_to_exclude_stay_float(conv_model: Path, tmp_path: Path) -> None:
    info = quantize_int8(conv_model, tmp_path / "e.onnx", CALIBRATION, nodes_to_exclude=["conv2"], float_first_convs=1)
    assert info["float_nodes"] == ["conv2", "conv1"]
    inits, _, _ = graph(tmp_path / "e.onnx")
    assert "w1_quantized" not in inits and "w2_quantized" not in inits
    info = quantize_int8(conv_model, tmp_path / "f.onnx", CALIBRATION, nodes_to_exclude=("conv2",), float_first_convs=0)
    assert info["float_nodes"] == ["conv2"] and "w1_quantized" in graph(tmp_path / "f.onnx")[0]


def test_op_types_choose_what_is_quantized(conv_model: Path, tmp_path: Path) -> None:
    quantize_int8(conv_model, tmp_path / "c.onnx", CALIBRATION, op_types=("Conv",), float_first_convs=0)
    inits, _, _ = graph(tmp_path / "c.onnx")
    assert "g_scale" not in inits  # the pool's output is not quantized any more
    quantize_int8(conv_model, tmp_path / "all.onnx", CALIBRATION, op_types=None, float_first_convs=0)
    inits, _, _ = graph(tmp_path / "all.onnx")
    assert "wf_quantized" in inits  # every op, the MatMul head included


def test_qoperator_format(conv_model: Path, tmp_path: Path) -> None:
    info = quantize_int8(conv_model, tmp_path / "o.onnx", CALIBRATION, fmt="qoperator", float_first_convs=1)
    assert info["format"] == "qoperator" and "QLinearConv" in graph(tmp_path / "o.onnx")[1]


def _activation_scale(path: Path) -> float:
    return float(graph(path)[0]["r2_scale"])


def test_calibration_methods_and_their_names(conv_model: Path, tmp_path: Path) -> None:
    minmax = tmp_path / "mm.onnx"
    quantize_int8(conv_model, minmax, CALIBRATION, float_first_convs=0)
    # minmax: the largest ReLU output seen in calibration maps to 255
    session = onnx.load(str(conv_model))
    session.graph.output.append(helper.make_tensor_value_info("r2", TensorProto.FLOAT, None))
    probe = tmp_path / "probe.onnx"
    onnx.save(session, str(probe))
    import onnxruntime

    r2 = onnxruntime.InferenceSession(str(probe), providers=["CPUExecutionProvider"]).run(["r2"], {"x": CALIBRATION})[0]
    assert _activation_scale(minmax) == pytest.approx(r2.max() / 255, rel=1e-5)
    for method in ("percentile", "entropy"):
        out = tmp_path / f"{method}.onnx"
        assert quantize_int8(conv_model, out, CALIBRATION, method=method, float_first_convs=0)["calibration"] == method
    # percentile clips the top 0.001 %: a (slightly) smaller range than minmax. (Entropy picks minmax's range
    # on data this small.)
    assert _activation_scale(tmp_path / "percentile.onnx") < _activation_scale(minmax)
    with pytest.raises(KeyError):
        quantize_int8(conv_model, tmp_path / "x.onnx", CALIBRATION, method="median")


def test_extra_options_reach_the_quantizer_and_the_report(conv_model: Path, tmp_path: Path) -> None:
    info = quantize_int8(conv_model, tmp_path / "s.onnx", CALIBRATION, float_first_convs=1, extra_options={"ActivationSymmetric": True})
    assert info["extra_options"] == {"ActivationSymmetric": True}
    assert graph(tmp_path / "s.onnx")[0]["r1_zero_point"] == 128  # symmetric uint8 activations
    assert "extra_options" not in quantize_int8(conv_model, tmp_path / "n.onnx", CALIBRATION, float_first_convs=1, extra_options={})


def test_the_quantizer_chatter_is_silenced_and_the_log_level_restored(conv_model: Path, tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    root = logging.getLogger()
    with caplog.at_level(logging.DEBUG):
        quantize_int8(conv_model, tmp_path / "l.onnx", CALIBRATION, float_first_convs=1)
        assert root.level == logging.DEBUG
    assert [r for r in caplog.records if r.levelno < logging.WARNING] == []


# -- calibration reader -----------------------------------------------------------------------------------


def test_calibration_reader_batches_of_eight_then_none() -> None:
    inputs = np.arange(20 * 2, dtype=np.float32).reshape(20, 2)
    reader = _Calibration("x", inputs)
    assert reader.input_name == "x"
    sizes = []
    while (batch := reader.get_next()) is not None:
        assert list(batch) == ["x"] and batch["x"].flags["C_CONTIGUOUS"]
        sizes.append(len(batch["x"]))
    assert sizes == [8, 8, 4] and reader.get_next() is None
    reader = _Calibration("y", inputs[:, ::-1], batch_size=7)  # a strided view becomes contiguous
    first = reader.get_next()["y"]
    assert first.flags["C_CONTIGUOUS"] and np.array_equal(first, inputs[:7, ::-1])


# -- export, prediction, parity ----------------------------------------------------------------------------


def tiny_classifier(weight: list[list[float]]) -> ImageProbabilityModel:
    head = nn.Linear(2, len(weight), bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.tensor(weight))
    return ImageProbabilityModel(nn.Identity(), nn.Identity(), head)


def test_probability_model_is_softmax_over_classes() -> None:
    model = tiny_classifier([[1.0, 0.0], [0.0, 1.0]])
    out = model(torch.tensor([[0.0, 0.0], [float(np.log(3.0)), 0.0]]))
    # row 0: logits (0, 0) -> (1/2, 1/2); row 1: logits (ln 3, 0) -> (3/4, 1/4)
    assert torch.allclose(out, torch.tensor([[0.5, 0.5], [0.75, 0.25]]))


def test_export_onnx_with_a_dynamic_batch(tmp_path: Path) -> None:
    model = tiny_classifier([[1.0, -1.0], [-1.0, 1.0], [0.5, 0.5]])
    model.train()
    path = tmp_path / "m.onnx"
    export_onnx(model, torch.zeros(1, 2), path, "features")
    assert not model.training  # exported in eval mode
    proto = onnx.load(str(path))
    assert OPSET == 17 and [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [17]
    assert [i.name for i in proto.graph.input] == ["features"] and [o.name for o in proto.graph.output] == ["probabilities"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value == 3  # the classes are fixed
    x = np.random.default_rng(1).normal(size=(5, 2)).astype(np.float32)
    assert np.allclose(ort_predict(path, x, batch_size=2), torch_predict(model, x), atol=1e-6)
    export_onnx(model, torch.zeros(1, 2), tmp_path / "n.onnx", "x", output_name="scores")
    assert [o.name for o in onnx.load(str(tmp_path / "n.onnx")).graph.output] == ["scores"]


class FoldHead(nn.Module):
    """A head whose weights go through constant arithmetic before the MatMul."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ (self.w.t() * 2.0 + 1.0)


def test_export_folds_constant_work_away(tmp_path: Path) -> None:
    path = tmp_path / "f.onnx"
    export_onnx(ImageProbabilityModel(nn.Identity(), nn.Identity(), FoldHead()), torch.zeros(1, 2), path, "x")
    assert [n.op_type for n in onnx.load(str(path)).graph.node] == ["MatMul", "Softmax"]


def test_torch_predict_in_batches_as_float32() -> None:
    calls = []

    class Spy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(len(x))
            assert not torch.is_grad_enabled()
            return x.double() * 2

    x = np.arange(70, dtype=np.float32).reshape(35, 2)
    out = torch_predict(Spy(), x)
    assert calls == [32, 3] and out.dtype == np.float32 and np.array_equal(out, x * 2)
    calls.clear()
    torch_predict(Spy(), x[:, ::-1], batch_size=10)  # a strided view is fine
    assert calls == [10, 10, 10, 5]


def test_batch_session_settings(conv_model: Path) -> None:
    session = batch_session(conv_model, threads=3)
    options = session.get_session_options()
    assert options.intra_op_num_threads == 3 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.log_severity_level == 3
    assert session.get_providers() == ["CPUExecutionProvider"]


def test_batch_session_asks_for_the_cpu_provider_only(conv_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime

    asked = []
    real = onnxruntime.InferenceSession

    def spy(path, sess_options=None, providers=None, **kw):
        asked.append(providers)
        return real(path, sess_options=sess_options, providers=providers, **kw)

    monkeypatch.setattr(onnxruntime, "InferenceSession", spy)
    batch_session(conv_model)
    assert asked == [["CPUExecutionProvider"]]  # a GPU build must not pick CUDA/TensorRT for bulk work
    assert batch_session(conv_model, threads=-2).get_session_options().intra_op_num_threads == 0
    assert batch_session(str(conv_model)).get_session_options().intra_op_num_threads == 0


def test_ort_predict_concatenates_batches(conv_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainer import export

    made = []
    real = export.batch_session

    def spy(path, threads=0):
        made.append(threads)
        return real(path, threads=threads)

    monkeypatch.setattr(export, "batch_session", spy)
    whole = ort_predict(conv_model, CALIBRATION, batch_size=16)
    parts = ort_predict(conv_model, CALIBRATION, batch_size=5, threads=2)
    assert whole.shape == (16, 2) and whole.dtype == np.float32 and np.allclose(whole, parts, atol=1e-6)
    assert np.allclose(ort_predict(conv_model, CALIBRATION[:, :, ::-1]), ort_predict(conv_model, np.ascontiguousarray(CALIBRATION[:, :,
                                                                                                                                  ::-1])))
    assert made == [0, 2, 0, 0]


def test_ort_predict_runs_32_inputs_at_a_time_by_default(conv_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainer import export

    sizes = []
    real = export.batch_session

    class Recording:
        def __init__(self, session) -> None:
            self.session = session

        def get_inputs(self):
            return self.session.get_inputs()

        def run(self, names, feed):
            sizes.append(len(next(iter(feed.values()))))
            return self.session.run(names, feed)

    monkeypatch.setattr(export, "batch_session", lambda path, threads=0: Recording(real(path, threads=threads)))
    x = np.concatenate([CALIBRATION, CALIBRATION, CALIBRATION])[:40]
    assert ort_predict(conv_model, x).shape == (40, 2)
    assert sizes == [32, 8]


def test_parity_passes_on_a_faithful_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_classifier([[1.0, -1.0], [-1.0, 1.0]])
    path = tmp_path / "m.onnx"
    export_onnx(model, torch.zeros(1, 2), path, "x")
    x = np.random.default_rng(2).normal(size=(40, 2)).astype(np.float32)
    from trainer import export

    torch.set_num_threads(2)
    seen = []
    real = export.torch_predict

    def spy(model, inputs, batch_size=32):
        seen.append(torch.get_num_threads())
        return real(model, inputs, batch_size)

    monkeypatch.setattr(export, "torch_predict", spy)
    result = check_parity(model, path, x)
    assert seen == [1]  # PyTorch on one thread: 7x faster than two on a busy 2-core machine
    assert torch.get_num_threads() == 2  # restored
    assert set(result) == {"max_abs_diff", "tolerance", "n", "top1_disagreements"}
    assert result["n"] == 40 and result["top1_disagreements"] == 0 and result["tolerance"] == PARITY_TOLERANCE == 1e-3
    assert 0 <= result["max_abs_diff"] < 1e-6


def test_parity_refuses_a_different_model(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    export_onnx(tiny_classifier([[1.0, -1.0], [-1.0, 1.0]]), torch.zeros(1, 2), path, "x")
    swapped = tiny_classifier([[-1.0, 1.0], [1.0, -1.0]])
    x = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    # ONNX: softmax(1, -1) = (0.881, 0.119); the model: (0.119, 0.881) -> |diff| 0.762, both rows flip
    with pytest.raises(ParityError,
                       match=r"m.onnx: ONNX Runtime and PyTorch disagree on 2 validation inputs: max \|diff\| of probabilities 0.762 > "
                       r"tolerance 0.001 \(2 top-1 changes\)\. The export is broken"):
        check_parity(swapped, path, x)
    slightly = tiny_classifier([[1.0, -1.0], [-1.0, 1.001]])
    with pytest.raises(ParityError, match=r"\(0 top-1 changes\)"):
        check_parity(slightly, path, x, tolerance=1e-5)
    diff = check_parity(slightly, path, x, tolerance=0.01)["max_abs_diff"]
    assert diff > 1e-5
    assert check_parity(slightly, path, x, tolerance=diff)["max_abs_diff"] == diff  # the tolerance itself passes


def test_parity_refuses_another_output_shape_and_no_inputs(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    export_onnx(tiny_classifier([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), torch.zeros(1, 2), path, "x")
    with pytest.raises(ParityError, match=r"m.onnx: ONNX output shape \(1, 3\) differs from PyTorch's \(1, 2\)$"):
        check_parity(tiny_classifier([[1.0, 0.0], [0.0, 1.0]]), path, np.zeros((1, 2), np.float32))
    with pytest.raises(ParityError, match=r"^parity check needs at least one input$"):
        check_parity(tiny_classifier([[1.0, 0.0], [0.0, 1.0]]), path, np.zeros((0, 2), np.float32))


def test_parity_refuses_nan(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    model = tiny_classifier([[1.0, 0.0], [0.0, 1.0]])
    export_onnx(model, torch.zeros(1, 2), path, "x")
    with pytest.raises(ParityError, match="max \\|diff\\| of probabilities nan"):
        check_parity(model, path, np.array([[np.inf, 0.0]], np.float32))


# -- bundle files -------------------------------------------------------------------------------------------


def test_write_bundle_names_the_variants_that_exist(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"fp32")
    path = write_bundle(tmp_path, task="image", labels=["cat", "dog", "owl"], input_spec={"name": "image"},
                        preprocessing={"resize": "stretch"}, metrics={"fp32": {"accuracy": 1.0}}, extra={"backbone": "tiny",
                                                                                                         "task": "image"})
    assert path == tmp_path / "manifest.json"
    assert (tmp_path / "labels.txt").read_text() == "cat\ndog\nowl\n"
    m = json.loads(path.read_text())
    assert m["variants"] == {"fp32": "model.onnx"}
    assert m["output"] == {"name": "probabilities", "dtype": "float32", "shape": [-1, 3]}
    assert m["labels"] == ["cat", "dog", "owl"] and m["input"] == {"name": "image"} and m["preprocessing"] == {"resize": "stretch"}
    assert m["metrics"] == {"fp32": {"accuracy": 1.0}} and m["backbone"] == "tiny" and m["trainer_version"] == TRAINER_VERSION
    created = datetime.fromisoformat(m["created_at"])
    assert created.tzinfo == timezone.utc and created.microsecond == 0
    assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 60
    assert set(m["files"]) == {"model.onnx", "labels.txt"}
    (tmp_path / "model.int8.onnx").write_bytes(b"int8")
    m = json.loads(write_bundle(tmp_path, task="audio", labels=["a", "b"], input_spec={}, preprocessing={}, metrics={},
                                extra={}).read_text())
    assert m["variants"] == {"fp32": "model.onnx", "int8": "model.int8.onnx"} and m["task"] == "audio"


def test_remove_stale_removes_model_files_and_the_manifest_only(tmp_path: Path) -> None:
    for name in ("model.onnx", "model.int8.onnx", "manifest.json", "labels.txt", "report.html"):
        (tmp_path / name).write_bytes(b"x")
    remove_stale(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.txt", "report.html"]
    remove_stale(tmp_path)  # nothing left to remove: fine
