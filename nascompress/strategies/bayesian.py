"""The ``bayesian`` strategies: multi-objective TPE, or a Gaussian process, through optuna.

optuna is imported when the strategy is set up, so importing this module (and listing
strategies) stays cheap.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nascompress.strategies._base import check_int_option, startup_trials
from nascompress.strategies._optuna import (
    OptunaStrategy,
    gp_cache_from_json,
    gp_cache_to_json,
    single_torch_thread,
)
from nascompress.strategies._registry import register_strategy

if TYPE_CHECKING:
    from nascompress.spaces import SearchSpace

SAMPLERS = ("auto", "tpe", "gp")

#: The largest budget for which ``sampler="auto"`` chooses the GP. On the strategy
#: benchmarks (``bench/strategies/results-gp20.md``: seven tables, budgets 50 and 100,
#: 20 seeds) the GP found the larger front on 5 of 13 pairs (two-sided p < 0.05) and
#: the smaller on 2 (by 0.015 and 0.002 of the true front's hypervolume). Budgets beyond
#: 100 were not measured for the GP (its steps grow with the trials seen): TPE keeps
#: them. For trials of a few seconds the GP's ~1 s per step costs more than it saves.
GP_MAX_BUDGET = 100

#: The most objectives for which ``sampler="auto"`` chooses the GP. Its acquisition
#: (log expected hypervolume improvement) works on a box decomposition of the front,
#: which grows steeply with the objectives: on 2 cores, at 50-60 trials of the default
#: space with uncorrelated synthetic objectives, 1.5 s per proposal and 0.4 GB of peak
#: memory with two objectives, 3.6 s and 0.8 GB with three, 10.9 s and 4.0 GB with
#: four (``bench/strategies/gp_objectives.md``). Every strategy benchmark has three
#: objectives, so the GP's gain was measured there only; TPE takes four and more.
GP_MAX_OBJECTIVES = 3


@functools.cache
def _missing_gp_modules() -> tuple[str, ...]:
    return tuple(m for m in ("torch", "scipy") if importlib.util.find_spec(m) is None)


@register_strategy("bayesian")
class BayesianStrategy(OptunaStrategy):
    """Multi-objective Bayesian optimisation with optuna's ``TPESampler`` or ``GPSampler``.

    ``sampler="auto"`` (the default): the GP when the search's budget is known and at
    most :data:`GP_MAX_BUDGET` (100) trials and it has at most
    :data:`GP_MAX_OBJECTIVES` (3) objectives, TPE otherwise (more trials, a budget
    unknown, or more objectives). :attr:`sampler_in_use` says which; a resumed search
    keeps the sampler it started with, even when ``--trials`` moves its budget across
    the line.

    ``sampler="tpe"``: a Tree-structured Parzen Estimator. Cheap per
    proposal, fine with hundreds of trials and with many trials in parallel (through
    ``constant_liar``).

    ``sampler="gp"``: a Gaussian process with a (log) expected-hypervolume-improvement
    acquisition, constrained when there are constraints, and batch-aware for trials still
    running. It models Categorical, Int and Float dimensions, and spends far more time per
    proposal, growing with the trials seen and with the objectives (with three, on 2
    cores: about 0.2 s at 10 trials and 0.8 s at 80 on one machine, 3 s at 50-60 on a
    slower one), so it suits small budgets of expensive trials. It needs torch and scipy
    (both dependencies of nascompress). optuna logs once that ``greenlet`` is missing
    when it is not installed; the GP then optimises its acquisition sequentially, which
    is slower.

    Outcomes: ``COMPLETE`` trials carry one constraint value per constraint, so both
    samplers rank infeasible results below feasible ones. For TPE, ``INVALID`` and
    ``FAILED`` outcomes, and ``COMPLETE`` ones with a missing or non-finite objective,
    are told as failed trials, which it ignores, and ``PRUNED`` outcomes as pruned
    trials. The GP would also ignore them, and so keep proposing a region where every
    trial fails (it looks unexplored for ever); so for the GP each such outcome is told
    as a result as bad as the worst real one so far, with an extra constraint ("the
    trial ran") violated, which the GP learns to avoid. Because failed trials teach TPE
    nothing, a trial id whose proposals were rejected ``INVALID`` three times in a row
    gets its further retries drawn uniformly at random (for both samplers), so the
    space's constraints cannot trap the search.

    Repeats: a proposal with the params of an earlier ask of the search is not proposed
    again. The sampler is asked twice more; when it still repeats itself (on small
    discrete spaces TPE's model settles on one point and proposes it ask after ask), a
    never-asked neighbour of that point replaces it: one dimension moved to a nearby
    value (another choice, a step of a few grid points), else two, and so on. Only when
    no neighbour is found does a uniform draw never asked before replace it, and only
    when that fails too (a nearly exhausted space) is the repeat proposed.

    Args:
        n_startup_trials: trials sampled at random before the model takes over;
            ``None`` (the default) sizes it to the space and the budget (see
            :func:`~nascompress.strategies._base.startup_trials`): optuna's 10, at least
            one more than the dimensions searched, at most a quarter of the budget; 8
            when the budget is unknown.
        constant_liar: (TPE only) let TPE account for outstanding trials, so parallel
            asks do not all propose the same point. The GP always accounts for them.
        multivariate: (TPE only) model the dimensions jointly rather than one by one.
            Off by default, as in optuna. On the strategy benchmarks
            (``bench/strategies/results-multivariate.md``, and fresh seeds in
            ``recheck-multivariate.json``) it did better on the measured tables, reduced
            spaces of 5-9 dimensions (higher median hypervolume on most of them at 50
            trials, random search's hypervolume reached in fewer trials), but worse at
            100 trials on the surrogate of the 13-dimension default space, on both seed
            sets (two-sided p 0.021 and 0.002), where it no longer beat random search.
        sampler: ``"auto"``, ``"tpe"`` or ``"gp"``.
    """

    name = "bayesian"

    def __init__(
        self,
        *,
        n_startup_trials: int | None = None,
        constant_liar: bool = True,
        multivariate: bool = False,
        sampler: str = "auto",
    ) -> None:
        self.n_startup_trials = n_startup_trials
        self.constant_liar = constant_liar
        self.multivariate = multivariate
        self.sampler = sampler
        self._sampler_in_use = "tpe"  # chosen in _setup, where the budget is known
        self._seed = 0
        super().__init__()

    def _validate_options(self) -> None:
        check_int_option("n_startup_trials", self.n_startup_trials, 0, or_none=True)
        for option in ("constant_liar", "multivariate"):
            if not isinstance(getattr(self, option), bool):
                raise TypeError(
                    f"strategy.{option} must be true or false, but got {getattr(self, option)!r}"
                )
        if self.sampler not in SAMPLERS:
            raise ValueError(
                f"strategy.sampler must be one of {list(SAMPLERS)}, but got {self.sampler!r}"
            )
        missing = _missing_gp_modules() if self.sampler == "gp" else []
        if missing:
            raise ValueError(
                f"strategy.sampler='gp' needs {' and '.join(missing)} (optuna's "
                "GPSampler uses them), which cannot be imported; install them or use "
                "sampler='tpe'"
            )

    @property
    def sampler_in_use(self) -> str:
        """``"tpe"`` or ``"gp"``: the sampler this search runs (what ``"auto"`` chose)."""
        return self._sampler_in_use

    def sampler_for(self, budget: int | None, objectives: int) -> str:
        """The sampler a fresh search of ``budget`` trials and ``objectives`` objectives
        runs: ``sampler`` itself, or what ``"auto"`` chooses for them."""
        if self.sampler != "auto":
            return self.sampler
        # torch and scipy are dependencies of nascompress; in an environment without
        # them "auto" still runs, with TPE.
        small = (budget is not None and budget <= GP_MAX_BUDGET
                 and objectives <= GP_MAX_OBJECTIVES)
        return "gp" if small and not _missing_gp_modules() else "tpe"

    def _setup(self, space: SearchSpace, *, seed: int) -> None:
        self._seed = seed
        self._sampler_in_use = self.sampler_for(self._budget, len(self._objectives))
        super()._setup(space, seed=seed)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        saved = (state.get("options") or {}).get("sampler")
        if self.sampler == "auto" and saved in ("tpe", "gp") and saved != self._sampler_in_use:
            # "auto" resumes a search with the sampler it started with: one saved before
            # "auto" chose by budget, or with another budget, continues as it began.
            self._sampler_in_use = saved
            super()._setup(self._space, seed=self._seed)
        super().load_state_dict(state)

    def _create_sampler(self, seed: int) -> Any:
        import optuna

        startup = self.n_startup_trials
        if startup is None:
            startup = startup_trials(self._space, self._budget, default=8)
        if self._sampler_in_use == "gp":
            return optuna.samplers.GPSampler(
                seed=seed,
                n_startup_trials=startup,
                # A one-value dimension is always drawn independently; nothing to warn about.
                warn_independent_sampling=False,
            )
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=startup,
            constant_liar=self.constant_liar,
            multivariate=self.multivariate,
        )

    @property
    def _impute_failures(self) -> bool:  # type: ignore[override]
        return self._sampler_in_use == "gp"

    @property
    def _tell_repeats_their_result(self) -> bool:  # type: ignore[override]
        return self._sampler_in_use == "gp"

    def _options_state(self) -> dict[str, Any]:
        # A TPE history loaded into a GP strategy (or back) would replay without error
        # but not continue either search.
        return {"sampler": self._sampler_in_use}

    def _sampling(self) -> contextlib.AbstractContextManager[None]:
        return single_torch_thread() if self._sampler_in_use == "gp" else contextlib.nullcontext()

    def _extra_sampler_state(self, sampler: Any) -> dict[str, Any]:
        return {"gp_cache": gp_cache_to_json(sampler)} if self._sampler_in_use == "gp" else {}

    def _load_extra_state(self, sampler: Any, state: Mapping[str, Any]) -> None:
        if self._sampler_in_use == "gp" and state.get("gp_cache") is not None:
            gp_cache_from_json(sampler, state["gp_cache"])


@register_strategy("bayesian-gp")
class BayesianGPStrategy(BayesianStrategy):
    """``bayesian`` with ``sampler="gp"``: a Gaussian process, for small budgets.

    See :class:`BayesianStrategy` for the options; ``sampler`` defaults to ``"gp"``.
    """

    name = "bayesian-gp"

    def __init__(
        self,
        *,
        n_startup_trials: int | None = None,
        constant_liar: bool = True,
        multivariate: bool = False,
        sampler: str = "gp",
    ) -> None:
        super().__init__(
            n_startup_trials=n_startup_trials,
            constant_liar=constant_liar,
            multivariate=multivariate,
            sampler=sampler,
        )
