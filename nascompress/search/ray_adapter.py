"""Any :class:`~nascompress.strategies.Strategy` as a Ray Tune ``Searcher``.

Tune drives the searcher from the driver process: ``suggest`` when it wants a new trial,
``on_trial_complete`` when one ends, ``save`` / ``restore`` around experiment
checkpoints. This adapter turns those calls into ``ask`` / ``tell`` on the strategy.

Ray 2.60 notes that shaped this class:

* ``SearchGenerator.save_to_dir`` saves the wrappers (``ConcurrencyLimiter``,
  ``Repeater``) with their ``get_state`` and the innermost searcher with ``save``; it
  finds the innermost one by following ``.searcher`` attributes, so this class must not
  have an attribute of that name. ``get_state`` / ``set_state`` are implemented anyway
  (``save`` / ``restore`` are built on them).
* ``ConcurrencyLimiter.save`` / ``restore`` only forward to the wrapped searcher: its own
  set of live trials comes back only through ``Tuner.restore`` (``restore_from_dir``),
  not through a bare ``limiter.restore(path)``.
* Tune calls ``set_search_properties`` only when ``param_space`` is given; returning
  ``True`` keeps it from complaining that the searcher already has its own space.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from ray.tune.search import Searcher

from nascompress.objectives import Objective
from nascompress.pareto import TRIAL_STATES, Constraint, TrialState, is_finite_number
from nascompress.spaces import SearchSpace
from nascompress.strategies import FINISHED, Outcome, Strategy, ask_valid

_FORMAT = "nascompress.StrategySearcher"
_FORMAT_VERSION = 1

# The strategies' FINISHED must be the very string Tune checks for.
if FINISHED != Searcher.FINISHED:  # pragma: no cover - guards against a Ray change
    raise ImportError(
        f"nascompress FINISHED={FINISHED!r} differs from Ray's Searcher.FINISHED="
        f"{Searcher.FINISHED!r}"
    )


class StrategySearcher(Searcher):
    """Adapts a :class:`~nascompress.strategies.Strategy` to Ray Tune's ``Searcher``.

    Each suggestion is the flat params dict of a valid candidate (proposals rejected by
    ``space.check`` are told ``INVALID`` and re-asked, see
    :func:`~nascompress.strategies.ask_valid`). A finished trial's last result is read
    as follows: ``error=True`` or no result -> ``FAILED``; ``result["trial_state"]`` of
    ``"FAILED"`` / ``"PRUNED"`` / ``"INVALID"`` -> that state (with
    ``result["error"]``); otherwise every objective must be a finite number at
    ``result[objective.name]``, else the trial counts as ``FAILED``. A second completion
    of the same trial, and completions of trials this searcher never suggested, are
    ignored.

    Args:
        strategy: a constructed strategy; set up here unless ``set_up`` is False.
        space: the search space.
        objectives: what trials report; names and modes become Tune's metric and mode.
        seed: the strategy's seed.
        constraints: bounds on objectives that acceptable results meet; passed on to
            the strategy's ``setup`` (left out of the call when empty, so strategies
            written before constraints existed keep working without them).
        max_invalid_attempts: proposals to try per suggestion before giving up on the
            space's constraints.
        set_up: run ``strategy.setup`` here. ``False`` when the caller already set the
            strategy up with these same arguments (the search does, to validate before any
            compute): a second setup would reset it, losing a resumed search's state.
    """

    def __init__(
        self,
        strategy: Strategy,
        space: SearchSpace,
        objectives: Sequence[Objective],
        *,
        seed: int,
        constraints: Sequence[Constraint] = (),
        max_invalid_attempts: int = 200,
        set_up: bool = True,
    ) -> None:
        if not isinstance(strategy, Strategy):
            raise TypeError(f"strategy must be a Strategy, but got {strategy!r}")
        if (
            not isinstance(max_invalid_attempts, int)
            or isinstance(max_invalid_attempts, bool)
            or max_invalid_attempts < 1
        ):
            raise ValueError(
                f"max_invalid_attempts must be an integer >= 1, but got {max_invalid_attempts!r}"
            )
        objectives = tuple(objectives)
        if isinstance(constraints, str | Constraint) or not isinstance(constraints, Sequence):
            raise TypeError(
                f"constraints must be a sequence of Constraint, but got {constraints!r}"
            )
        constraints = tuple(constraints)
        if not isinstance(set_up, bool):
            raise TypeError(f"set_up must be true or false, but got {set_up!r}")
        # setup validates space, objectives, seed and constraints, so it runs before the
        # Searcher base class (which uses assert on metric/mode) sees them.
        if set_up and constraints:
            strategy.setup(space, objectives, seed=seed, constraints=constraints)
        elif set_up:
            strategy.setup(space, objectives, seed=seed)
        super().__init__(metric=[o.name for o in objectives], mode=[o.mode for o in objectives])
        self.strategy = strategy
        self.space = space
        self.objectives = objectives
        self.seed = seed
        self.constraints = constraints
        self.max_invalid_attempts = max_invalid_attempts
        self._live: dict[str, None] = {}  # suggested, not completed (ordered for saving)
        self._completed: set[str] = set()

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict, **spec: Any
    ) -> bool:
        """Accept Tune's properties but keep our own metrics, modes and space.

        The space and objectives come from the constructor; ``config`` entries (if any)
        are merged into every trial config by Tune itself.
        """
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None | str:
        """The flat params of a valid candidate, ``None`` (not now) or ``FINISHED``."""
        if trial_id in self._live or trial_id in self._completed:
            raise ValueError(f"trial_id {trial_id!r} was already suggested")
        params = ask_valid(
            self.strategy, self.space, trial_id, max_attempts=self.max_invalid_attempts
        )
        if params is None or params == FINISHED:
            return params
        self._live[trial_id] = None
        return dict(params)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        """Tell the strategy how ``trial_id`` ended (once; repeats are ignored)."""
        if trial_id not in self._live:
            return
        del self._live[trial_id]
        self._completed.add(trial_id)
        self.strategy.tell(trial_id, self.outcome_from_result(result, error=error))

    def outcome_from_result(self, result: Mapping[str, Any] | None, *, error: bool) -> Outcome:
        """The :class:`~nascompress.strategies.Outcome` a trial's last result stands for."""
        if error or result is None:
            reason = result.get("error") if result else None
            return Outcome(
                TrialState.FAILED,
                error=str(reason) if reason else (
                    "the trial raised an error" if error else "the trial reported no result"
                ),
            )
        state = result.get("trial_state") or TrialState.COMPLETE
        reason = result.get("error")
        reason = None if reason is None else str(reason)
        if state in (TrialState.FAILED, TrialState.INVALID):
            return Outcome(state, error=reason)
        if state not in TRIAL_STATES:
            return Outcome(
                TrialState.FAILED,
                error=f"trial_state must be one of {list(TRIAL_STATES)}, but got {state!r}",
            )
        values: dict[str, float] = {}
        problems = []
        for objective in self.objectives:
            value = _as_finite_float(result.get(objective.name))
            if value is None:
                problems.append(f"{objective.name}={result.get(objective.name)!r}")
            else:
                values[objective.name] = value
        if state == TrialState.PRUNED:
            return Outcome(TrialState.PRUNED, objectives=values, error=reason)
        if problems:
            return Outcome(
                TrialState.FAILED,
                objectives=values,
                error=f"objectives missing or not finite numbers: {', '.join(problems)}",
            )
        return Outcome(TrialState.COMPLETE, objectives=values)

    def get_state(self) -> dict[str, Any]:
        """JSON-able state: the strategy's state dict plus the live and completed ids."""
        return {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "strategy": self.strategy.name or type(self.strategy).__name__,
            "objectives": [o.to_dict() for o in self.objectives],
            "constraints": [c.to_dict() for c in self.constraints],
            "strategy_state": self.strategy.state_dict(),
            "live": list(self._live),
            "completed": sorted(self._completed),
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`get_state` output onto a freshly constructed searcher."""
        if state.get("format") != _FORMAT or state.get("version") != _FORMAT_VERSION:
            raise ValueError(
                f"searcher state must have format={_FORMAT!r} and version={_FORMAT_VERSION}, "
                f"but got format={state.get('format')!r}, version={state.get('version')!r}"
            )
        if self._live or self._completed:
            raise RuntimeError(
                "restore needs a freshly constructed StrategySearcher, but this one has "
                f"already suggested {len(self._live) + len(self._completed)} trial(s)"
            )
        name = self.strategy.name or type(self.strategy).__name__
        if state["strategy"] != name:
            raise ValueError(
                f"the checkpoint was saved by strategy {state['strategy']!r}, but this "
                f"searcher runs strategy {name!r}"
            )
        saved = [Objective.from_dict(o) for o in state["objectives"]]
        if [(o.name, o.mode) for o in saved] != [(o.name, o.mode) for o in self.objectives]:
            raise ValueError(
                f"the checkpoint was saved for objectives {[(o.name, o.mode) for o in saved]}, "
                f"but this searcher has {[(o.name, o.mode) for o in self.objectives]}"
            )
        # Checkpoints written before constraints were recorded have none.
        saved_constraints = [Constraint.from_dict(c) for c in state.get("constraints", [])]
        if saved_constraints != list(self.constraints):
            raise ValueError(
                f"the checkpoint was saved with constraints {[str(c) for c in saved_constraints]}"
                f", but this searcher has {[str(c) for c in self.constraints]}"
            )
        self.strategy.load_state_dict(state["strategy_state"])
        self._live = dict.fromkeys(state["live"])
        self._completed = set(state["completed"])

    def save(self, checkpoint_path: str) -> None:
        """Write :meth:`get_state` as JSON to ``checkpoint_path`` (atomically)."""
        text = json.dumps(self.get_state(), allow_nan=False)
        directory = os.path.dirname(os.path.abspath(checkpoint_path))
        fd, tmp = tempfile.mkstemp(prefix=".searcher-", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, checkpoint_path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def restore(self, checkpoint_path: str) -> None:
        """Load a file written by :meth:`save` into this freshly constructed searcher."""
        with open(checkpoint_path, encoding="utf-8") as handle:
            self.set_state(json.load(handle))


def _as_finite_float(value: Any) -> float | None:
    # float(): a numpy scalar (np.float32 is no float subclass) is told as a plain float.
    return float(value) if is_finite_number(value) else None
