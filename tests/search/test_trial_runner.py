"""TrialRunner: failures become FAILED outcomes with a reason; hung trials are stopped."""

import math
import os
import signal
import tempfile
import time

import pytest

from nascompress.evaluators import Evaluator
from nascompress.objectives import Objective
from nascompress.search.trial import TrialRunner
from nascompress.spaces import Categorical, SearchSpace


class OneDimSpace(SearchSpace):
    name = "one-dim"

    def default_dimensions(self):
        return {"arch/behaviour": Categorical(["ok", "nan", "hang", "oom", "kill", "raise"])}

    def build_model(self, params, *, input_shape, num_classes):
        raise NotImplementedError


class BehaviourEvaluator(Evaluator):
    name = "behaviour"

    def objectives(self):
        return [Objective("score", "max")]

    def evaluate(self, params, *, space, dataset, context, report):
        behaviour = params["arch/behaviour"]
        report(1, {"progress": 0.5})
        if behaviour == "nan":
            return {"score": math.nan}
        if behaviour in ("hang", "kill"):  # a partial artifact first
            (context.artifact_dir / "partial.bin").write_bytes(b"\x00")
        if behaviour == "hang":
            time.sleep(600)
        if behaviour == "oom":
            raise MemoryError("cannot allocate")
        if behaviour == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if behaviour == "raise":
            raise ValueError("bad candidate")
        (context.artifact_dir / "model.bin").write_bytes(b"\x00\x01artifact")
        return {"score": 1.0, "artifact": "model.bin"}


def _runner(timeout_s=None):
    evaluator = BehaviourEvaluator()
    return TrialRunner(space=OneDimSpace(), evaluator=evaluator,
                       objectives=evaluator.objectives(), dataset_name="digits",
                       dataset_options={}, search_seed=0, timeout_s=timeout_s)


@pytest.mark.parametrize("timeout_s", [None, 60])
def test_success_returns_objectives_metrics_and_files(timeout_s):
    reports = []
    outcome = _runner(timeout_s)({"arch/behaviour": "ok"}, "t1",
                                 lambda step, m: reports.append((step, m)))
    assert outcome.state == "COMPLETE" and outcome.objectives == {"score": 1.0}
    assert outcome.metrics == {"artifact": "model.bin"}
    assert outcome.file_bytes() == {"model.bin": b"\x00\x01artifact"}
    assert reports == [(1, {"progress": 0.5})]  # relayed from the child process too


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [("nan", "non-finite"), ("raise", "ValueError: bad candidate"), ("oom", "out of memory")],
)
def test_failures_in_process_are_recorded_with_a_reason(behaviour, message):
    outcome = _runner()({"arch/behaviour": behaviour}, "t", lambda *a: None)
    assert outcome.state == "FAILED" and message in outcome.error


def test_invalid_params_fail_without_evaluating():
    outcome = _runner()({"arch/behaviour": "nope"}, "t")
    assert outcome.state == "FAILED" and "invalid parameters" in outcome.error


def test_a_hung_trial_is_stopped_at_the_time_limit():
    started = time.time()
    outcome = _runner(timeout_s=4)({"arch/behaviour": "hang"}, "t")
    assert outcome.state == "FAILED" and "time limit of 4 s" in outcome.error
    assert outcome.metrics["failure_kind"] == "timeout"
    assert time.time() - started < 60


@pytest.mark.parametrize(("behaviour", "timeout_s"), [("hang", 4), ("kill", 60)])
def test_a_stopped_trial_process_leaves_no_artifact_folder(behaviour, timeout_s, tmp_path,
                                                            monkeypatch):
    # Temporary folders go to tmp_path, in this process and in the spawned child.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    outcome = _runner(timeout_s=timeout_s)({"arch/behaviour": behaviour}, "t")
    assert outcome.state == "FAILED"
    assert list(tmp_path.iterdir()) == []


def test_a_killed_trial_process_is_recorded_as_killed():
    outcome = _runner(timeout_s=60)({"arch/behaviour": "kill"}, "t")
    assert outcome.state == "FAILED" and "SIGKILL" in outcome.error
