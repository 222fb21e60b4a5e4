import warnings

import numpy as np
import onnx  # a core dependency, like onnxruntime
import pytest

torch = pytest.importorskip("torch")

from nascompress.compression.onnx_export import (  # noqa: E402
    INTEGER_OP_TYPES,
    export_onnx,
    onnx_accuracy,
    optimized_op_types,
    ort_session,
    quantize_onnx_int8,
)
from nascompress.spaces.image_cnn import ImageCNNSpace  # noqa: E402


def image_cnn(*, depth=2, width=16, kernel=3, seed=0):
    torch.manual_seed(seed)
    params = {"arch/depth": depth, "arch/width": width, "arch/kernel": kernel}
    return ImageCNNSpace().build_model(params, input_shape=(1, 8, 8), num_classes=10)


def randomize_batchnorm(model, seed=0):
    # Fresh BatchNorm is the identity; random statistics make folding it observable.
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return model


def digits_like(n, seed=0):
    return np.random.default_rng(seed).random((n, 1, 8, 8), dtype=np.float32)


def node_types(path):
    return [node.op_type for node in onnx.load(str(path)).graph.node]


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_export_matches_torch_folds_batchnorm_and_is_quiet(tmp_path, capfd, exporter):
    model = randomize_batchnorm(image_cnn(width=32, kernel=5)).train()
    path = tmp_path / "sub" / "model.onnx"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = export_onnx(model, torch.rand(1, 1, 8, 8), path, exporter=exporter)
    assert caught == [] and capfd.readouterr() == ("", "")
    assert written == path.stat().st_size > 0
    assert model.training  # the caller's mode is restored
    assert "BatchNormalization" not in node_types(path)

    x = digits_like(7)  # another batch size than the example: the batch is dynamic
    got = ort_session(path).run(None, {"input": x})[0]
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_fixed_batch_export_and_accuracy_in_chunks(tmp_path):
    model = image_cnn()
    path = tmp_path / "fixed.onnx"
    export_onnx(model, torch.rand(4, 1, 8, 8), path, dynamic_batch=False)
    session = ort_session(path)
    assert session.get_inputs()[0].shape == [4, 1, 8, 8]
    x, y = digits_like(10), np.arange(10) % 10
    with torch.no_grad():
        expected = (model.eval()(torch.from_numpy(x)).argmax(1).numpy() == y).mean()
    assert onnx_accuracy(session, x, y) == pytest.approx(expected)


def test_export_rejects_bad_options(tmp_path):
    model = image_cnn()
    with pytest.raises(ValueError, match="opset must be an integer >= 13, but got 11"):
        export_onnx(model, torch.rand(1, 1, 8, 8), tmp_path / "m.onnx", opset=11)
    with pytest.raises(ValueError, match="exporter must be one of .* but got 'jit'"):
        export_onnx(model, torch.rand(1, 1, 8, 8), tmp_path / "m.onnx", exporter="jit")
    with pytest.raises(ValueError, match="example_input"):
        export_onnx(model, np.zeros((1, 1, 8, 8)), tmp_path / "m.onnx")


def test_session_is_cpu_with_fixed_threads(tmp_path):
    path = tmp_path / "m.onnx"
    export_onnx(image_cnn(), torch.rand(1, 1, 8, 8), path)
    session = ort_session(path, threads=2)
    options = session.get_session_options()
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)
    with pytest.raises(ValueError, match="threads must be an integer >= 1, but got 0"):
        ort_session(path, threads=0)


def test_onnx_accuracy_counts_argmax_hits_and_validates(tmp_path):
    path = tmp_path / "m.onnx"
    model = image_cnn()
    export_onnx(model, torch.rand(1, 1, 8, 8), path)
    session = ort_session(path)
    x = digits_like(50)
    with torch.no_grad():
        pred = model.eval()(torch.from_numpy(x)).argmax(1).numpy()
    y = pred.copy()
    y[:10] = (y[:10] + 1) % 10  # ten wrong labels
    assert onnx_accuracy(session, x, y, batch_size=7) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="same non-zero number of examples"):
        onnx_accuracy(session, x, y[:-1])
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, but got 0"):
        onnx_accuracy(session, x, y, batch_size=0)


@pytest.fixture(scope="module")
def trained_models(tmp_path_factory):
    """A width-32 image-cnn (about 11k parameters) trained 2 epochs on digits, fp32 + int8."""
    from nascompress.data import load_digits_splits

    data = load_digits_splits()
    model = image_cnn(width=32, kernel=3, seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(2):
        for idx in torch.randperm(len(x), generator=g).split(64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            optimizer.step()
    folder = tmp_path_factory.mktemp("onnx")
    fp32, int8 = folder / "fp32.onnx", folder / "int8.onnx"
    fp32_bytes = export_onnx(model, torch.from_numpy(data.x_val[:1]), fp32)
    int8_bytes = quantize_onnx_int8(fp32, int8, calibration=data.x_train[:256])
    return {"data": data, "model": model, "fp32": fp32, "int8": int8,
            "fp32_bytes": fp32_bytes, "int8_bytes": int8_bytes}


def test_int8_model_agrees_with_fp32_and_is_smaller(trained_models):
    data, model = trained_models["data"], trained_models["model"]
    assert sum(p.numel() for p in model.parameters()) >= 10_000
    fp32, int8 = ort_session(trained_models["fp32"]), ort_session(trained_models["int8"])
    fp32_pred = fp32.run(None, {"input": data.x_val})[0].argmax(1)
    int8_pred = int8.run(None, {"input": data.x_val})[0].argmax(1)
    assert (fp32_pred == int8_pred).mean() >= 0.9
    fp32_acc = onnx_accuracy(fp32, data.x_val, data.y_val)
    assert fp32_acc >= 0.8  # the model learned something, so agreement means something
    assert onnx_accuracy(int8, data.x_val, data.y_val) >= fp32_acc - 0.05
    assert trained_models["int8_bytes"] == trained_models["int8"].stat().st_size
    assert trained_models["int8_bytes"] < 0.5 * trained_models["fp32_bytes"]


def test_int8_graph_is_qdq_and_runs_on_integer_kernels(trained_models):
    stored = node_types(trained_models["int8"])
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= set(stored)  # QDQ format
    ops = optimized_op_types(trained_models["int8"])
    assert ops.count("QLinearConv") == 2  # one per conv block
    assert {"QGemm", "QLinearMatMul", "MatMulInteger"} & set(ops)
    assert set(ops) & INTEGER_OP_TYPES
    # Every conv and the classifier run on integers: no float compute op is left.
    assert not {"Conv", "FusedConv", "Gemm", "MatMul", "FusedMatMul"} & set(ops)
    assert not set(optimized_op_types(trained_models["fp32"])) & INTEGER_OP_TYPES


def test_int8_activations_give_the_same_kernels(trained_models, tmp_path):
    data = trained_models["data"]
    path = tmp_path / "s8.onnx"
    quantize_onnx_int8(trained_models["fp32"], path, calibration=torch.from_numpy(
        data.x_train[:128]), activations="int8", per_channel=False, batch_size=50)
    assert optimized_op_types(path).count("QLinearConv") == 2
    fp32_pred = ort_session(trained_models["fp32"]).run(None, {"input": data.x_val})[0]
    s8_pred = ort_session(path).run(None, {"input": data.x_val})[0]
    assert (fp32_pred.argmax(1) == s8_pred.argmax(1)).mean() >= 0.9


def test_quantize_rejects_bad_options(trained_models, tmp_path):
    fp32, out = trained_models["fp32"], tmp_path / "q.onnx"
    calibration = digits_like(8)
    with pytest.raises(ValueError, match="calibration must be a non-empty array"):
        quantize_onnx_int8(fp32, out, calibration=np.zeros((0, 1, 8, 8), np.float32))
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, but got 0"):
        quantize_onnx_int8(fp32, out, calibration=calibration, batch_size=0)
    with pytest.raises(ValueError, match="activations must be one of .* but got 'int4'"):
        quantize_onnx_int8(fp32, out, calibration=calibration, activations="int4")
    assert not out.exists()
