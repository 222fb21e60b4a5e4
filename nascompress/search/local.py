"""The in-process runner: ask → evaluate → tell, one trial at a time, no Ray.

It writes exactly the records the Ray controller writes; tests and debugging use it.
"""

from __future__ import annotations

from collections.abc import Callable

from nascompress.search.experiment import Experiment
from nascompress.search.records import TrialRecord
from nascompress.search.session import SearchSession
from nascompress.strategies import FINISHED, Outcome, ask_valid


def run_local(experiment: Experiment, *, on_record: Callable[[TrialRecord], None] | None = None):
    """Run the experiment's whole budget in this process; returns the session."""
    session = SearchSession.start(experiment)
    runner = session.trial_runner()
    for index in range(experiment.config.trials):
        trial_id = f"local_{index:05d}"
        params = ask_valid(experiment.strategy, experiment.space, trial_id)
        if params is None or params == FINISHED:
            break
        outcome = runner(params, trial_id)
        experiment.strategy.tell(
            trial_id, Outcome(outcome.state, outcome.objectives, outcome.error)
        )
        record = session.record(trial_id, params, outcome)
        if on_record:
            on_record(record)
    return session
