"""Exports of a picked trial: the files load with plain runtimes and reproduce the manifest."""

import hashlib
import json
import subprocess
import sys
import sysconfig
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nascompress.export import (  # noqa: E402
    ExportError,
    Manifest,
    export_pick,
    load_state_dict_export,
    manifest_path_for,
)
from nascompress.picking import pick  # noqa: E402
from nascompress.search.records import RunDirectory  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tiny_run_dir):
    return tiny_run_dir


@pytest.fixture(scope="module")
def chosen(run_dir):
    run = RunDirectory(run_dir)
    return pick(run.load_trials(), run.objectives(), run_constraints=run.constraints()).chosen


@pytest.fixture(scope="module")
def test_split(run_dir, tmp_path_factory):
    """The run's test split saved as .npy, for subprocesses that cannot import nascompress."""
    from nascompress.export import load_dataset_for_run

    dataset = load_dataset_for_run(RunDirectory(run_dir).read_run())
    folder = tmp_path_factory.mktemp("split")
    np.save(folder / "x.npy", dataset.x_test)
    np.save(folder / "y.npy", dataset.y_test)
    return folder


def run_isolated(code: str, cwd) -> dict:
    """Run ``code`` in a Python that has the installed packages but cannot import nascompress.

    ``-I -S`` skips site processing (and so the editable install's path hook) and ignores
    PYTHONPATH and the working directory; the environment's site-packages is then added
    by hand, so numpy, torch and onnxruntime import as in a deployment.
    """
    site_packages = sysconfig.get_paths()["purelib"]
    prelude = textwrap.dedent(f"""
        import importlib.util, json, sys
        sys.path.append({site_packages!r})
        assert importlib.util.find_spec("nascompress") is None, "nascompress is importable"
        try:
            import nascompress  # noqa: F401
        except ImportError:
            pass
        else:
            raise SystemExit("nascompress must not be importable here")
    """)
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", prelude + textwrap.dedent(code)],
        cwd=cwd, capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_onnx_export_runs_in_plain_onnxruntime(run_dir, chosen, test_split, tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "deploy" / "model.onnx"
    manifest = export_pick(run_dir, chosen, format="onnx", out=out)

    assert out.is_file() and manifest.manifest_path == manifest_path_for(out)
    on_disk = json.loads(manifest.manifest_path.read_text())
    assert on_disk["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert on_disk["source"]["trial_id"] == chosen["trial_id"]
    assert on_disk["params"] == chosen["params"]
    assert on_disk["objectives"] == chosen["objectives"]
    assert on_disk["objectives_split"] == "validation"
    assert on_disk["num_classes"] == 10
    assert on_disk["preprocessing"]["input_shape"] == [1, 8, 8]
    assert {"scale", "layout", "dtype"} <= set(on_disk["preprocessing"])
    assert {"nascompress", "torch", "onnx", "onnxruntime"} <= set(on_disk["versions"])
    assert on_disk["test"]["split"] == "test" and on_disk["test"]["examples"] == 270
    assert "onnxruntime" in on_disk["test"]["measured_with"]

    result = run_isolated(f"""
        import numpy as np, onnxruntime as ort
        x = np.load({str(test_split / 'x.npy')!r}); y = np.load({str(test_split / 'y.npy')!r})
        session = ort.InferenceSession({str(out)!r}, providers=["CPUExecutionProvider"])
        logits = session.run(None, {{session.get_inputs()[0].name: x}})[0]
        print(json.dumps({{"accuracy": float((logits.argmax(1) == y).mean())}}))
    """, cwd=tmp_path)
    assert abs(result["accuracy"] - on_disk["test_accuracy"]) <= 0.005


def test_torchscript_export_loads_with_plain_torch(run_dir, chosen, test_split, tmp_path):
    out = tmp_path / "model.ts"
    manifest = export_pick(run_dir, chosen, format="torchscript", out=out)
    assert "torch.jit" in manifest.test["measured_with"]
    result = run_isolated(f"""
        import numpy as np, torch
        x = torch.from_numpy(np.load({str(test_split / 'x.npy')!r}))
        y = np.load({str(test_split / 'y.npy')!r})
        model = torch.jit.load({str(out)!r}).eval()
        with torch.no_grad():
            predicted = model(x).argmax(1).numpy()
        print(json.dumps({{"accuracy": float((predicted == y).mean())}}))
    """, cwd=tmp_path)
    assert abs(result["accuracy"] - manifest.test_accuracy) <= 0.005


def test_state_dict_export_loads_with_weights_only(run_dir, chosen, test_split, tmp_path):
    out = tmp_path / "weights.pt"
    manifest = export_pick(run_dir, chosen, format="state_dict", out=out)
    shapes = manifest.architecture["tensor_shapes"]
    result = run_isolated(f"""
        import torch
        state = torch.load({str(out)!r}, weights_only=True)
        print(json.dumps({{k: list(v.shape) for k, v in state.items()}}))
    """, cwd=tmp_path)
    assert result == shapes

    model = load_state_dict_export(out)  # the manifest next to it describes the layers
    x = torch.from_numpy(np.load(test_split / "x.npy"))
    y = np.load(test_split / "y.npy")
    with torch.no_grad():
        accuracy = float((model(x).argmax(1).numpy() == y).mean())
    assert accuracy == pytest.approx(manifest.test_accuracy)
    assert Manifest.read(manifest.manifest_path).to_dict() == manifest.to_dict()


def test_exported_accuracy_matches_the_artifact(run_dir, chosen, tmp_path):
    manifest = export_pick(run_dir, chosen, format="torchscript", out=tmp_path / "m.pt")
    assert manifest.test_accuracy == pytest.approx(manifest.test["artifact_accuracy_torch"])


def test_export_never_unpickles(run_dir, chosen, tmp_path, monkeypatch):
    calls = []
    real_load = torch.load

    def guarded(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", guarded)
    export_pick(run_dir, chosen, format="state_dict", out=tmp_path / "w.pt")
    assert calls and all(flag is True for flag in calls)


def test_out_folder_gets_the_trial_id(run_dir, chosen, tmp_path):
    manifest = export_pick(run_dir, chosen, format="torchscript", out=tmp_path)
    assert manifest.file == f"{chosen['trial_id']}.pt"
    assert (tmp_path / manifest.file).is_file()


@pytest.mark.parametrize(
    ("change", "kwargs", "expected"),
    [
        ({}, {"format": "tflite"}, "format must be one of"),
        ({"state": "FAILED"}, {}, "only COMPLETE trials"),
        ({"metrics": {"artifact": "../run.json"}}, {}, "plain file name"),
        ({"metrics": {"artifact": "missing.nasc"}}, {}, "artifact of trial"),
        ({"metrics": {}}, {}, "no metrics.artifact"),
    ],
)
def test_bad_export_input_names_the_field(run_dir, chosen, tmp_path, change, kwargs, expected):
    record = {**chosen, **change}
    options = {"format": "onnx", "out": tmp_path / "m.onnx", **kwargs}
    with pytest.raises(ExportError, match=expected.replace("(", r"\(")):
        export_pick(run_dir, record, **options)


def test_artifact_of_another_trial_is_refused(run_dir, chosen, tmp_path):
    run = RunDirectory(run_dir)
    other = next(t for t in run.load_trials()
                 if t["params"]["arch/width"] != chosen["params"]["arch/width"]
                 or t["params"]["arch/depth"] != chosen["params"]["arch/depth"])
    record = {**chosen, "metrics": {**chosen["metrics"], "artifact": other["metrics"]["artifact"]}}
    with pytest.raises(ExportError, match="record:"):
        export_pick(run_dir, record, format="torchscript", out=tmp_path / "m.pt")


def test_cli_pick_export(run_dir, tmp_path, capsys):
    from nascompress import cli

    out = tmp_path / "cli.pt"
    assert cli.main(["pick", str(run_dir), "--export", "torchscript", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.is_file() and manifest_path_for(out).is_file()
    assert "Test accuracy of the exported file" in printed and str(out) in printed
