"""An evaluator written only against the documented Evaluator contract, unknown to
``search/``, gets what the built-in one gets: early stopping on its declared
intermediate metrics, the progress line, run.json records and the latency service."""

import io
import json

import numpy as np
import pytest

pytest.importorskip("torch")

from nascompress.config import ConfigError, parse_config  # noqa: E402
from nascompress.evaluators import RESERVED_RUN_FIELDS, Evaluator, Prepared  # noqa: E402
from nascompress.objectives import Objective  # noqa: E402
from nascompress.search.experiment import build_experiment  # noqa: E402
from nascompress.search.records import RunDirectory  # noqa: E402
from nascompress.search.session import format_objectives  # noqa: E402

PLUGIN = "tests.search.test_plugin_evaluator:ProbeEvaluator"
OBJECTIVES = ("score", "weight_kib", "infer_ms")


class ProbeEvaluator(Evaluator):
    """Scores a candidate by its width (no training) and times its untrained model.

    Args:
        steps: reports per trial.
        offset: added to every score; shared with the trials through ``prepare``.
    """

    uses_latency_service = True

    def __init__(self, *, steps: int = 4, offset: float = 0.0) -> None:
        self.steps = steps
        self.offset = offset

    def validate(self) -> None:
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 1:
            raise ValueError(f"evaluator.steps must be an integer >= 1, but got {self.steps!r}")

    def objectives(self):
        return [Objective("score", "max", "fraction"), Objective("weight_kib", "min", "KiB"),
                Objective("infer_ms", "min", "ms")]

    def intermediate_metrics(self):
        return {"probe_score": "max"}

    def prepare(self, *, space, dataset, seed, workdir):
        return Prepared(shared={"offset": self.offset},
                        record={"probe": {"offset": self.offset, "seed": seed}},
                        summary=f"probe ready: offset {self.offset}")

    def evaluate(self, params, *, space, dataset, context, report):
        from nascompress.latency import current

        score = 0.0
        for step in range(1, self.steps + 1):
            score = (min(1.0, params["arch/width"] / 64 * step / self.steps)
                     - params["prune/ratio"] + context.shared["offset"])
            report(step, {"probe_score": score, "probe_step_width": float(params["arch/width"])})
        model = space.build_model(params, input_shape=dataset.input_shape,
                                  num_classes=dataset.num_classes).eval()
        setup = self.latency_use().setup
        latency = current().measure_torch(model, dataset.x_val[:1], setup)
        weights = sum(p.numel() for p in model.parameters()) * 4 / 1024
        # NumPy scalars on purpose: the contract accepts any finite real number.
        return {"score": np.float32(score), "weight_kib": np.float32(weights),
                "infer_ms": np.float32(latency.median_ms), **latency.as_metrics()}


class SilentProbe(ProbeEvaluator):
    """Declares no intermediate metrics, so early stopping is unavailable."""

    def intermediate_metrics(self):
        return {}


class LegacyProbe(ProbeEvaluator):
    """Returns a plain mapping from prepare, as plug-ins written before Prepared did."""

    def prepare(self, *, space, dataset, seed, workdir):
        return {"offset": self.offset}


def _config(tmp_path, runner, *, evaluator=PLUGIN, trials=12, early_stopping=True, **extra):
    return parse_config({
        "name": runner, "output_dir": str(tmp_path), "trials": trials, "runner": runner,
        "max_concurrent": 2, "seed": 3, "strategy": {"name": "random"},
        "space": {"dimensions": {"arch/width": {"type": "categorical",
                                                "choices": [8, 16, 32, 64]},
                                 "prune/ratio": {"type": "categorical",
                                                 "choices": [0.0, 0.25, 0.5]}}},
        "evaluator": {"name": evaluator, "options": {"offset": 0.5}},
        "latency": {"min_repeats": 3, "max_repeats": 10, "warmup": 1, "time_cap_s": 0.2},
        "early_stopping": {"enabled": early_stopping, "rungs": [2, 4], "eta": 2},
        **extra,
    })


def _check_run(run_path, *, pruned_expected=True):
    run = RunDirectory(run_path)
    trials = run.load_trials()
    assert all(t["state"] in ("COMPLETE", "PRUNED") for t in trials), \
        [t["error"] for t in trials]
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    if pruned_expected:
        assert pruned, "nothing was stopped"
    for trial in pruned:
        assert trial["error"].startswith("early stopping at step")
        assert trial["metrics"]["pruned_at_step"] in (2, 4)
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    assert complete
    for trial in complete:
        assert sorted(trial["objectives"]) == sorted(OBJECTIVES)
        assert all(type(v) is float for v in trial["objectives"].values())
        assert trial["objectives"]["infer_ms"] == pytest.approx(
            trial["metrics"]["latency_median_ms"], rel=1e-6)
        assert trial["metrics"]["latency_gate"]  # measured under the search's gate
    run_json = run.read_run()
    assert run_json["probe"] == {"offset": 0.5, "seed": 3}
    assert run_json["latency"]["runtime"] == "onnxruntime"
    front = json.loads((run_path / "pareto.json").read_text())["front"]
    assert {t["trial_id"] for t in front} <= {t["trial_id"] for t in complete}
    return trials


def test_a_plugin_gets_early_stopping_progress_and_the_latency_service(tmp_path):
    from nascompress.search.local import run_local

    experiment = build_experiment(_config(tmp_path, "local"))
    assert experiment.early_stopping_metrics() == {"probe_score": "max"}
    assert experiment.latency_use().setup.min_repeats == 3
    stream = io.StringIO()
    run_local(experiment, stream=stream)
    trials = _check_run(tmp_path / "local")
    assert len(trials) == 12
    lines = stream.getvalue().splitlines()
    assert "probe ready: offset 0.5" in lines
    progress = [line for line in lines if line.startswith("[")]
    assert len(progress) == 12
    complete = [line for line in progress if "PRUNED" not in line]
    assert complete and all(" score=" in line and " weight_kib=" in line
                            and " infer_ms=" in line for line in complete)


@pytest.mark.ray
def test_a_plugin_gets_the_same_under_ray_tune(ray_session, tmp_path):
    from nascompress.search.controller import run_ray

    experiment = build_experiment(_config(tmp_path, "ray", trials=8))
    stream = io.StringIO()
    run_ray(experiment, stream=stream)
    trials = _check_run(tmp_path / "ray")
    assert len(trials) == 8
    for trial in trials:
        if trial["state"] == "PRUNED":  # what its report gave, kept with the record
            assert trial["metrics"]["last_step"] >= trial["metrics"]["pruned_at_step"]
            assert "last_probe_score" in trial["metrics"]
            assert trial["metrics"]["last_probe_step_width"] in (8.0, 16.0, 32.0, 64.0)
    assert "probe ready: offset 0.5" in stream.getvalue()
    assert "infer_ms=" in stream.getvalue()


def test_early_stopping_needs_declared_intermediate_metrics(tmp_path):
    silent = "tests.search.test_plugin_evaluator:SilentProbe"
    with pytest.raises(ConfigError, match="declares no intermediate metrics"):
        build_experiment(_config(tmp_path, "local", evaluator=silent))
    # Named explicitly, the user takes responsibility for what report emits.
    config = _config(tmp_path, "local", evaluator=silent)
    config.early_stopping.metrics = {"probe_score": "max"}
    assert build_experiment(config).early_stopping_metrics() == {"probe_score": "max"}
    config = _config(tmp_path, "local")
    config.early_stopping.metrics = {"val_accuracy": "max"}
    with pytest.raises(ConfigError, match=r"early_stopping.metrics: .* reports "
                                          r"\['probe_score'\], but got \['val_accuracy'\]"):
        build_experiment(config)


def test_a_plain_mapping_from_prepare_is_the_shared_state(tmp_path):
    from nascompress.search.local import run_local

    config = _config(tmp_path, "local", evaluator="tests.search.test_plugin_evaluator:LegacyProbe",
                     trials=2, early_stopping=False)
    session = run_local(build_experiment(config), stream=None)
    assert [r["state"] for r in session.records] == ["COMPLETE"] * 2
    assert session.shared == {"offset": 0.5}
    assert "probe" not in RunDirectory(tmp_path / "local").read_run()


def test_the_default_evaluator_declares_what_early_stopping_compared_before(tmp_path):
    experiment = build_experiment(parse_config({"output_dir": str(tmp_path)}))
    assert experiment.early_stopping_metrics() == {
        "val_accuracy": "max", "est_size_bytes": "min", "est_latency_ms": "min"}
    assert experiment.early_stopping_margins() == {"val_accuracy": 0.01}
    use = experiment.latency_use()
    assert use.runtime == "onnxruntime" and use.setup == experiment.config.latency.setup()


def test_the_progress_line_formats_objectives_by_unit():
    objectives = [Objective("accuracy", "max", "fraction"), Objective("size_bytes", "min", "bytes"),
                  Objective("latency_ms", "min", "ms"), Objective("weight", "min", "KiB")]
    values = {"accuracy": 0.93124, "size_bytes": 10240.0, "latency_ms": 0.41234,
              "weight": np.float32(2.5)}
    assert format_objectives(objectives, values) == (
        "accuracy=0.9312 size_bytes=10240 latency_ms=0.412 weight=2.5KiB")


def test_prepared_is_checked():
    assert Prepared.of({"a": 1}) == Prepared(shared={"a": 1})
    assert Prepared.of(None) == Prepared()
    with pytest.raises(TypeError, match="must return a Prepared or a mapping"):
        Prepared.of([1])
    assert "seed" in RESERVED_RUN_FIELDS
    with pytest.raises(ValueError, match=r"must not be fields the runner writes.*\['seed'\]"):
        Prepared.of(Prepared(record={"seed": 1}))
    with pytest.raises(TypeError, match="must be JSON-able"):
        Prepared.of(Prepared(record={"x": object()}))
    with pytest.raises(ValueError, match="one line"):
        Prepared.of(Prepared(summary="a\nb"))


def test_the_conformance_check_passes_the_plugin_and_names_what_breaks(tmp_path):
    from nascompress.data import load_digits_splits
    from nascompress.spaces import ImageCNNSpace
    from nascompress.testing.evaluator_conformance import check_evaluator

    space, data = ImageCNNSpace(), load_digits_splits()
    result = check_evaluator(ProbeEvaluator(offset=0.5), space=space, dataset=data,
                             workdir=tmp_path / "ok")
    assert set(OBJECTIVES) <= set(result) and result["latency_gate"]

    class Twice(ProbeEvaluator):
        def objectives(self):
            return [*super().objectives(), Objective("score", "min")]

    with pytest.raises(AssertionError, match="objective names must be unique"):
        check_evaluator(Twice(), space=space, dataset=data, workdir=tmp_path / "twice")

    class Unreported(ProbeEvaluator):
        def intermediate_metrics(self):
            return {"probe_score": "max", "probe_loss": "min"}

    with pytest.raises(AssertionError, match=r"never reported: \['probe_loss'\]"):
        check_evaluator(Unreported(), space=space, dataset=data, workdir=tmp_path / "unrep")

    class NotFinite(ProbeEvaluator):
        def evaluate(self, params, **kwargs):
            return {**super().evaluate(params, **kwargs), "score": float("nan")}

    with pytest.raises(AssertionError, match="finite number for every objective"):
        check_evaluator(NotFinite(), space=space, dataset=data, workdir=tmp_path / "nan")
