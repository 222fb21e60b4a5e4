"""The examples/ plug-in, installed, is found through its entry points."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

PLUGIN = Path(__file__).resolve().parents[1] / "examples" / "plugin"


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    # Installed into a private folder put on sys.path: a real install (with its
    # entry-point metadata) that leaves the project's environment untouched.
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(PLUGIN)],
                   check=True, capture_output=True)
    sys.path.insert(0, str(target))
    yield target
    sys.path.remove(str(target))
    for name in [m for m in sys.modules if m.startswith("nascompress_example")]:
        del sys.modules[name]


def test_entry_points_resolve_the_space_and_dataset(installed_plugin):
    from nascompress.data import DATASETS
    from nascompress.spaces import SPACES

    assert SPACES.available()["example-mlp"].startswith("entry point")
    space = SPACES.resolve("example-mlp")()
    data = DATASETS.resolve("example-blobs")(samples=200)
    from nascompress.testing.space_conformance import check_space

    check_space(space, input_shape=data.input_shape, num_classes=data.num_classes)


def test_a_search_runs_on_the_plugin(installed_plugin, tmp_path):
    from nascompress.config import parse_config
    from nascompress.search.experiment import build_experiment
    from nascompress.search.local import run_local

    config = parse_config({
        "name": "plugin", "output_dir": str(tmp_path), "trials": 3, "runner": "local",
        "space": {"name": "example-mlp"}, "dataset": {"name": "example-blobs"},
        "strategy": {"name": "random"},
        "evaluator": {"options": {"epochs": 1, "finetune_epochs": 1, "teacher_epochs": 1,
                                  "latency": {"min_repeats": 3, "max_repeats": 10,
                                              "warmup": 1, "time_cap_s": 0.2}}},
    })
    session = run_local(build_experiment(config), stream=None)
    assert [r["state"] for r in session.records] == ["COMPLETE"] * 3, \
        [r["error"] for r in session.records]


def test_the_plugin_own_tests_pass(installed_plugin):
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(PLUGIN / "tests")], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(installed_plugin)})
    assert done.returncode == 0, done.stdout[-2000:]
