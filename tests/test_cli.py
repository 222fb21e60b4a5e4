"""Bad input exits 2 with one message naming the field, before Ray starts."""

import pytest

pytest.importorskip("torch")

from nascompress import cli  # noqa: E402


@pytest.fixture
def no_ray(monkeypatch):
    import nascompress.search.controller as controller

    def refuse(*args, **kwargs):
        raise AssertionError("Ray must not start for a bad config")

    monkeypatch.setattr(controller, "init_ray", refuse)
    monkeypatch.setattr(controller, "run_ray", refuse)


def _run(capsys, argv):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.err.strip()


@pytest.mark.parametrize(
    ("yaml_text", "argv", "expected"),
    [
        (None, ["--strategy", "bayesain"], "strategy.name: unknown strategy 'bayesain'"),
        ("space:\n  dimensions:\n    prune/ratio: {type: float, low: 0.0, high: 1.0}\n", [],
         "space.dimensions.prune/ratio"),
        ("space:\n  dimensions:\n    quant/bits: {type: categorical, choices: [0, 8]}\n", [],
         "space.dimensions.quant/bits"),
        ("space:\n  dimensions:\n    quant/bits: {type: categorical, choices: [8, 33]}\n", [],
         "space.dimensions.quant/bits"),
        ("trials: 0\n", [], "config error: trials must be >= 1, but got 0"),
        ("evaluator:\n  options: {epochs: 0}\n", [], "evaluator.epochs"),
        ("evaluator:\n  options: {epoch: 3}\n", [], "evaluator.options"),
        ("constraints: ['latency_s <= 2']\n", [], "constraints[0]"),
        (None, ["--name", "../outside"], "config error: name must be"),
        (None, ["--address", "127.0.0.1:1"], "address: cannot reach a Ray cluster"),
        (None, ["--address", "not-an-address"], "address: expected HOST:PORT"),
    ],
)
def test_bad_config_exits_2_naming_the_field(tmp_path, capsys, no_ray, yaml_text, argv, expected):
    args = ["search", "--output-dir", str(tmp_path)]
    if yaml_text is not None:
        path = tmp_path / "experiment.yaml"
        path.write_text(yaml_text)
        args += ["--config", str(path)]
    code, err = _run(capsys, args + argv)
    assert code == 2
    assert expected in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_missing_config_file(tmp_path, capsys, no_ray):
    code, err = _run(capsys, ["search", "--config", str(tmp_path / "missing.yaml")])
    assert code == 2 and "--config" in err and "does not exist" in err


def test_pareto_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    code, err = _run(capsys, ["pareto", str(tmp_path)])
    assert code == 2 and "run_dir" in err


def test_bad_flag_values_get_one_line_too(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["search", "--trials", "abc"])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith("nascompress: error:") and "--trials" in err


@pytest.mark.parametrize(
    ("yaml_text", "has_gpu", "expected"),
    [
        ("resources: {gpu: 1}\n", False, "resources.gpu: 1 GPU(s) per trial asked for"),
        ("latency: {device: cuda}\n", False, "latency.device: 'cuda' asked for"),
        # A GPU, but the CPU-only onnxruntime: refused before any trial trains.
        ("latency: {device: cuda}\n", True,
         "latency.device is 'cuda' but ONNX Runtime on this node has no CUDAExecutionProvider"),
    ],
)
def test_gpu_asked_for_but_not_usable_exits_2(tmp_path, capsys, monkeypatch, no_ray,
                                              yaml_text, has_gpu, expected):
    import onnxruntime
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: has_gpu)
    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CPUExecutionProvider"])
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml_text)
    code, err = _run(capsys, ["search", "--output-dir", str(tmp_path), "--config", str(path)])
    assert code == 2 and expected in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
