"""The Ray Tune controller: the strategy as Tune's search algorithm, records on the driver.

Trials run as Tune function trainables (``reuse_actors=True``) under a concurrency
limit. Each trial sends its whole outcome in its final ``tune.report``; a driver-side
Tune callback appends it to ``trials.jsonl`` and rewrites the Pareto files, so records
live in the driver's output folder whichever node ran the trial.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import ray
from ray import tune

from nascompress.search.experiment import Experiment
from nascompress.search.ray_adapter import StrategySearcher
from nascompress.search.session import SearchSession
from nascompress.search.trial import TrialOutcome, TrialRunner

FINAL_KEY = "nascompress_final"
OUTCOME_KEY = "nascompress_outcome"


def _trainable(config: dict[str, Any], runner: TrialRunner) -> None:
    trial_id = tune.get_context().get_trial_id()
    # Tune insists every result carries the searcher's metrics: intermediate results
    # hold NaN placeholders, which the searcher ignores (it only reads final results).
    placeholders = {o.name: float("nan") for o in runner.objectives}

    def report(step: int, metrics) -> None:
        tune.report({**placeholders, **dict(metrics), "step": step, FINAL_KEY: False})

    outcome = runner(config, trial_id, report)
    # Where it ran, so users (and tests) can see trials spread over a cluster.
    context = ray.get_runtime_context()
    outcome.metrics.update(node_id=context.get_node_id(), node_ip=ray.util.get_node_ip_address())
    tune.report({
        **placeholders,
        **outcome.objectives,
        "trial_state": outcome.state,
        "error": outcome.error or "",
        FINAL_KEY: True,
        OUTCOME_KEY: json.dumps(outcome.to_dict()),
    })


def _read_error(trial) -> str:
    path = getattr(trial, "error_file", None)
    try:
        if path and Path(path).exists():
            text = Path(path).read_text(encoding="utf-8", errors="replace").strip()
            return text.splitlines()[-1] if text else "trial process failed"
    except OSError:
        pass
    return "trial process failed (no error file)"


# Tune pickles its callbacks and searcher with the experiment state; the live session
# (locks, open streams) cannot be pickled, so they hold a key into this table instead.
_SESSIONS: dict[int, SearchSession] = {}


class SessionSearcher(StrategySearcher):
    """Tells the session which trials were asked, for the strategy checkpoint."""

    session_key: int | None = None

    def suggest(self, trial_id: str):
        params = super().suggest(trial_id)
        if isinstance(params, dict) and self.session_key in _SESSIONS:
            _SESSIONS[self.session_key].note_asked(trial_id)
        return params


class RecordingCallback(tune.Callback):
    """Writes each finished trial to the run folder on the driver."""

    def __init__(self, session: SearchSession) -> None:
        self._key = id(session)
        _SESSIONS[self._key] = session

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        if result.get(FINAL_KEY):
            outcome = TrialOutcome.from_dict(json.loads(result[OUTCOME_KEY]))
        else:
            outcome = TrialOutcome("FAILED", error="trial ended without a final result")
        _SESSIONS[self._key].record(trial.trial_id, trial.config, outcome)

    def on_trial_error(self, iteration, trials, trial, **info):
        _SESSIONS[self._key].record(trial.trial_id, trial.config,
                                    TrialOutcome("FAILED", error=_read_error(trial)))


def init_ray(address: str | None) -> bool:
    """Start (or join) Ray; returns True when this call started it.

    A local Ray keeps its dashboard off and binds to 127.0.0.1: nothing is exposed
    beyond this machine.
    """
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Our progress lines are the console output; Tune's own tables would repeat them.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1")
    return True


def run_ray(
    experiment: Experiment, *, stream: TextIO | None = sys.stdout, resume: bool = False
) -> SearchSession:
    """Run the experiment's (remaining) budget on Ray Tune; returns the finished session.

    With ``resume=True`` the run folder's records and strategy checkpoint are reloaded
    and only the missing trials run. Tune's own experiment state is not used for this:
    ``trials.jsonl`` is the source of truth, so a fresh Tune run covers the remainder.
    """
    from ray.tune.search import ConcurrencyLimiter

    config = experiment.config
    session = SearchSession.start(experiment, stream=stream, resume=resume)
    remaining = session.remaining_trials()
    if remaining == 0:
        session.finish()
        return session
    started_ray = init_ray(config.address)
    try:
        searcher = SessionSearcher(
            experiment.strategy, experiment.space, experiment.objectives, seed=config.seed,
            constraints=experiment.constraints,
        )
        if resume:  # after the searcher's own strategy.setup, which resets the strategy
            session.restore_strategy()
        searcher.session_key = id(session)
        _SESSIONS[id(session)] = session
        resources = {"cpu": config.resources.cpu, "gpu": config.resources.gpu}
        device = "cuda" if config.resources.gpu > 0 else "cpu"
        trainable = tune.with_resources(
            tune.with_parameters(_trainable, runner=session.trial_runner(device=device)),
            resources,
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=ConcurrencyLimiter(searcher, max_concurrent=config.max_concurrent),
                num_samples=remaining,
                reuse_actors=True,
                trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}",
            ),
            run_config=tune.RunConfig(
                name=f"tune-{len(session.records):05d}",  # one folder per (re)start
                storage_path=str((experiment.run_dir.path / "ray").resolve()),
                callbacks=[RecordingCallback(session)],
                verbose=0,
                # A worker that dies mid-trial (node lost, process killed) is retried;
                # a candidate that raises is not: it returns a FAILED outcome instead.
                failure_config=tune.FailureConfig(max_failures=config.retries),
            ),
        )
        tuner.fit()
    finally:
        _SESSIONS.pop(id(session), None)
        if started_ray:
            ray.shutdown()
    session.finish()
    return session
