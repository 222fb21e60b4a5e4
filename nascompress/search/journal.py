"""Every finished trial, also as an Optuna study in a journal file, for optuna-dashboard.

``trials.jsonl`` stays the source of truth; ``optuna.journal`` in the run folder is a
view of it that ``optuna-dashboard`` reads while the search runs (the live Pareto front,
history and trial table): ``nascompress dashboard RUN``. One Optuna study per run, its
directions from the objectives; one Optuna trial per record, added as a finished trial:

* params with distributions built from the space's dimensions (the mapping the Optuna
  strategies use), so the dashboard's parameter plots know each range;
* COMPLETE records with their objective values in objective order, PRUNED and FAILED
  records as Optuna's PRUNED and FAIL;
* the record's number, trial id, error and JSON-able metrics as user attributes; the
  constraints' violations as Optuna constraints (feasible when all are <= 0).

A resumed search continues the same study: records already in the journal (by trial id)
are not added again, and records the journal missed (a crash between the two writes)
are added on start.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from nascompress.objectives import Objective
from nascompress.pareto import Constraint, constraint_violation, is_finite_number

JOURNAL_FILE = "optuna.journal"
#: User attribute that names the record a journal trial came from.
TRIAL_ID_ATTR = "trial_id"


def journal_storage(path: Path):
    """Optuna's ``JournalStorage`` over the journal file at ``path``."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(path)))


def _json_scalar(value: Any) -> bool:
    if isinstance(value, bool | str) or value is None:
        return True
    return isinstance(value, int | float) and math.isfinite(value)


class JournalWriter:
    """Adds each new record to the run's Optuna study (a session listener).

    Args:
        run_dir: the run folder; the journal is ``run_dir / JOURNAL_FILE``.
        study_name: the study's name (the run's name).
        objectives: the objectives, in order: they give the study's directions.
        dimensions: the space's dimensions (``SearchSpace.dimensions()``).
        constraints: the run's constraints.
        records: records already on disk (resume): those missing from the journal are
            added now.
    """

    name = "optuna journal"

    def __init__(
        self,
        run_dir: Path,
        *,
        study_name: str,
        objectives: Sequence[Objective],
        dimensions: Mapping[str, Any],
        constraints: Sequence[Constraint] = (),
        records: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        import optuna

        from nascompress.strategies._optuna import _to_distribution

        self.path = Path(run_dir) / JOURNAL_FILE
        self.objectives = list(objectives)
        self.constraints = list(constraints)
        self._distributions: dict[str, Any] = {}
        self._index_coded: dict[str, list[Any]] = {}
        for key, dimension in dimensions.items():
            try:
                distribution, coded = _to_distribution(key, dimension, "the optuna journal")
            except TypeError:  # a dimension type Optuna has no distribution for
                continue
            self._distributions[key] = distribution
            if coded:
                self._index_coded[key] = list(dimension.choices)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(
            storage=journal_storage(self.path), study_name=study_name, load_if_exists=True,
            directions=["maximize" if o.mode == "max" else "minimize" for o in self.objectives],
        )
        with warnings.catch_warnings():  # experimental since optuna 3.2, still there
            warnings.simplefilter("ignore")
            self.study.set_metric_names([o.name for o in self.objectives])
        self._written = {t.user_attrs.get(TRIAL_ID_ATTR)
                         for t in self.study.get_trials(deepcopy=False)}
        for record in records:
            self(record)

    def __call__(self, record: Mapping[str, Any]) -> None:
        """Add ``record`` unless the journal has it already."""
        if record.get("trial_id") in self._written:
            return
        self.study.add_trial(self.frozen_trial(record))
        self._written.add(record.get("trial_id"))

    def frozen_trial(self, record: Mapping[str, Any]):
        """The Optuna trial of one record."""
        from optuna.trial import TrialState, create_trial

        params, distributions, attrs = {}, {}, {}
        for key, value in (record.get("params") or {}).items():
            distribution = self._distributions.get(key)
            internal = self._to_optuna(key, value)
            if distribution is not None and internal is not None and _contains(
                    distribution, internal):
                params[key], distributions[key] = internal, distribution
            elif _json_scalar(value):  # outside the space (or not Optuna-able): kept
                attrs[f"param:{key}"] = value
        attrs.update({TRIAL_ID_ATTR: record.get("trial_id"), "number": record.get("number")})
        if record.get("error"):
            attrs["error"] = str(record["error"])[:2000]
        for key, value in (record.get("metrics") or {}).items():
            if _json_scalar(value) and key not in attrs:
                attrs[key] = value
        state = {"COMPLETE": TrialState.COMPLETE, "PRUNED": TrialState.PRUNED}.get(
            record.get("state"), TrialState.FAIL)
        values = None
        if state == TrialState.COMPLETE:
            objectives = record.get("objectives") or {}
            values = [objectives.get(o.name) for o in self.objectives]
            if not all(is_finite_number(v) for v in values):
                state, values = TrialState.FAIL, None
                attrs["error"] = "objective values missing or not finite"
            else:
                values = [float(v) for v in values]
        constraints = None
        if self.constraints and state == TrialState.COMPLETE:
            constraints = {}
            for constraint in self.constraints:
                violation = constraint_violation(record, [constraint])
                constraints[str(constraint)] = (float(violation) if math.isfinite(violation)
                                                else 1.0)
        trial = create_trial(state=state, values=values, params=params,
                             distributions=distributions, user_attrs=attrs,
                             constraints=constraints)
        # The trial's own times (the dashboard's timeline), not the moment of recording.
        started, finished = record.get("started_at"), record.get("finished_at")
        if is_finite_number(started) and is_finite_number(finished) and started <= finished:
            trial.datetime_start = datetime.fromtimestamp(started)
            trial.datetime_complete = datetime.fromtimestamp(finished)
        return trial

    def _to_optuna(self, key: str, value: Any) -> Any:
        choices = self._index_coded.get(key)
        if choices is None:
            return value
        return next((i for i, c in enumerate(choices) if type(c) is type(value) and c == value),
                    None)


def _contains(distribution, value) -> bool:
    try:
        return bool(distribution._contains(distribution.to_internal_repr(value)))
    except (TypeError, ValueError):
        return False


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The journal's trials as plain dicts (state, values, params, user attrs): for tests
    and scripts that check what the dashboard will show."""
    import optuna

    storage = journal_storage(Path(path))
    out = []
    for summary in optuna.study.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        for trial in study.get_trials(deepcopy=False):
            out.append({"study": summary.study_name, "state": trial.state.name,
                        "values": trial.values, "params": dict(trial.params),
                        "user_attrs": json.loads(json.dumps(trial.user_attrs)),
                        "directions": [d.name for d in study.directions]})
    return out


class DashboardDependencyError(RuntimeError):
    """optuna-dashboard (the ``dashboard`` extra) is not installed."""


def serve_dashboard(run_dir: Path, *, port: int = 8080, stop_after_s: float | None = None,
                    ready: Callable[[str], None] | None = None) -> None:
    """Serve optuna-dashboard for the run's journal on 127.0.0.1 only, until interrupted
    (or for ``stop_after_s`` seconds). ``ready(url)`` is called once it listens.

    Raises:
        DashboardDependencyError: optuna-dashboard is not installed.
        FileNotFoundError: the run has no journal (a run recorded before journals).
        OSError: the port is taken.
    """
    try:
        import optuna_dashboard
    except ImportError:
        raise DashboardDependencyError(
            "optuna-dashboard is not installed; install the 'dashboard' extra "
            "(pip install 'nascompress[dashboard]')") from None
    import threading
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    path = Path(run_dir) / JOURNAL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {JOURNAL_FILE} in {run_dir}")

    class _Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class _Quiet(WSGIRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            pass

    app = optuna_dashboard.wsgi(journal_storage(path))
    # Loopback only: the dashboard has no authentication.
    server = make_server("127.0.0.1", port, app, server_class=_Server, handler_class=_Quiet)
    timer = None
    if stop_after_s is not None:
        timer = threading.Timer(stop_after_s, server.shutdown)
        timer.daemon = True
        timer.start()
    if ready is not None:
        ready(f"http://127.0.0.1:{server.server_port}/")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if timer is not None:
            timer.cancel()
        server.server_close()
