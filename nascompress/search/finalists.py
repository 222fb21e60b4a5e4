"""The finishing stage: the evaluator's finalists, run and recorded after the budget.

Generic: which trials to finish is the evaluator's choice
(:meth:`~nascompress.evaluators.Evaluator.finalists`); this module runs each chosen
trial's params again with ``stage="final"`` through the search's own trial runner and
records the outcome as a trial of its own (``stage: "final"``, ``metrics["finalist_of"]``
and ``metrics["search_objectives"]``: the chosen trial's number and objectives).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace

from nascompress.search.experiment import Experiment
from nascompress.search.records import TrialRecord
from nascompress.search.session import SearchSession
from nascompress.search.trial import TrialRunner


def run_finalists(
    experiment: Experiment, session: SearchSession, runner: TrialRunner, *,
    on_record: Callable[[TrialRecord], None] | None = None,
) -> int:
    """Run the finalists not recorded yet, one after another; returns how many ran.

    ``runner`` is the search's trial runner; the finalists run without the early-stopping
    rule and the latency pre-filter (they were measured already and are to be finished).
    """
    search = [r for r in session.records if r.get("stage", "search") == "search"]
    chosen = experiment.evaluator.finalists(search, objectives=experiment.objectives,
                                            constraints=experiment.constraints)
    done = {r.get("metrics", {}).get("finalist_of") for r in session.records
            if r.get("stage") == "final"}
    final_runner = replace(runner, stage="final", early_stopping=None, prefilter=None)
    ran = 0
    for chosen_record in chosen:
        if chosen_record["number"] in done:
            continue  # recorded before a restart
        trial_id = f"final_{uuid.uuid4().hex[:8]}"
        outcome = final_runner(chosen_record["params"], trial_id)
        outcome.metrics["finalist_of"] = chosen_record["number"]
        outcome.metrics["search_objectives"] = dict(chosen_record.get("objectives") or {})
        record = session.record(trial_id, chosen_record["params"], outcome, stage="final")
        ran += 1
        if on_record and record:
            on_record(record)
    return ran
