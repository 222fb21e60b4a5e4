"""Shared fixtures. Ray starts once per test session (about 10 s), only when asked for;
so does the small real run of ``tiny_run_dir``.

``scripts/test.sh`` runs the suite on two pytest-xdist workers (``--dist loadgroup``);
:func:`pytest_collection_modifyitems` keeps what must stay together on one worker.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def pytest_collection_modifyitems(config, items):
    """Group the tests for pytest-xdist's ``--dist loadgroup`` (a no-op without it).

    Every module that uses ``ray_session`` goes to one group, so one worker starts one
    local Ray for all of them (two would share the two CPUs the tests ask Ray for).
    Every other module is a group of its own, so its module-scoped fixtures (trained
    models, a supernet, a ``ray start`` cluster) are built once, on one worker.
    """
    if not config.pluginmanager.hasplugin("xdist"):
        return  # --strict-markers would refuse the unregistered xdist_group marker

    def module_of(item):
        return item.nodeid.split("::")[0]  # the test file

    ray_modules = {module_of(item) for item in items if "ray_session" in item.fixturenames}
    for item in items:
        module = module_of(item)
        group = "ray" if module in ray_modules else module
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray with 2 CPUs shared by every test that needs one."""
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        # address="local": never attach to another Ray already running on the machine.
        # trial_slot: a custom resource, for the tests of resources.custom.
        ray.init(address="local", num_cpus=2, resources={"trial_slot": 2},
                 include_dashboard=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1")
    yield ray
    if started:
        ray.shutdown()


#: The run of ``tiny_run_dir``: 6 random trials, each trained for one epoch.
TINY_RUN = {
    "name": "tiny",
    "trials": 6,
    "runner": "local",
    "strategy": {"name": "random"},
    "seed": 3,
    "evaluator": {"options": {"epochs": 1, "finetune_epochs": 1, "teacher_epochs": 1,
                              "latency": {"min_repeats": 3, "max_repeats": 10, "warmup": 1,
                                          "time_cap_s": 0.2}}},
}


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory) -> Path:
    """The folder of a small real run (:data:`TINY_RUN`), run once per test session.

    Shared by every test that asks for it, so it must stay as it is: a test that writes
    into a run folder takes ``tiny_run_copy`` instead.
    """
    pytest.importorskip("torch")
    from nascompress.config import parse_config
    from nascompress.search.experiment import build_experiment
    from nascompress.search.local import run_local

    out = tmp_path_factory.mktemp("results")
    run_local(build_experiment(parse_config({**TINY_RUN, "output_dir": str(out)})), stream=None)
    return out / TINY_RUN["name"]


@pytest.fixture
def tiny_run_copy(tiny_run_dir, tmp_path) -> Path:
    """A private copy of ``tiny_run_dir``, for a test that writes into the run folder."""
    return Path(shutil.copytree(tiny_run_dir, tmp_path / tiny_run_dir.name))
