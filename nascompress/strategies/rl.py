"""The ``rl`` strategy: a policy-gradient controller over the search space.

The controller is a distribution over whole proposals. Each dimension is turned into a
list of discrete actions (:class:`_Actions`); the controller samples one action per
dimension, the action becomes a value, and the outcome of the trial becomes a reward that
moves the controller towards the actions of good trials (REINFORCE with a baseline, in
the clipped form of PPO so that stale samples from parallel trials cannot take large
steps).

torch is imported in :meth:`RLStrategy.setup`, so importing this module (and listing
strategies) stays cheap.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nascompress.pareto import TrialState, hypervolume, is_finite_number, reference_point
from nascompress.spaces import Categorical, Dimension, Float, Int
from nascompress.strategies._base import (
    FINISHED,
    Outcome,
    ValidatingStrategy,
    check_int_option,
    check_state_header,
    constraint_violations,
    params_fingerprint,
    random_state_from_json,
    random_state_to_json,
)
from nascompress.strategies._neighbours import unseen_neighbour
from nascompress.strategies._registry import register_strategy
from nascompress.strategies._screening import (
    MODEL_RESULTS,
    distinct_unasked,
    most_promising,
)

if TYPE_CHECKING:
    import torch

    from nascompress.spaces import SearchSpace

#: 2 added "asked"; 3 keeps the recent results ("results", for the screening model).
#: Versions 1 and 2 still load.
_STATE_VERSION = 3

#: Policy samples per ask before a repeat of an earlier proposal is replaced by a
#: never-asked neighbour. On the tabular benchmarks (bench/strategies) 20 of 100
#: proposals repeated an earlier one without this check; a policy that has converged on
#: a few points repeats them anyway (2.4 proposals per search at budget 300 on
#: digits-7d-3x, mean of 5 seeds, before neighbours replaced them).
_DISTINCT_TRIES = 50
#: Policy samples screened per ask by default (see RLStrategy), as ``evolution`` and
#: ``nsga2`` screen four children.
SCREENED_SAMPLES = 4
#: Results the model must have learnt from before samples are screened. Screening from
#: 10 results was lower than unscreened in most cells at 50 evaluations; from 20 it was
#: higher in most (bench/strategies/rl_screening.md).
SCREEN_FROM_RESULTS = 20
#: Results after which samples are no longer screened: the model helps while results
#: are few. Screening all the way to 300 trials ended lower than the plain policy on the
#: modelled surrogate (median HV 0.950 against 0.960 over 60 seeds, two-sided p 0.015);
#: stopping at the 100th result left no difference significant at 300 on the three
#: benchmarks run there (lowest p 0.059), though its medians stay a little lower
#: (bench/strategies/rl_screening.md). Up to 100 trials the two are the same search.
SCREEN_UNTIL_RESULTS = 100
REWARDS = ("hv", "mnas")
CONTROLLERS = ("independent", "lstm")
_ADVANTAGE_CLIP = 3.0  # in baseline standard deviations; one lucky trial must not dominate
_STD_FLOOR = 1e-12
#: Adam's learning rate by controller when ``lr`` is not set. The independent
#: controller's was 0.05, at which a 100-evaluation search spent half its budget with a
#: nearly uniform policy. At 0.2 the median HV was higher in 34 of 36 benchmark, budget
#: (50 to 1000) and seed-set cells, significantly in 12, lower in none significantly;
#: random search's final HV at 100 was reached after 42-50 evaluations (52-62 at 0.05) on
#: the seeds it was chosen on, 38-64 on fresh ones (bench/strategies/rl_lr.md).
_DEFAULT_LR = {"independent": 0.2, "lstm": 0.005}
#: What ``lr=None`` meant for states saved before they recorded their rate.
_DEFAULT_LR_BEFORE_RECORDED = {"independent": 0.05, "lstm": 0.005}


@register_strategy("rl")
class RLStrategy(ValidatingStrategy):
    """Policy-gradient controller (REINFORCE / PPO-clip) with a multi-objective reward.

    **Policy.** Every dimension becomes a categorical distribution with learnable logits:
    a :class:`~nascompress.spaces.Categorical` over its choices; an
    :class:`~nascompress.spaces.Int` or a stepped :class:`~nascompress.spaces.Float` over
    its grid when that has at most ``max_grid`` values, otherwise over ``bins`` contiguous
    bins of the grid (a value is then drawn uniformly inside the chosen bin); a continuous
    ``Float`` over ``bins`` equal-width bins (log-width when ``log=True``), the value drawn
    uniformly (log-uniformly) inside the bin. With ``controller="independent"`` the
    dimensions are independent (one logit vector each, starting uniform); with
    ``controller="lstm"`` a small LSTM samples them one after another, each conditioned on
    the earlier choices (the NAS controller of Zoph & Le), at about ten times the cost per
    step; on the image-cnn benchmark (``bench/strategies``) it did not search better.

    **Reward.** ``reward="hv"`` (default): the new point's exclusive hypervolume
    contribution with respect to the feasible points seen so far, bounded by a
    reference point (``reference`` when given, else
    :func:`~nascompress.pareto.reference_point` over the COMPLETE points seen,
    the new one included), raised to the power ``1 / n_objectives`` so that it has the
    units of a distance. It is computed in a normalised space where each objective's best
    seen value is 0 and its worst seen value 1, so that every objective's differences
    count in proportion to how much it actually varies. A point that is weakly dominated
    contributes nothing; so that it still teaches the policy something, it gets minus its
    shortfall: the largest, over the points dominating it, of the smallest per-objective
    improvement it would need to escape that point. With one objective this is simply
    the improvement over the best value (negative when worse).

    ``reward="mnas"``: MnasNet's ``quality * prod((value / target[name]) ** w)``, where
    ``quality`` is the first ``max`` objective (or the one named by ``quality``) and
    ``target`` maps ``min`` objectives (e.g. ``{"latency_ms": 2.0}``) to their targets.

    **Baseline and bad outcomes.** Rewards are compared with an exponential moving
    average (decay ``baseline_decay``) and divided by the moving standard deviation; the
    resulting advantage is clipped to +-3. Trials that produce no reward get a fixed
    advantage instead, i.e. a reward that many standard deviations below the baseline:
    ``FAILED`` and ``PRUNED`` outcomes and ``COMPLETE`` ones with a missing or non-finite
    objective get ``-failure_penalty``; ``INVALID`` proposals (rejected by the space's
    joint constraints) get ``-invalid_penalty``, kept milder because the independent
    controller cannot express a joint constraint and would otherwise learn to avoid
    every value that ever took part in one. Points that violate ``constraints`` (passed
    to :meth:`setup`, each bounding an objective) get ``-(3 + v)``, with ``v`` their
    summed relative violation (see :func:`~nascompress.strategies.constraint_violations`)
    capped at 1: below every feasible point's advantage, and less so the closer they come
    to feasibility, as the :class:`Strategy` contract asks. They are kept off the front
    used for the reward.

    **Repeats.** A sample whose params repeat an earlier proposal is drawn again from
    the policy, up to 50 times, so that no point is trained twice. When a policy that has
    converged on a few points still repeats one, a never-asked neighbour of the repeat
    (one dimension moved to a nearby value, else two, and so on) is proposed instead, with
    the actions that give its values and their log-probability under the current policy;
    only when no neighbour is found is the repeat proposed.

    **Screening** (``screened_samples``, 4 by default): from the 20th result to the
    100th, each ask draws that many distinct, never-asked samples from the policy and
    proposes the one that a model of the results seen so far (the last 500) predicts to lie furthest
    beyond the front found so far
    (:func:`~nascompress.strategies._screening.most_promising`, as ``evolution`` and
    ``nsga2`` screen their children). The policy still decides where to look; the model
    spends milliseconds per ask instead of trials on samples the results already say
    are dominated. The proposal keeps the log-probability it was sampled with, so the
    update's probability ratio (clipped, as for stale samples) stays honest.
    ``screened_samples=1`` is the plain policy.

    **Updates.** The action indices and their log-probability are kept from ask to tell,
    so several asks may be in flight. After every ``batch_size`` tells the policy takes
    ``epochs`` Adam steps on the PPO-clip objective (ratio of new to sampling-time
    probability clipped to ``1 +- clip``) plus ``entropy_weight`` times the policy's
    entropy. With ``batch_size=1, epochs=1`` and no trial in flight this is plain
    REINFORCE. The defaults were chosen on the image-cnn benchmark with seeds other than
    the ones it reports, and checked against the shipped conformance suite.

    Args:
        reward: ``"hv"`` or ``"mnas"``.
        reference: fixed hypervolume reference point (objective name -> value) for
            ``reward="hv"``; ``None`` derives it from the points seen so far.
        target: ``reward="mnas"`` targets, ``min`` objective name -> positive value.
        w: ``reward="mnas"`` exponent (negative: exceeding a target lowers the reward).
        quality: ``reward="mnas"`` objective to reward; default the first ``max`` one.
        controller: ``"independent"`` or ``"lstm"``.
        hidden_size: LSTM state size (``controller="lstm"``).
        lr: Adam learning rate; ``None`` picks 0.2 for the independent controller and
            0.005 for the LSTM (Adam moves every weight by about ``lr`` per step, and the
            LSTM's many weights add up: at 0.05 it turns deterministic in a dozen steps).
            A resumed search with ``lr=None`` keeps the rate its state was saved with.
        entropy_weight: weight of the entropy bonus (keeps the policy exploring).
        baseline_decay: decay of the reward moving average, in ``[0, 1)``.
        batch_size: tells collected per policy update.
        epochs: Adam steps per collected batch.
        clip: PPO clipping range of the probability ratio.
        failure_penalty: advantage subtracted for failed / pruned / non-finite trials.
        invalid_penalty: advantage subtracted for proposals the space rejects.
        bins: number of bins for large or continuous numeric dimensions.
        max_grid: largest grid that gets one action per value.
        max_trials: return :data:`~nascompress.strategies.FINISHED` after this many
            proposals (proposals told ``INVALID`` do not count); ``None`` for no limit.
        screened_samples: policy samples drawn per ask from the 20th result to the
            100th, of which the model's pick is proposed (see above); at least 1, which
            turns screening off.
    """

    name = "rl"

    def __init__(
        self,
        *,
        reward: str = "hv",
        reference: Mapping[str, float] | None = None,
        target: Mapping[str, float] | None = None,
        w: float = -0.07,
        quality: str | None = None,
        controller: str = "independent",
        hidden_size: int = 32,
        lr: float | None = None,
        entropy_weight: float = 0.05,
        baseline_decay: float = 0.9,
        batch_size: int = 2,
        epochs: int = 2,
        clip: float = 0.2,
        failure_penalty: float = 1.0,
        invalid_penalty: float = 0.5,
        bins: int = 16,
        max_grid: int = 32,
        max_trials: int | None = None,
        screened_samples: int = SCREENED_SAMPLES,
    ) -> None:
        self.reward = reward
        self.reference = reference
        self.target = target
        self.w = w
        self.quality = quality
        self.controller = controller
        self.hidden_size = hidden_size
        self.lr = lr
        self.entropy_weight = entropy_weight
        self.baseline_decay = baseline_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.clip = clip
        self.failure_penalty = failure_penalty
        self.invalid_penalty = invalid_penalty
        self.bins = bins
        self.max_grid = max_grid
        self.max_trials = max_trials
        self.screened_samples = screened_samples
        self._policy: _Policy | None = None

    # ------------------------------------------------------------------ set-up

    def _setup(self, space: SearchSpace, *, seed: int) -> None:
        self._validate_options()
        import torch

        self._torch = torch
        self._keys = list(space.dimensions())
        self._dimensions = dict(space.dimensions())
        self._actions = [
            _Actions.build(key, dim, bins=self.bins, max_grid=self.max_grid)
            for key, dim in space.dimensions().items()
        ]
        sizes = [a.n for a in self._actions]
        generator = torch.Generator().manual_seed(seed)
        if self.controller == "lstm":
            self._policy = _LSTMPolicy(torch, sizes, self.hidden_size, generator)
        else:
            self._policy = _IndependentPolicy(torch, sizes)
        self._adam = _Adam(torch, self._policy.parameters(), lr=self._lr)
        self._rng = random.Random(seed)
        self._n_counted = 0
        self._pending: dict[str, dict[str, Any]] = {}  # ordered, so state_dict is stable
        self._batch: list[dict[str, Any]] = []
        self._baseline = {"n": 0, "mean": 0.0, "n_var": 0, "var": 0.0}
        self._seen: list[list[float]] = []  # objective vectors of good points, in order
        self._feasible: list[bool] = []
        self._asked: set[str] = set()  # fingerprints of every proposal so far
        # The last MODEL_RESULTS good results (params and objectives), for screening.
        self._results: list[dict[str, Any]] = []
        self._summarise()

    def _validate_options(self) -> None:
        if self.reward not in REWARDS:
            raise ValueError(f"strategy.reward must be one of {list(REWARDS)}, but got "
                             f"{self.reward!r}")
        if self.controller not in CONTROLLERS:
            raise ValueError(f"strategy.controller must be one of {list(CONTROLLERS)}, but "
                             f"got {self.controller!r}")
        check_int_option("hidden_size", self.hidden_size, 1)
        check_int_option("batch_size", self.batch_size, 1)
        check_int_option("epochs", self.epochs, 1)
        check_int_option("bins", self.bins, 1)
        check_int_option("max_grid", self.max_grid, 1)
        check_int_option("screened_samples", self.screened_samples, 1)
        if self.max_trials is not None:
            check_int_option("max_trials", self.max_trials, 1, or_none=True)
        if self.lr is not None:
            _check_number("lr", self.lr, low=0.0, low_open=True)
        self._lr = self.lr if self.lr is not None else _DEFAULT_LR[self.controller]
        _check_number("entropy_weight", self.entropy_weight, low=0.0)
        _check_number("baseline_decay", self.baseline_decay, low=0.0, high=1.0, high_open=True)
        _check_number("clip", self.clip, low=0.0, low_open=True)
        for option in ("failure_penalty", "invalid_penalty"):
            _check_number(option, getattr(self, option), low=0.0)
        names = {o.name: o for o in self._objectives}
        if self.reference is not None:
            if not isinstance(self.reference, Mapping) or set(self.reference) != set(names):
                raise ValueError(
                    f"strategy.reference must map every objective {sorted(names)} to a "
                    f"number, but got {self.reference!r}"
                )
            for key, value in self.reference.items():
                _check_number(f"reference.{key}", value)
        if self.reward == "mnas":
            _check_number("w", self.w)
            quality = self.quality
            if quality is None:
                quality = next((o.name for o in self._objectives if o.mode == "max"), None)
                if quality is None:
                    raise ValueError(
                        "strategy.reward='mnas' needs a 'max' objective to reward, but the "
                        f"objectives are {sorted(names)}; name one with strategy.quality"
                    )
            if quality not in names or names[quality].mode != "max":
                raise ValueError(
                    f"strategy.quality must be a 'max' objective among "
                    f"{sorted(n for n, o in names.items() if o.mode == 'max')}, but got "
                    f"{quality!r}"
                )
            self._quality = quality
            target = self.target or {}
            if not isinstance(target, Mapping):
                raise TypeError(f"strategy.target must be a mapping of objective -> value, "
                                f"but got {target!r}")
            for key, value in target.items():
                if key not in names or names[key].mode != "min" or key == quality:
                    raise ValueError(
                        f"strategy.target keys must be 'min' objectives among "
                        f"{sorted(n for n, o in names.items() if o.mode == 'min')}, but got "
                        f"{key!r}"
                    )
                _check_number(f"target.{key}", value, low=0.0, low_open=True)
        elif self.target is not None or self.quality is not None:
            raise ValueError(
                f"strategy.target and strategy.quality only apply to reward='mnas', but "
                f"reward={self.reward!r}"
            )

    def _require_policy(self) -> _Policy:
        if self._policy is None:
            raise RuntimeError("RLStrategy.setup(...) must be called before use")
        return self._policy

    # ------------------------------------------------------------------ ask / tell

    def ask(self, trial_id: str) -> dict[str, Any] | str:
        policy = self._require_policy()
        if trial_id in self._pending:
            raise ValueError(f"trial_id {trial_id!r} was asked and not told yet")
        if self.max_trials is not None and self._n_counted >= self.max_trials:
            return FINISHED
        screening = SCREEN_FROM_RESULTS <= len(self._seen) < SCREEN_UNTIL_RESULTS
        wanted = self.screened_samples if screening else 1

        def draw() -> tuple[str, tuple[list[int], float, dict[str, Any]]]:
            actions, log_prob = policy.sample(self._rng)
            params = {
                key: spec.value(index, self._rng)
                for key, spec, index in zip(self._keys, self._actions, actions, strict=True)
            }
            return params_fingerprint(params), (actions, log_prob, params)

        samples, last = distinct_unasked(draw, self._asked, wanted, _DISTINCT_TRIES)
        if samples:
            pick = 0 if len(samples) == 1 else most_promising(
                [params for _, (_, _, params) in samples], self._results,
                self._dimensions, self._objectives, self._constraints,
                seed=self._rng.randrange(2**31))
            fingerprint, (actions, log_prob, params) = samples[pick]
        else:  # every sample repeated an earlier proposal
            fingerprint, (actions, log_prob, params) = last
            neighbour = self._unseen_neighbour(params)
            if neighbour is not None:
                params = neighbour
                fingerprint = params_fingerprint(params)
                actions = [spec.action_of(params[key])
                           for key, spec in zip(self._keys, self._actions, strict=True)]
                log_prob = policy.sample_log_prob(actions)
        self._asked.add(fingerprint)
        self._pending[trial_id] = {"actions": actions, "log_prob": log_prob, "params": params}
        self._n_counted += 1
        return dict(params)

    def _unseen_neighbour(self, params: dict[str, Any]) -> dict[str, Any] | None:
        return unseen_neighbour(self._dimensions, params, self._asked, self._rng)

    def tell(self, trial_id: str, outcome: Outcome) -> None:
        self._require_policy()
        if not isinstance(outcome, Outcome):
            raise TypeError(f"outcome must be an Outcome, but got {outcome!r}")
        sample = self._pending.pop(trial_id, None)
        if sample is None:
            return
        if outcome.state == TrialState.INVALID:
            self._n_counted -= 1  # never run, so it must not use up max_trials
            advantage = -float(self.invalid_penalty)
        elif not outcome.is_good(self._objectives):
            advantage = -float(self.failure_penalty)
        else:
            vector = [float(outcome.objectives[o.name]) for o in self._objectives]
            violation = self._violation(outcome.objectives)
            self._results.append({"params": sample["params"], "objectives": {
                o.name: v for o, v in zip(self._objectives, vector, strict=True)}})
            del self._results[:-MODEL_RESULTS]
            if violation is None:
                advantage = self._advantage(self._reward(vector))
            else:
                # Below every feasible advantage (those are clipped at -3), and the
                # smaller the violation the less so, as the Strategy contract asks.
                advantage = -(_ADVANTAGE_CLIP + min(1.0, violation))
            self._remember(vector, feasible=violation is None)
        self._batch.append({"actions": sample["actions"], "log_prob": sample["log_prob"],
                            "advantage": advantage})
        if len(self._batch) >= self.batch_size:
            self._update()

    def _violation(self, values: Mapping[str, Any]) -> float | None:
        """Summed relative violation of the constraints, or ``None`` when all hold."""
        total = sum(constraint_violations(values, self._constraints))
        return total if total > 0 else None

    # ------------------------------------------------------------------ reward

    def _reward(self, vector: list[float]) -> float:
        if self.reward == "mnas":
            values = dict(zip((o.name for o in self._objectives), vector, strict=True))
            reward = values[self._quality]
            for key, target in (self.target or {}).items():
                reward *= (max(values[key], 1e-12) / float(target)) ** float(self.w)
            return reward
        return self._hv_reward(vector)

    def _summarise(self) -> None:
        """Rebuild what the reward needs from ``_seen`` (after setup or a load)."""
        seen, feasible = self._seen, self._feasible
        self._seen, self._feasible = [], []
        # Per objective: smallest and largest raw value of every good point (they decide
        # reference_point), the best and worst minimised value of the feasible ones (the
        # normalisation), and the feasible points no other one weakly dominates. The
        # reward needs nothing else, so a tell costs O(front), not O(trials).
        self._raw_low: list[float] = []
        self._raw_high: list[float] = []
        self._ideal: list[float] = []
        self._nadir: list[float] = []
        self._front: list[list[float]] = []
        for vector, ok in zip(seen, feasible, strict=True):
            self._remember(vector, feasible=ok)

    def _remember(self, vector: list[float], *, feasible: bool) -> None:
        self._seen.append(vector)
        self._feasible.append(feasible)
        if not self._raw_low:
            self._raw_low, self._raw_high = list(vector), list(vector)
        else:
            self._raw_low = [min(a, b) for a, b in zip(self._raw_low, vector, strict=True)]
            self._raw_high = [max(a, b) for a, b in zip(self._raw_high, vector, strict=True)]
        if not feasible:
            return
        point = [o.as_minimised(v) for o, v in zip(self._objectives, vector, strict=True)]
        if not self._ideal:
            self._ideal, self._nadir = list(point), list(point)
        else:
            self._ideal = [min(a, b) for a, b in zip(self._ideal, point, strict=True)]
            self._nadir = [max(a, b) for a, b in zip(self._nadir, point, strict=True)]
        if any(all(q <= p for q, p in zip(other, point, strict=True)) for other in self._front):
            return  # weakly dominated: changes neither the front nor any reward
        self._front = [
            other for other in self._front
            if not all(p <= q for p, q in zip(point, other, strict=True))
        ]
        self._front.append(point)

    def _hv_reward(self, vector: list[float]) -> float:
        objectives = self._objectives
        minimised = [o.as_minimised(v) for o, v in zip(objectives, vector, strict=True)]
        if self.reference is not None:
            ref_values = dict(self.reference)
        else:
            # reference_point depends only on each objective's extreme values, so the
            # running extremes stand in for every point seen.
            names = [o.name for o in objectives]
            ref_values = reference_point(
                [{"state": TrialState.COMPLETE, "objectives": dict(zip(names, v, strict=True))}
                 for v in (self._raw_low or vector, self._raw_high or vector, vector)],
                objectives,
            )
        ref = [o.as_minimised(float(ref_values[o.name])) for o in objectives]
        previous = self._front
        ideal = [min(a, b) for a, b in zip(self._ideal or minimised, minimised, strict=True)]
        worst = [max(a, b) for a, b in zip(self._nadir or minimised, minimised, strict=True)]
        # Scaled by the spread of the values seen, not by the distance to the reference:
        # accuracy's reference is 0 while the values seen span a few points, so scaling
        # by the reference would make accuracy gains all but invisible to the reward
        # (measured: clearly weaker search on the image-cnn benchmark).
        scale = [w - lo if w - lo > 0 else (r - lo if r - lo > 0 else 1.0)
                 for w, lo, r in zip(worst, ideal, ref, strict=True)]

        def normalise(point: Sequence[float]) -> list[float]:
            return [(v - lo) / s for v, lo, s in zip(point, ideal, scale, strict=True)]

        point = normalise(minimised)
        bound = normalise(ref)
        others = [normalise(p) for p in previous]
        shortfall = None
        for other in others:
            if all(o <= p for o, p in zip(other, point, strict=True)):
                gap = min(p - o for o, p in zip(other, point, strict=True))
                shortfall = gap if shortfall is None else max(shortfall, gap)
        if shortfall is not None:
            return -shortfall
        if any(p >= b for p, b in zip(point, bound, strict=True)):
            # Outside a fixed reference: no volume; how far out is the signal.
            return -max(p - b for p, b in zip(point, bound, strict=True))
        own = math.prod(b - p for p, b in zip(point, bound, strict=True))
        # Exclusive contribution: own box minus what the others already cover inside it.
        clipped = [[max(o, p) for o, p in zip(other, point, strict=True)] for other in others]
        clipped = [c for c in clipped if all(v < b for v, b in zip(c, bound, strict=True))]
        contribution = max(0.0, own - hypervolume(clipped, bound)) if clipped else own
        return contribution ** (1.0 / len(point))

    def _advantage(self, reward: float) -> float:
        stats = self._baseline
        decay = float(self.baseline_decay)
        advantage = 0.0
        if stats["n"] >= 1 and stats["n_var"] >= 1:
            mean = stats["mean"] / (1.0 - decay ** stats["n"])
            std = math.sqrt(stats["var"] / (1.0 - decay ** stats["n_var"]))
            advantage = (reward - mean) / max(std, _STD_FLOOR)
            advantage = max(-_ADVANTAGE_CLIP, min(_ADVANTAGE_CLIP, advantage))
        if stats["n"] >= 1:
            mean = stats["mean"] / (1.0 - decay ** stats["n"])
            stats["var"] = decay * stats["var"] + (1.0 - decay) * (reward - mean) ** 2
            stats["n_var"] += 1
        stats["mean"] = decay * stats["mean"] + (1.0 - decay) * reward
        stats["n"] += 1
        return advantage

    # ------------------------------------------------------------------ update

    def _update(self) -> None:
        torch = self._torch
        policy = self._require_policy()
        batch, self._batch = self._batch, []
        actions = [item["actions"] for item in batch]
        old = torch.tensor([item["log_prob"] for item in batch], dtype=torch.float64)
        advantage = torch.tensor([item["advantage"] for item in batch], dtype=torch.float64)
        for _ in range(int(self.epochs)):
            log_prob, entropy = policy.log_prob(actions)
            ratio = torch.exp(log_prob - old)
            surrogate = torch.minimum(
                ratio * advantage,
                torch.clamp(ratio, 1.0 - self.clip, 1.0 + self.clip) * advantage,
            )
            loss = -surrogate.mean() - float(self.entropy_weight) * entropy.mean()
            self._adam.step(loss)

    # ------------------------------------------------------------------ introspection

    def probabilities(self) -> dict[str, list[tuple[Any, float]]]:
        """The policy's marginal probability of every action, per dimension.

        An action is a value, or for binned dimensions the ``(low, high)`` ends of its
        bin. For ``controller="lstm"`` the marginals are estimated from 256 samples drawn
        with a separate random stream (the search's own stream is left untouched).
        """
        policy = self._require_policy()
        marginals = policy.marginals(random.Random(0))
        return {
            key: list(zip(spec.labels(), probs, strict=True))
            for key, spec, probs in zip(self._keys, self._actions, marginals, strict=True)
        }

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        policy = self._require_policy()
        return {
            "strategy": self.name,
            "version": _STATE_VERSION,
            "controller": self.controller,
            "action_sizes": [a.n for a in self._actions],
            "policy": [_tensor_to_json(p) for p in policy.parameters()],
            "adam": self._adam.state_dict(),
            "lr": self._lr,
            "rng": random_state_to_json(self._rng),
            "baseline": dict(self._baseline),
            "n_counted": self._n_counted,
            "pending": {tid: dict(sample) for tid, sample in self._pending.items()},
            "batch": [dict(item) for item in self._batch],
            "seen": [list(v) for v in self._seen],
            "feasible": list(self._feasible),
            "asked": sorted(self._asked),
            "results": [{"params": dict(r["params"]), "objectives": dict(r["objectives"])}
                        for r in self._results],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        policy = self._require_policy()
        check_state_header(state, owner="RLStrategy", name=self.name,
                           version=_STATE_VERSION, accepted=(1, 2, _STATE_VERSION))
        sizes = [a.n for a in self._actions]
        if state["controller"] != self.controller or list(state["action_sizes"]) != sizes:
            raise ValueError(
                f"state was saved for controller={state['controller']!r} with action sizes "
                f"{state['action_sizes']}, but this strategy has controller="
                f"{self.controller!r} and action sizes {sizes}"
            )
        saved_lr = state.get("lr", _DEFAULT_LR_BEFORE_RECORDED[self.controller])
        _check_number("lr", saved_lr, low=0.0, low_open=True)
        params = policy.parameters()
        if len(state["policy"]) != len(params):
            raise ValueError(
                f"state holds {len(state['policy'])} policy tensors, but this policy has "
                f"{len(params)}"
            )
        with self._torch.no_grad():
            for param, data in zip(params, state["policy"], strict=True):
                param.copy_(_tensor_from_json(self._torch, data, param))
        self._adam.load_state_dict(state["adam"])
        if self.lr is None:
            # The default may have changed since the state was saved: go on at its rate.
            self._lr = self._adam.lr = float(saved_lr)
        random_state_from_json(self._rng, state["rng"])
        self._baseline = {"n": int(state["baseline"]["n"]),
                          "mean": float(state["baseline"]["mean"]),
                          "n_var": int(state["baseline"]["n_var"]),
                          "var": float(state["baseline"]["var"])}
        self._n_counted = int(state["n_counted"])
        self._pending = {
            tid: {"actions": [int(a) for a in s["actions"]], "log_prob": float(s["log_prob"]),
                  "params": dict(s["params"])}
            for tid, s in state["pending"].items()
        }
        self._batch = [
            {"actions": [int(a) for a in b["actions"]], "log_prob": float(b["log_prob"]),
             "advantage": float(b["advantage"])}
            for b in state["batch"]
        ]
        self._seen = [[float(v) for v in vector] for vector in state["seen"]]
        self._feasible = [bool(f) for f in state["feasible"]]
        # Version 1 kept no record of its proposals: repeats of them go unnoticed.
        self._asked = set(state.get("asked", []))
        # Versions 1 and 2 kept no params of their results: the model starts afresh.
        self._results = [{"params": dict(r["params"]), "objectives": dict(r["objectives"])}
                         for r in state.get("results", [])]
        self._summarise()


# ---------------------------------------------------------------------- action encoding


class _Actions:
    """The discrete actions of one dimension and the value each one stands for.

    ``kind`` is ``"values"`` (one action per value), ``"index_bins"`` (contiguous runs of
    a finite grid, given by ``(first, last)`` grid indices) or ``"range_bins"``
    (sub-intervals of a continuous range, linear or log).
    """

    def __init__(self, kind: str, dimension: Dimension, items: list[Any]) -> None:
        self.kind = kind
        self.dimension = dimension
        self.items = items
        self.n = len(items)

    @classmethod
    def build(cls, key: str, dimension: Dimension, *, bins: int, max_grid: int) -> _Actions:
        if isinstance(dimension, Categorical):
            return cls("values", dimension, list(dimension.choices))
        if isinstance(dimension, Int):
            count = (dimension.high - dimension.low) // dimension.step + 1
            if count <= max_grid:
                return cls("values", dimension, dimension.grid())
            if dimension.log:
                return cls("index_bins", dimension, _log_int_bins(dimension, bins))
            return cls("index_bins", dimension, _index_bins(count, bins))
        if isinstance(dimension, Float):
            if dimension.step is not None:
                count = round((dimension.high - dimension.low) / dimension.step) + 1
                if count <= max_grid:
                    return cls("values", dimension, dimension.grid())
                return cls("index_bins", dimension, _index_bins(count, bins))
            if dimension.low == dimension.high:
                return cls("values", dimension, [dimension.low])
            return cls("range_bins", dimension, _range_bins(dimension, bins))
        raise TypeError(
            f"RLStrategy supports Categorical, Int and Float dimensions, but dimension "
            f"{key!r} is {dimension!r}"
        )

    def _grid_value(self, index: int) -> Any:
        dim = self.dimension
        if isinstance(dim, Int):
            return dim.low + index * dim.step
        return round(dim.low + index * dim.step, 12)  # as Float.grid() writes it

    def value(self, action: int, rng: random.Random) -> Any:
        item = self.items[action]
        if self.kind == "values":
            return item
        if self.kind == "index_bins":
            return self._grid_value(rng.randint(item[0], item[1]))
        low, high = item
        if self.dimension.log:  # type: ignore[attr-defined]
            value = math.exp(rng.uniform(math.log(low), math.log(high)))
        else:
            value = rng.uniform(low, high)
        return min(max(value, self.dimension.low), self.dimension.high)  # type: ignore[attr-defined]

    def action_of(self, value: Any) -> int:
        """The action whose value is ``value`` (its bin, for binned dimensions)."""
        if self.kind == "values":
            if isinstance(self.dimension, Categorical):
                return next(i for i, c in enumerate(self.items)
                            if type(c) is type(value) and c == value)
            # a numeric grid: the nearest value, so float rounding cannot miss it
            return min(range(self.n), key=lambda i: abs(self.items[i] - value))
        if self.kind == "index_bins":
            dim = self.dimension
            if isinstance(dim, Int):
                index = (value - dim.low) // dim.step
            else:
                index = round((value - dim.low) / dim.step)  # type: ignore[attr-defined]
            return next(i for i, (first, last) in enumerate(self.items)
                        if first <= index <= last)
        return min(bisect.bisect_right([high for _, high in self.items[:-1]], value),
                   self.n - 1)

    def labels(self) -> list[Any]:
        if self.kind == "values":
            return list(self.items)
        if self.kind == "index_bins":
            return [(self._grid_value(a), self._grid_value(b)) for a, b in self.items]
        return [tuple(item) for item in self.items]


def _index_bins(count: int, bins: int) -> list[tuple[int, int]]:
    bins = min(bins, count)
    edges = [count * i // bins for i in range(bins + 1)]
    return [(edges[i], edges[i + 1] - 1) for i in range(bins)]


def _log_int_bins(dimension: Int, bins: int) -> list[tuple[int, int]]:
    # Equal widths in log space; bins too narrow to hold an integer are dropped.
    lo, hi = math.log(dimension.low), math.log(dimension.high + 1)
    starts = sorted({max(dimension.low, math.ceil(math.exp(lo + (hi - lo) * i / bins) - 1e-9))
                     for i in range(bins)})
    runs = []
    for i, start in enumerate(starts):
        end = starts[i + 1] - 1 if i + 1 < len(starts) else dimension.high
        runs.append((start - dimension.low, end - dimension.low))
    return runs


def _range_bins(dimension: Float, bins: int) -> list[tuple[float, float]]:
    if dimension.log:
        lo, hi = math.log(dimension.low), math.log(dimension.high)
        edges = [math.exp(lo + (hi - lo) * i / bins) for i in range(bins + 1)]
    else:
        edges = [dimension.low + (dimension.high - dimension.low) * i / bins
                 for i in range(bins + 1)]
    edges[0], edges[-1] = dimension.low, dimension.high
    return [(edges[i], edges[i + 1]) for i in range(bins)]


# ---------------------------------------------------------------------- policies


class _Policy:
    """A distribution over one action per dimension."""

    def parameters(self) -> list[torch.Tensor]:
        raise NotImplementedError

    def sample(self, rng: random.Random) -> tuple[list[int], float]:
        """Actions drawn with ``rng`` and their joint log-probability."""
        raise NotImplementedError

    def log_prob(self, actions: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities of a batch of action lists and the entropy (per item)."""
        raise NotImplementedError

    def sample_log_prob(self, actions: list[int]) -> float:
        """The joint log-probability of one action list, as :meth:`sample` returns it."""
        with self.torch.no_grad():  # type: ignore[attr-defined]
            return float(self.log_prob([actions])[0][0])

    def marginals(self, rng: random.Random) -> list[list[float]]:
        raise NotImplementedError


def _draw(probs: Sequence[float], rng: random.Random) -> int:
    # Inverse CDF on python floats: exactly reproducible from the RNG state.
    cumulative = []
    total = 0.0
    for p in probs:
        total += p
        cumulative.append(total)
    return min(bisect.bisect_right(cumulative, rng.random() * total), len(probs) - 1)


class _IndependentPolicy(_Policy):
    def __init__(self, torch: Any, sizes: list[int]) -> None:
        self.torch = torch
        self.logits = [torch.zeros(n, dtype=torch.float64, requires_grad=True) for n in sizes]

    def parameters(self) -> list[torch.Tensor]:
        return self.logits

    def sample(self, rng: random.Random) -> tuple[list[int], float]:
        actions, log_prob = [], 0.0
        with self.torch.no_grad():
            for logits in self.logits:
                log_probs = self.torch.log_softmax(logits, dim=0)
                probs = log_probs.exp().tolist()
                action = _draw(probs, rng)
                actions.append(action)
                log_prob += float(log_probs[action])
        return actions, log_prob

    def log_prob(self, actions: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        torch = self.torch
        index = torch.tensor(actions, dtype=torch.long)
        total = torch.zeros(len(actions), dtype=torch.float64)
        entropy = torch.zeros((), dtype=torch.float64)
        for d, logits in enumerate(self.logits):
            log_probs = torch.log_softmax(logits, dim=0)
            total = total + log_probs[index[:, d]]
            entropy = entropy - (log_probs.exp() * log_probs).sum()
        return total, entropy.expand(len(actions))

    def marginals(self, rng: random.Random) -> list[list[float]]:
        with self.torch.no_grad():
            return [self.torch.softmax(logits, dim=0).tolist() for logits in self.logits]


class _LSTMPolicy(_Policy):
    """Autoregressive controller: an LSTM cell reads the previous action's embedding."""

    def __init__(self, torch: Any, sizes: list[int], hidden: int, generator: Any) -> None:
        self.torch = torch
        self.sizes = sizes
        self.hidden = hidden
        scale = 1.0 / math.sqrt(hidden)

        def uniform(*shape: int) -> torch.Tensor:
            values = (torch.rand(*shape, generator=generator, dtype=torch.float64) * 2 - 1)
            return (values * scale).requires_grad_(True)

        self.start = uniform(hidden)
        self.w_ih = uniform(4 * hidden, hidden)
        self.w_hh = uniform(4 * hidden, hidden)
        self.b = uniform(4 * hidden)
        # One embedding table and one output head per dimension.
        self.embed = [uniform(n, hidden) for n in sizes]
        # Heads start at zero, so the first policy is uniform like the independent one.
        self.heads = [torch.zeros(n, hidden, dtype=torch.float64, requires_grad=True)
                      for n in sizes]
        self.head_bias = [torch.zeros(n, dtype=torch.float64, requires_grad=True)
                          for n in sizes]

    def parameters(self) -> list[torch.Tensor]:
        return [self.start, self.w_ih, self.w_hh, self.b, *self.embed, *self.heads,
                *self.head_bias]

    def _cell(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        torch = self.torch
        gates = x @ self.w_ih.T + h @ self.w_hh.T + self.b
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c

    def _run(self, actions: torch.Tensor | None, rng: random.Random | None, batch: int):
        """Step through the dimensions; sample when ``actions`` is None."""
        torch = self.torch
        x = self.start.expand(batch, self.hidden)
        h = torch.zeros(batch, self.hidden, dtype=torch.float64)
        c = torch.zeros(batch, self.hidden, dtype=torch.float64)
        chosen, total = [], torch.zeros(batch, dtype=torch.float64)
        entropy = torch.zeros(batch, dtype=torch.float64)
        for d in range(len(self.sizes)):
            h, c = self._cell(x, h, c)
            log_probs = torch.log_softmax(h @ self.heads[d].T + self.head_bias[d], dim=-1)
            if actions is None:
                action = torch.tensor([_draw(row, rng) for row in log_probs.exp().tolist()])
            else:
                action = actions[:, d]
            chosen.append(action)
            total = total + log_probs.gather(1, action[:, None])[:, 0]
            entropy = entropy - (log_probs.exp() * log_probs).sum(dim=-1)
            x = self.embed[d][action]
        return torch.stack(chosen, dim=1), total, entropy

    def sample(self, rng: random.Random) -> tuple[list[int], float]:
        with self.torch.no_grad():
            actions, total, _ = self._run(None, rng, 1)
        return [int(a) for a in actions[0]], float(total[0])

    def log_prob(self, actions: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        index = self.torch.tensor(actions, dtype=self.torch.long)
        _, total, entropy = self._run(index, None, len(actions))
        return total, entropy

    def marginals(self, rng: random.Random) -> list[list[float]]:
        with self.torch.no_grad():
            actions, _, _ = self._run(None, rng, 256)
        return [
            [float((actions[:, d] == a).double().mean()) for a in range(n)]
            for d, n in enumerate(self.sizes)
        ]


class _Adam:
    """Adam (Kingma & Ba) on a list of tensors, with a JSON-able state."""

    def __init__(self, torch: Any, params: list[torch.Tensor], *, lr: float) -> None:
        self.torch = torch
        self.params = params
        self.lr = float(lr)
        self.betas = (0.9, 0.999)
        self.eps = 1e-8
        self.t = 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    def step(self, loss: torch.Tensor) -> None:
        grads = self.torch.autograd.grad(loss, self.params, allow_unused=True)
        self.t += 1
        b1, b2 = self.betas
        with self.torch.no_grad():
            for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
                if g is None:
                    continue
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                m_hat = m / (1 - b1**self.t)
                v_hat = v / (1 - b2**self.t)
                p.sub_(self.lr * m_hat / (v_hat.sqrt() + self.eps))

    def state_dict(self) -> dict[str, Any]:
        return {"t": self.t, "m": [_tensor_to_json(m) for m in self.m],
                "v": [_tensor_to_json(v) for v in self.v]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.t = int(state["t"])
        for target, data in zip(self.m + self.v, list(state["m"]) + list(state["v"]),
                                strict=True):
            target.copy_(_tensor_from_json(self.torch, data, target))


def _tensor_to_json(tensor: torch.Tensor) -> dict[str, Any]:
    # float64 values print with repr, which round-trips exactly through JSON.
    return {"shape": list(tensor.shape), "data": tensor.detach().reshape(-1).tolist()}


def _tensor_from_json(torch: Any, data: Mapping[str, Any], like: torch.Tensor) -> torch.Tensor:
    if list(data["shape"]) != list(like.shape):
        raise ValueError(
            f"state tensor has shape {data['shape']}, but this policy expects "
            f"{list(like.shape)}"
        )
    return torch.tensor(data["data"], dtype=like.dtype).reshape(like.shape)


# ---------------------------------------------------------------------- validation


def _check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    ok = is_finite_number(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            bounds.append(f"{'<' if high_open else '<='} {high:g}")
        what = f"a finite number {' and '.join(bounds)}".rstrip()
        raise ValueError(f"strategy.{name} must be {what}, but got {value!r}")
