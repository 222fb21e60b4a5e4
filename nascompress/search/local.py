"""The in-process runner: ask → evaluate → tell, one trial at a time, no Ray.

It writes exactly the records the Ray controller writes; tests and debugging use it.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from typing import TextIO

from nascompress.search.experiment import Experiment
from nascompress.search.records import TrialRecord
from nascompress.search.session import SearchSession
from nascompress.strategies import FINISHED, Outcome, ask_valid


def run_local(
    experiment: Experiment,
    *,
    resume: bool = False,
    stream: TextIO | None = sys.stdout,
    on_record: Callable[[TrialRecord], None] | None = None,
) -> SearchSession:
    """Run the experiment's (remaining) budget in this process; returns the session."""
    session = SearchSession.start(experiment, stream=stream, resume=resume)
    if resume:
        session.restore_strategy()
    runner = experiment.trial_runner(shared=session.shared, records=session.records)
    session.listeners.append(experiment.observe)
    while session.remaining_trials() > 0:
        # Ids only need to be unique within the run, also across restarts.
        trial_id = f"local_{uuid.uuid4().hex[:8]}"
        params = ask_valid(experiment.strategy, experiment.space, trial_id)
        if params is None or params == FINISHED:
            break
        session.note_asked(trial_id)
        outcome = runner(params, trial_id)
        experiment.strategy.tell(
            trial_id, Outcome(outcome.state, outcome.objectives, outcome.error)
        )
        record = session.record(trial_id, params, outcome)
        if on_record and record:
            on_record(record)
    if session.remaining_trials() == 0:
        from nascompress.search.finalists import run_finalists

        run_finalists(experiment, session, runner, on_record=on_record)
    session.finish()
    experiment.release()
    return session
