"""The Ray Tune controller: the strategy as Tune's search algorithm, records on the driver.

Trials run as Tune function trainables (``reuse_actors=True``) under a concurrency
limit. Each trial sends its whole outcome in its final ``tune.report``; a driver-side
Tune callback appends it to ``trials.jsonl`` and rewrites the Pareto files, so records
live in the driver's output folder whichever node ran the trial.

Latency: before Tune starts, the driver creates one latency gate actor per node and,
with ``latency.device_resource``, the measurement service on the target node
(:mod:`nascompress.latency`); they are removed when the search ends.

PRUNED trials come two ways, both decided on the driver and both recorded as PRUNED
with their reason (never FAILED, never on the front; the strategy is told PRUNED):

* early stopping: :class:`MultiObjectiveHalvingScheduler` (a Tune ``TrialScheduler``)
  stops a trial at a rung and notes the reason in the session; the callback turns the
  trial's end, which carries no final result, into a PRUNED record;
* the latency predictor's pre-filter: the searcher marks a hopeless suggestion in its
  config (:data:`PREFILTER_KEY`); the trainable returns PRUNED at once, untrained.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import ray
from ray import tune
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from nascompress.cluster import init_ray, search_address
from nascompress.latency import ray_services
from nascompress.search.early_stopping import MultiObjectiveHalving
from nascompress.search.experiment import Experiment
from nascompress.search.ray_adapter import StrategySearcher
from nascompress.search.session import SearchSession
from nascompress.search.trial import TrialOutcome, TrialRunner

FINAL_KEY = "nascompress_final"
OUTCOME_KEY = "nascompress_outcome"
#: Key of an intermediate result listing (JSON) the keys the evaluator's report gave.
REPORTED_KEY = "nascompress_reported"
#: Config key of a suggestion the latency pre-filter rejected: {"reason", "metrics"}.
PREFILTER_KEY = "nascompress_prefilter"


def _params(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k != PREFILTER_KEY}


def _trainable(config: dict[str, Any], runner: TrialRunner) -> None:
    trial_id = tune.get_context().get_trial_id()
    # Tune insists every result carries the searcher's metrics: intermediate results
    # hold NaN placeholders, which the searcher ignores (it only reads final results).
    placeholders = {o.name: float("nan") for o in runner.objectives}

    def report(step: int, metrics) -> None:
        # Which keys are the evaluator's, among Tune's own: a stopped trial keeps them.
        tune.report({**placeholders, **dict(metrics), "step": step, FINAL_KEY: False,
                     REPORTED_KEY: json.dumps(sorted(metrics))})

    rejected = config.get(PREFILTER_KEY)
    if rejected:
        now = time.time()
        outcome = TrialOutcome("PRUNED", metrics=dict(rejected["metrics"]),
                               error=rejected["reason"], started_at=now, finished_at=now)
    else:
        outcome = runner(_params(config), trial_id, report)
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
    """Tells the session which trials were asked; applies the latency pre-filter.

    A trial the early-stopping scheduler stopped ends without a final result; the
    strategy is told PRUNED with the scheduler's reason (not FAILED).
    """

    session_key: int | None = None

    def suggest(self, trial_id: str):
        params = super().suggest(trial_id)
        session = _SESSIONS.get(self.session_key)
        if isinstance(params, dict) and session is not None:
            session.note_asked(trial_id)
            prefilter = session.experiment.prefilter(backend="ray", records=session.records)
            verdict = prefilter(params) if prefilter is not None else None
            if verdict is not None:
                reason, metrics = verdict
                params = {**params, PREFILTER_KEY: {"reason": reason, "metrics": metrics}}
        return params

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        session = _SESSIONS.get(self.session_key)
        stopped = session.pruned(trial_id) if session is not None else None
        if stopped is not None and not error and not (result or {}).get(FINAL_KEY):
            result = {**(result or {}), "trial_state": "PRUNED", "error": stopped[0]}
        super().on_trial_complete(trial_id, result=result, error=error)


class MultiObjectiveHalvingScheduler(FIFOScheduler):
    """Tune scheduler running :class:`~nascompress.search.early_stopping.MultiObjectiveHalving`.

    Tune's own schedulers take one metric; this one ranks trials at each rung on several
    (see the rule). On a stop it notes the reason in the session, so the trial is
    recorded and told PRUNED. Final results (which carry the objectives) are never
    judged; trials run in submission order as with the FIFO scheduler.

    Args:
        rule: the successive-halving rule.
        session_key: the session's key in this module's table.
    """

    def __init__(self, rule: MultiObjectiveHalving, *, session_key: int) -> None:
        super().__init__()
        self.rule = rule
        self.session_key = session_key

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if result.get(FINAL_KEY) or result.get("trial_state"):
            return TrialScheduler.CONTINUE
        decision = self.rule.on_result(trial.trial_id, result.get("step"), result)
        if not decision.stop:
            return TrialScheduler.CONTINUE
        session = _SESSIONS.get(self.session_key)
        if session is not None:
            session.note_pruned(trial.trial_id, decision.reason or "stopped early",
                                decision.metrics)
        return TrialScheduler.STOP

    def debug_string(self) -> str:
        return (f"Multi-objective successive halving: rungs {self.rule.rungs}, "
                f"eta {self.rule.eta}, metrics {self.rule.metrics}")


class RecordingCallback(tune.Callback):
    """Writes each finished trial to the run folder on the driver."""

    def __init__(self, session: SearchSession) -> None:
        self._key = id(session)
        _SESSIONS[self._key] = session

    def on_trial_result(self, iteration, trials, trial, result, **info):
        # Tune lets callbacks amend a result in place before it becomes the trial's
        # last result: a result the scheduler stopped the trial on says so.
        stopped = _SESSIONS[self._key].pruned(trial.trial_id)
        if stopped is not None and not result.get(FINAL_KEY):
            result.update(trial_state="PRUNED", error=stopped[0])

    def on_trial_complete(self, iteration, trials, trial, **info):
        session = _SESSIONS[self._key]
        result = trial.last_result or {}
        stopped = session.pruned(trial.trial_id)
        if result.get(FINAL_KEY):
            outcome = TrialOutcome.from_dict(json.loads(result[OUTCOME_KEY]))
        elif stopped is not None:
            reason, metrics = stopped
            outcome = TrialOutcome("PRUNED", metrics={**metrics, **_last_intermediate(result)},
                                   error=reason, finished_at=time.time())
        else:
            outcome = TrialOutcome("FAILED", error="trial ended without a final result")
        session.record(trial.trial_id, _params(trial.config), outcome)

    def on_trial_error(self, iteration, trials, trial, **info):
        _SESSIONS[self._key].record(trial.trial_id, _params(trial.config),
                                    TrialOutcome("FAILED", error=_read_error(trial)))


def _last_intermediate(result: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a trial's last intermediate result worth keeping with its record:
    the step and whatever the evaluator's ``report`` gave (not Tune's own keys)."""
    keep = {}
    try:
        reported = json.loads(result.get(REPORTED_KEY) or "[]")
    except (TypeError, ValueError):
        reported = []
    for key in ("step", *reported):
        value = result.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            keep[f"last_{key}"] = value
    return keep


def run_ray(
    experiment: Experiment, *, stream: TextIO | None = sys.stdout, resume: bool = False
) -> SearchSession:
    """Run the experiment's (remaining) budget on Ray Tune; returns the finished session.

    With ``resume=True`` the run folder's records and strategy checkpoint are reloaded
    and only the missing trials run. Tune's own experiment state is not used for this:
    ``trials.jsonl`` is the source of truth, so a fresh Tune run covers the remainder.

    Raises:
        ConfigError: a trial's ``resources`` exceed what the cluster has (checked before
            anything is prepared or run).
    """
    config = experiment.config
    started_ray = init_ray(search_address(config.address))
    try:
        # Before the session prepares (a teacher may train): a trial that asks for
        # resources no node has would otherwise wait in Tune's queue for ever.
        check_trial_resources(config.resources, ray.cluster_resources())
        session = SearchSession.start(experiment, stream=stream, resume=resume)
        _tune(experiment, session, resume=resume)
    finally:
        if started_ray:
            ray.shutdown()
    session.finish()
    experiment.release()
    return session


def check_trial_resources(resources, cluster: Mapping[str, float]) -> None:
    """Raise ``ConfigError`` when one trial needs more of a resource than the cluster has.

    Args:
        resources: the config's ``resources`` section.
        cluster: ``ray.cluster_resources()``.
    """
    from nascompress.config import ConfigError

    wanted = {"resources.cpu": ("CPU", resources.cpu), "resources.gpu": ("GPU", resources.gpu),
              **{f"resources.custom.{name}": (name, amount)
                 for name, amount in resources.custom.items()}}
    for field_name, (key, amount) in wanted.items():
        have = float(cluster.get(key, 0.0))
        if amount > have:
            declared = ", ".join(f"{k}={v:g}" for k, v in sorted(cluster.items())
                                 if not k.startswith(("node:", "memory", "object_store")))
            raise ConfigError(
                f"{field_name}={amount:g}, but the Ray cluster has {have:g} {key} in all "
                f"(it has: {declared}); lower it, or add nodes that declare it "
                f"(ray start --resources '{{\"{key}\": 1}}' for a custom resource)"
            )


def _tune(experiment: Experiment, session: SearchSession, *, resume: bool) -> None:
    """Run the session's remaining trials through Ray Tune (Ray already up), then the
    evaluator's finalists, on the driver, through the same trial runner (one at a
    time, with the search's latency service)."""
    from ray.tune.search import ConcurrencyLimiter

    config = experiment.config
    remaining = session.remaining_trials()
    services_started = False
    try:
        # build_experiment set the strategy up (and so validated it) before any compute;
        # setting it up again would reset it, and with it a resumed search's state.
        searcher = SessionSearcher(
            experiment.strategy, experiment.space, experiment.objectives, seed=config.seed,
            constraints=experiment.constraints, set_up=False,
        )
        if resume:
            session.restore_strategy()
        searcher.session_key = id(session)
        _SESSIONS[id(session)] = session
        resources = {"cpu": config.resources.cpu, "gpu": config.resources.gpu,
                     **config.resources.custom}
        device = "cuda" if config.resources.gpu > 0 else "cpu"
        latency_config = experiment.latency_service_config(backend="ray")
        services_started = True
        try:
            ray_services.start_ray_services(latency_config)
        except ValueError as exc:  # no node declares latency.device_resource
            from nascompress.config import ConfigError

            raise ConfigError(str(exc)) from None
        runner = experiment.trial_runner(shared=session.shared, device=device, backend="ray",
                                         in_process_rules=False)
        session.listeners.append(experiment.observe)
        trainable = tune.with_resources(
            tune.with_parameters(_trainable, runner=runner),
            resources,
        )
        if remaining > 0:
            rule = experiment.early_stopping_rule()
            scheduler = (MultiObjectiveHalvingScheduler(rule, session_key=id(session))
                         if rule is not None else None)
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=ConcurrencyLimiter(searcher, max_concurrent=config.max_concurrent),
                    scheduler=scheduler,
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
        if session.remaining_trials() == 0:
            from nascompress.search.finalists import run_finalists

            run_finalists(experiment, session, runner)
    finally:
        _SESSIONS.pop(id(session), None)
        if services_started:
            ray_services.stop_ray_services(latency_config)
