"""Test helpers shared across test packages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nascompress.objectives import Objective
from nascompress.spaces import Categorical, Float, Int, SearchSpace

#: The objectives of :func:`fg_objectives`.
FG_OBJECTIVES = (Objective("f", "min"), Objective("g", "max"))


class FGSpace(SearchSpace):
    """Three namespaced dims and a joint constraint (``arch/x <= 8``), like the real spaces.

    Subclasses may change the dimensions, keeping ``arch/x``, ``prune/y`` and ``quant/c``
    for :func:`fg_objectives`.
    """

    name = "toy"

    def default_dimensions(self):
        return {
            "arch/x": Int(0, 10),
            "prune/y": Float(0.0, 1.0, step=0.1),
            "quant/c": Categorical(["a", "b"]),
        }

    def check(self, params: Mapping[str, Any]) -> str | None:
        reason = super().check(params)
        if reason:
            return reason
        if params["arch/x"] > 8:
            return "arch/x must be <= 8"
        return None

    def build_model(self, params, *, input_shape, num_classes):
        raise NotImplementedError


def fg_objectives(params: Mapping[str, Any]) -> dict[str, float]:
    """``f`` (minimised) is smallest at ``arch/x=3``; ``g`` (maximised) grows with ``prune/y``."""
    bonus = 2.0 if params["quant/c"] == "a" else 1.0
    return {"f": (params["arch/x"] - 3) ** 2 + params["prune/y"], "g": params["prune/y"] * bonus}


#: compress-train options for searches that check plumbing, not models: the shortest
#: training and a short latency measurement (about a second per digits trial).
TINY_EVALUATOR = {"epochs": 1, "finetune_epochs": 1, "teacher_epochs": 1,
                  "latency": {"min_repeats": 3, "max_repeats": 10, "warmup": 1,
                              "time_cap_s": 0.2}}


def write_tiny_config(path, *, extra_yaml: str = "", **settings: Any):
    """Write a YAML experiment to ``path``: ``settings`` (trials, runner, seed, strategy,
    ...) with the default evaluator on :data:`TINY_EVALUATOR`, then ``extra_yaml``."""
    import yaml

    data = {**settings, "evaluator": {"options": TINY_EVALUATOR}}
    path.write_text(yaml.safe_dump(data, sort_keys=False) + extra_yaml, encoding="utf-8")
    return path


def trial_record(number, state="COMPLETE", metrics=None, params=None, **objectives):
    """A ``trials.jsonl`` record with the given objective values (``accuracy=0.9, ...``)."""
    return {
        "number": number,
        "trial_id": f"t{number:03d}",
        "state": state,
        "objectives": objectives,
        "metrics": metrics or {},
        "params": params or {},
    }


def assert_ran_on_two_nodes(run, *, trials: int) -> None:
    """Every trial of the run folder ``run`` COMPLETE, on two nodes, artifacts on the driver."""
    import json

    records = [json.loads(line) for line in (run / "trials.jsonl").read_text().splitlines()]
    assert len(records) == trials and all(t["state"] == "COMPLETE" for t in records)
    assert len({t["metrics"]["node_id"] for t in records}) == 2
    for record in records:  # artifacts came back to the driver's folder with the results
        artifact = run / "models" / record["metrics"]["artifact"]
        assert artifact.stat().st_size == record["objectives"]["size_bytes"]
