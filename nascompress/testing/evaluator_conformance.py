"""Check that an :class:`~nascompress.evaluators.Evaluator` honours its contract.

For plug-in authors::

    from nascompress.testing.evaluator_conformance import check_evaluator

    def test_my_evaluator(tmp_path):
        check_evaluator(MyEvaluator(epochs=1), space=MySpace(), dataset=my_splits(),
                        workdir=tmp_path)

The checks: the declarations are consistent (objectives with unique names and valid
modes, intermediate metrics with valid modes, margins >= 0 for declared metrics), the
options validate, ``prepare`` returns a :class:`~nascompress.evaluators.Prepared` or a
mapping, ``settings`` is JSON, and ``evaluate`` on one valid point of the space returns
a finite real number for every objective, with steps that count up and every declared
intermediate metric in its reports. Imports torch only through the evaluator itself.
"""

from __future__ import annotations

import json
import math
import numbers
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["check_evaluator"]


def check_evaluator(
    evaluator,
    *,
    space,
    dataset,
    workdir: str | Path,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Run the contract checks on ``evaluator``; returns its ``evaluate`` result.

    Args:
        evaluator: a constructed evaluator (validated here, as the runner does).
        space: a search space it can evaluate.
        dataset: the dataset splits to evaluate on.
        workdir: an empty folder (``prepare``'s work folder and the artifact folder).
        params: the point to evaluate; by default a valid random point of ``space``.
        seed: for the random point, ``prepare`` and the trial.

    Raises:
        AssertionError: naming the part of the contract that is not met.
    """
    from nascompress.evaluators import Evaluator, LatencyUse, Prepared, TrialContext
    from nascompress.objectives import MODES, Objective

    assert isinstance(evaluator, Evaluator), \
        f"evaluator must be an Evaluator, but got {type(evaluator).__name__}"
    assert isinstance(evaluator.uses_latency_service, bool), \
        f"uses_latency_service must be a bool, but got {evaluator.uses_latency_service!r}"
    if evaluator.uses_latency_service:
        from nascompress.latency.measure import LatencySetup

        setup = LatencySetup(min_repeats=3, max_repeats=10, warmup=1, time_cap_s=0.2)
        evaluator.configure_latency(setup=setup, runtime="onnxruntime")
    evaluator.validate()
    if evaluator.uses_latency_service:
        use = evaluator.latency_use()
        assert isinstance(use, LatencyUse), \
            f"latency_use() must return a LatencyUse once configured, but got {use!r}"

    objectives = list(evaluator.objectives())
    assert objectives, "objectives() must declare at least one objective"
    assert all(isinstance(o, Objective) for o in objectives), \
        f"objectives() must return Objective instances, but got {objectives!r}"
    names = [o.name for o in objectives]
    assert len(set(names)) == len(names), f"objective names must be unique, but got {names}"

    metrics = dict(evaluator.intermediate_metrics())
    bad = {k: v for k, v in metrics.items() if not isinstance(k, str) or v not in MODES}
    assert not bad, f"intermediate_metrics() modes must be 'max' or 'min', but got {bad}"
    margins = dict(evaluator.intermediate_margins())
    bad = {k: v for k, v in margins.items()
           if k not in metrics or isinstance(v, bool) or not isinstance(v, numbers.Real)
           or not v >= 0}
    assert not bad, ("intermediate_margins() must give numbers >= 0 for declared "
                     f"intermediate metrics, but got {bad}")

    settings = evaluator.settings()
    json.dumps(settings, allow_nan=False)  # raises when run.json could not hold it

    workdir = Path(workdir)
    prepared = Prepared.of(evaluator.prepare(space=space, dataset=dataset, seed=seed,
                                             workdir=workdir))
    if params is None:
        params = _valid_point(space, seed)
    reports: list[tuple[Any, dict[str, Any]]] = []
    artifacts = workdir / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    context = TrialContext(trial_id="conformance", seed=seed, artifact_dir=artifacts,
                           shared=prepared.shared)
    result = evaluator.evaluate(dict(params), space=space, dataset=dataset, context=context,
                                report=lambda step, values: reports.append((step, dict(values))))
    assert isinstance(result, Mapping), f"evaluate() must return a dict, but got {result!r}"
    bad = {name: result.get(name) for name in names if not _finite_real(result.get(name))}
    assert not bad, f"evaluate() must return a finite number for every objective, but got {bad}"

    steps = [step for step, _ in reports]
    assert all(_finite_real(s) for s in steps) and steps == sorted(steps), \
        f"report() steps must be numbers counting up, but got {steps}"
    if metrics and reports:
        seen = set().union(*(values for _, values in reports))
        missing = sorted(set(metrics) - seen)
        assert not missing, f"declared intermediate metrics never reported: {missing}"
    return dict(result)


def _finite_real(value: Any) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def _valid_point(space, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    dims = space.dimensions()
    for _ in range(200):
        params = {k: d.sample(rng) for k, d in dims.items()}
        if space.check(params) is None:
            return params
    raise AssertionError("200 random points of the space were all rejected by its check")
