"""Turn a validated config into live objects, checking everything before compute starts."""

from __future__ import annotations

import platform
import random
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nascompress import __version__
from nascompress.cluster import check_cluster, search_address
from nascompress.config import ConfigError, ExperimentConfig
from nascompress.evaluators import EVALUATORS, Evaluator
from nascompress.objectives import Objective
from nascompress.pareto import Constraint
from nascompress.registry import RegistryError
from nascompress.search.records import RunDirectory
from nascompress.spaces import SPACES, SearchSpace
from nascompress.strategies import STRATEGIES, Strategy, setup_strategy

if TYPE_CHECKING:
    from nascompress.evaluators import LatencyUse
    from nascompress.latency.settings import LatencyServiceConfig
    from nascompress.search.early_stopping import MultiObjectiveHalving
    from nascompress.search.trial import TrialRunner


@dataclass
class Experiment:
    """A resolved experiment: the objects a runner needs, all validated.

    It also builds what a runner wires around the trials, from the config and the
    evaluator's declarations (:class:`~nascompress.evaluators.Evaluator`): the latency
    service settings, the early-stopping rule, the latency pre-filter and the
    :class:`~nascompress.search.trial.TrialRunner`. The strategy is set up here, once,
    by :func:`build_experiment`.
    """

    config: ExperimentConfig
    run_name: str
    run_dir: RunDirectory
    space: SearchSpace
    strategy: Strategy
    evaluator: Evaluator
    dataset: Any  # a nascompress.data.Dataset
    objectives: list[Objective]
    constraints: list[Constraint]
    #: names this search's latency gate / service actors and its in-process cache.
    search_key: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    _prefilter: Any = field(default=None, init=False, repr=False, compare=False)
    _prefilter_ready: bool = field(default=False, init=False, repr=False, compare=False)

    def latency_use(self) -> LatencyUse | None:
        """How the evaluator measures latency (read through its contract), or None."""
        return self.evaluator.latency_use() if self.evaluator.uses_latency_service else None

    def run_metadata(self) -> dict[str, Any]:
        """What ``run.json`` records about this experiment."""
        import ray
        import torch

        settings = self.evaluator.settings()
        use = self.latency_use()
        return {
            "name": self.run_name,
            "created_at": time.time(),
            "versions": {"nascompress": __version__, "torch": torch.__version__,
                         "ray": ray.__version__, "python": platform.python_version()},
            "seed": self.config.seed,
            "objectives": [o.to_dict() for o in self.objectives],
            "constraints": [str(c) for c in self.constraints],
            "space": self.space.to_dict(),
            "strategy": {"name": self.config.strategy.name,
                         "options": self.config.strategy.options},
            "dataset": self.dataset.describe(),
            "evaluator": {"name": self.config.evaluator.name,
                          "settings": settings},
            "latency": {**self.config.latency.model_dump(),
                        "runtime": use.runtime if use else self.config.latency.runtime},
            "config": self.config.model_dump(),
            "host": {"platform": platform.platform(), "machine": platform.machine()},
        }

    # -- what the runners wire around the trials ---------------------------------------

    @property
    def latency_search_key(self) -> str:
        return f"{self.run_name}-{self.search_key}"

    def latency_service_config(self, *, backend: str = "local") -> LatencyServiceConfig:
        """How this search's trials share nodes and targets while measuring latency."""
        from nascompress.latency.settings import LatencyServiceConfig

        latency = self.config.latency
        return LatencyServiceConfig(
            backend=backend, exclusive=latency.exclusive, cache=latency.cache,
            device_resource=latency.device_resource,
            search_key=self.latency_search_key,
            lease_ttl_s=latency.lease_ttl_s, max_wait_s=latency.max_wait_s,
        )

    def early_stopping_metrics(self) -> dict[str, str]:
        """``early_stopping.metrics``, or by default the evaluator's intermediate metrics."""
        given = self.config.early_stopping.metrics
        return dict(self.evaluator.intermediate_metrics() if given is None else given)

    def early_stopping_margins(self) -> dict[str, float]:
        """``early_stopping.margins``, or by default the evaluator's declared margins."""
        given = self.config.early_stopping.margins
        return dict(self.evaluator.intermediate_margins() if given is None else given)

    def early_stopping_rule(self) -> MultiObjectiveHalving | None:
        """A fresh successive-halving rule, or None when early stopping is off."""
        from nascompress.search.early_stopping import MultiObjectiveHalving

        cfg = self.config.early_stopping
        if not cfg.enabled:
            return None
        return MultiObjectiveHalving(rungs=cfg.rungs, eta=cfg.eta,
                                     metrics=self.early_stopping_metrics(),
                                     margins=self.early_stopping_margins(),
                                     relative_margin=cfg.relative_margin)

    def prefilter(self, *, backend: str = "local", records: Iterable[Mapping[str, Any]] = ()):
        """The latency predictor's pre-filter, or None (off, or no latency constraint).

        Built once per search, on first call, calibrated on ``records`` (a resumed search
        starts calibrated) and then online from :meth:`observe`. With
        ``latency.predictor: layer-table`` (the default) it times each distinct layer once
        through this search's latency service (``backend``: where its gate lives), so on
        the pinned target and under the gate like any trial's measurement, with the
        evaluator's own latency setup; the ``torch`` runtime has no layer table and uses
        the regression. It needs an evaluator that uses the latency service.
        """
        if self._prefilter_ready:
            return self._prefilter
        self._prefilter_ready = True
        cfg = self.config
        use = self.latency_use()
        bounds = [c.bound for c in self.constraints
                  if c.metric == "latency_ms" and c.op == "<="]
        if cfg.latency.predictor_filter and bounds and use is not None:
            from nascompress.latency.predictor import LatencyPrefilter

            table = cfg.latency.predictor == "layer-table" and use.runtime == "onnxruntime"
            self._prefilter = LatencyPrefilter(
                bound=min(bounds), space=self.space,
                input_shape=self.dataset.input_shape, num_classes=self.dataset.num_classes,
                runtime=use.runtime,
                method="layer-table" if table else "regression",
                # Two numbers per runtime kind to calibrate, against nine features.
                min_records=5 if table else 20,
                time_kernel=self._kernel_timer(backend, use.setup) if table else None,
            )
            for record in records:
                self._prefilter.observe(record)
        return self._prefilter

    def observe(self, record: Mapping[str, Any]) -> None:
        """Calibrate the pre-filter (when built) on a newly recorded trial."""
        if self._prefilter is not None:
            self._prefilter.observe(record)

    def _kernel_timer(self, backend: str, setup):
        """``time_kernel(kernel, kind) -> ms`` through this search's latency service."""
        from nascompress.latency.client import TrialLatency
        from nascompress.latency.connection import connect
        from nascompress.latency.layer_table import measure_kernel

        config = self.latency_service_config(backend=backend)
        clients: list[TrialLatency] = []

        def time_kernel(kernel, kind: str) -> float:
            if not clients:  # connect on first use: Ray may not be up when this is built
                gate, service = connect(config)
                clients.append(TrialLatency(config, backend=gate, service=service,
                                            trial_id="latency-table"))
            return measure_kernel(kernel, kind, setup, measure_onnx=clients[0].measure_onnx)

        return time_kernel

    def trial_runner(
        self, *, shared: Mapping[str, Any], device: str = "cpu", backend: str = "local",
        in_process_rules: bool = True, records: Iterable[Mapping[str, Any]] = (),
    ) -> TrialRunner:
        """A picklable callable that evaluates one candidate in any process.

        Args:
            shared: the evaluator's prepared state (``Prepared.shared``).
            device: what each trial is given.
            backend: ``"local"`` or ``"ray"``: where the latency gate lives.
            in_process_rules: give the runner the early-stopping rule and the latency
                pre-filter (the local runner); under Ray Tune the controller applies
                them on the driver instead.
            records: trials already recorded (calibrate the pre-filter on resume).
        """
        from nascompress.search.trial import TrialRunner

        cfg = self.config
        return TrialRunner(
            space=self.space, evaluator=self.evaluator,
            objectives=self.objectives, dataset_name=cfg.dataset.name,
            dataset_options=cfg.dataset.options,
            search_seed=cfg.seed, shared=shared, device=device,
            timeout_s=cfg.trial_timeout_s,
            latency_service=self.latency_service_config(backend=backend),
            early_stopping=self.early_stopping_rule() if in_process_rules else None,
            prefilter=(self.prefilter(backend=backend, records=records)
                       if in_process_rules else None),
        )

    def release(self) -> None:
        """Drop this search's in-process latency state (gate, cache) once it has ended."""
        from nascompress.latency.gate import drop_local_state

        drop_local_state(self.latency_search_key)


def _construct(kind: str, name: str, factory, options: dict[str, Any], base: type):
    try:
        made = factory(**options)
    except TypeError as exc:
        raise ConfigError(f"{kind}.options: {exc} (options given: {options!r})") from None
    except ValueError as exc:
        raise ConfigError(_prefixed(kind, exc)) from None
    except Exception as exc:  # a plug-in's own failure: one message, not a traceback
        raise ConfigError(
            f"{kind}.name: {name!r} failed to construct: {type(exc).__name__}: {exc}"
        ) from None
    # An import path can name anything importable: say so now, not with an
    # AttributeError from deep inside the search.
    if not isinstance(made, base):
        raise ConfigError(
            f"{kind}.name: {name!r} made a {type(made).__name__} object, not a "
            f"{base.__name__}; name a {base.__name__} subclass"
        )
    return made


def _prefixed(kind: str, exc: Exception) -> str:
    """``exc``'s message under ``kind``, unless it already names a field of ``kind``."""
    message = str(exc)
    return message if message.startswith(f"{kind}.") else f"{kind}: {message}"


#: Bounds a constraint on an objective of this unit can meet (min, max).
_UNIT_RANGES = {"fraction": (0.0, 1.0), "bytes": (0.0, None), "ms": (0.0, None)}


#: What the rest of the search reads from a dataset (see ``nascompress.data.Dataset``).
_DATASET_ATTRIBUTES = ("loader", "num_classes", "input_shape", "describe")


def _load_dataset(config: ExperimentConfig):
    from nascompress.search.trial import load_dataset

    name, options = config.dataset.name, config.dataset.options
    try:
        dataset = load_dataset(name, options)
    except RegistryError as exc:
        raise ConfigError(str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"dataset.options: {exc} (options given: {options!r})") from None
    except Exception as exc:  # a plug-in's own failure: one message, not a traceback
        raise ConfigError(
            f"dataset.name: {name!r} failed to load: {type(exc).__name__}: {exc}"
        ) from None
    missing = [a for a in _DATASET_ATTRIBUTES if not hasattr(dataset, a)]
    if missing:
        raise ConfigError(
            f"dataset.name: {name!r} made a {type(dataset).__name__} object without "
            f"{missing}; a dataset must return a nascompress.data.Dataset"
        )
    return dataset


def _check_dataset(dataset, *, name: str, class_labels: bool) -> None:
    """The first batch of every split, before any compute is spent on it."""
    from nascompress.data import check_dataset

    try:
        check_dataset(dataset, class_labels=class_labels)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except Exception as exc:  # a user loader's own failure
        raise ConfigError(f"dataset.name: {name!r} failed to yield a batch: "
                          f"{type(exc).__name__}: {exc}") from None


def default_run_name(config: ExperimentConfig) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{config.space.name}-{config.strategy.name}-{stamp}".replace(":", "_")


def build_experiment(config: ExperimentConfig, *, allow_existing: bool = False) -> Experiment:
    """Resolve names, construct and validate every part, without starting Ray.

    Raises:
        ConfigError: with one message naming the field at fault.
    """
    try:
        space_cls = SPACES.resolve(config.space.name, field="space.name")
        strategy_cls = STRATEGIES.resolve(config.strategy.name, field="strategy.name")
        evaluator_cls = EVALUATORS.resolve(config.evaluator.name, field="evaluator.name")
    except RegistryError as exc:
        raise ConfigError(str(exc)) from None
    dataset = _load_dataset(config)

    space_options = dict(config.space.options)
    if config.space.dimensions:
        space_options["dimensions"] = config.space.dimensions
    space = _construct("space", config.space.name, space_cls, space_options, SearchSpace)
    if not space.dimensions():
        raise ConfigError(
            f"space.name: the space {config.space.name!r} has no dimensions to search"
        )

    evaluator = _construct("evaluator", config.evaluator.name, evaluator_cls,
                           dict(config.evaluator.options), Evaluator)
    try:
        if evaluator.uses_latency_service:
            evaluator.configure_latency(setup=config.latency.setup(),
                                        runtime=config.latency.runtime)
        evaluator.validate()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except TypeError as exc:  # e.g. an unknown key in a nested option mapping
        raise ConfigError(f"evaluator.options: {exc}") from None
    problem = evaluator.check_space(space) or evaluator.check_environment()
    if problem:
        raise ConfigError(problem)
    classification = evaluator.classification()
    _check_dataset(dataset, name=config.dataset.name, class_labels=classification)
    objectives = list(evaluator.objectives())
    _check_early_stopping(config, evaluator)

    constraints = []
    known = {o.name for o in objectives}
    for index, text in enumerate(config.constraints):
        try:
            constraint = Constraint.parse(text)
        except ValueError as exc:
            raise ConfigError(f"constraints[{index}]: {exc}") from None
        if constraint.metric not in known:
            raise ConfigError(
                f"constraints[{index}]: {text!r} names {constraint.metric!r}, which is not an "
                f"objective; use one of {sorted(known)}"
            )
        # 'accuracy >= 90' (a percentage) can never be met and would leave an empty front.
        unit = next(o.unit for o in objectives if o.name == constraint.metric)
        low, high = _UNIT_RANGES.get(unit, (None, None))
        if (low is not None and constraint.bound < low) or (
            high is not None and constraint.bound > high
        ):
            span = f"[{low:g}, {high:g}]" if high is not None else f">= {low:g}"
            raise ConfigError(
                f"constraints[{index}]: {text!r}: {constraint.metric} is measured in {unit}, "
                f"so its bound must be {span}, but got {constraint.bound:g}"
            )
        constraints.append(constraint)

    strategy = _construct("strategy", config.strategy.name, strategy_cls,
                          dict(config.strategy.options), Strategy)
    try:
        setup_strategy(strategy, space, objectives, seed=config.seed,
                       constraints=constraints, budget=config.trials)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"strategy.options: {exc}") from None

    _smoke_test_space(space, dataset, seed=config.seed, name=config.space.name,
                      classification=classification)
    if config.runner == "ray":
        _check_cluster_address(config.address)
    elif config.address:
        raise ConfigError(
            f"address: {config.address!r} is only used with runner 'ray', but the runner is "
            f"{config.runner!r}; remove the address or use --runner ray"
        )
    _check_local_gpu(config)

    run_name = config.name or default_run_name(config)
    run_dir = RunDirectory(Path(config.output_dir) / run_name)
    if run_dir.exists() and not allow_existing:
        raise ConfigError(
            f"name: the run {run_name!r} already exists in {config.output_dir!r}; choose "
            "another --name (recorded runs are never overwritten)"
        )
    return Experiment(config, run_name, run_dir, space, strategy, evaluator, dataset,
                      objectives, constraints)


def _check_early_stopping(config: ExperimentConfig, evaluator: Evaluator) -> None:
    """Early stopping needs intermediate metrics to compare: say so before any compute."""
    cfg = config.early_stopping
    if not cfg.enabled:
        return
    declared = dict(evaluator.intermediate_metrics())
    metrics = declared if cfg.metrics is None else dict(cfg.metrics)
    if not metrics:
        raise ConfigError(
            f"early_stopping.enabled: the evaluator {config.evaluator.name!r} declares no "
            "intermediate metrics (its report emits nothing early stopping can compare); "
            "set early_stopping.enabled to false, or name early_stopping.metrics"
        )
    unknown = sorted(set(metrics) - set(declared))
    if declared and unknown:
        raise ConfigError(
            f"early_stopping.metrics: the evaluator {config.evaluator.name!r} reports "
            f"{sorted(declared)}, but got {unknown}"
        )
    from nascompress.search.early_stopping import MultiObjectiveHalving

    margins = evaluator.intermediate_margins() if cfg.margins is None else cfg.margins
    try:  # the declarations' modes and margins, checked as the rule will use them
        MultiObjectiveHalving(rungs=cfg.rungs, eta=cfg.eta, metrics=metrics,
                              margins=dict(margins), relative_margin=cfg.relative_margin)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _check_cluster_address(address: str | None) -> None:
    """The cluster a Ray search joins, if any (:func:`search_address`), is reachable,
    answers as Ray, takes our token and runs our versions."""
    if address:
        check_cluster(address)
        return
    from_environment = search_address(None)
    if not from_environment:
        return  # a local Ray of our own
    try:
        check_cluster(from_environment)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (this address is RAY_ADDRESS, from the environment; unset "
                          "it to run a local search)") from None


def _check_local_gpu(config: ExperimentConfig) -> None:
    """On this machine alone, asking for a GPU that is not there would hang or fail."""
    if config.runner == "ray" and search_address(config.address):
        return  # a cluster's workers may have GPUs the driver lacks
    wants = []
    if config.resources.gpu > 0 and config.runner == "ray":
        wants.append(("resources.gpu", f"{config.resources.gpu:g} GPU(s) per trial", "0"))
    if config.latency.device == "cuda":
        wants.append(("latency.device", "'cuda'", "'cpu' or 'auto'"))
    if not wants:
        return
    import torch

    if not torch.cuda.is_available():
        field, value, instead = wants[0]
        raise ConfigError(
            f"{field}: {value} asked for, but torch sees no CUDA device on this machine "
            f"(trials would wait or fail); use {instead}, or join a cluster with GPUs "
            "(--address)"
        )
    if config.latency.device == "cuda" and config.latency.runtime == "onnxruntime":
        # A GPU with the CPU-only onnxruntime wheel: every trial would train, then fail
        # at its measurement. Refuse now.
        from nascompress.latency.ort import resolve_ort_device

        try:
            resolve_ort_device("cuda")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


def _smoke_test_space(space: SearchSpace, dataset, *, seed: int, name: str,
                      classification: bool = True) -> None:
    """Build one valid model and run one example through it, so a broken space fails now.

    ``name`` is the space as the config names it (a registered name or an import path).
    """
    rng = random.Random(seed)
    dims = space.dimensions()
    for _ in range(200):
        params = {k: d.sample(rng) for k, d in dims.items()}
        if space.check(params) is None:
            break
    else:
        raise ConfigError(
            f"space.dimensions: 200 random points of the space {name!r} were all rejected "
            f"by its constraints (last reason: {space.check(params)}); widen the dimension "
            "ranges"
        )
    try:
        import torch

        from nascompress.data import take

        model = space.build_model(params, input_shape=dataset.input_shape,
                                  num_classes=dataset.num_classes)
        example = take(dataset.loader("val", batch_size=2), 2)[0]
        with torch.no_grad():
            out = model.eval()(example)
    except Exception as exc:
        raise ConfigError(
            f"space.name: the space {name!r} failed to build or run a model for {params}: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if not classification:
        return  # another task's outputs: any shape the user's metric reads
    if tuple(getattr(out, "shape", ())) != (len(example), dataset.num_classes):
        raise ConfigError(
            f"space.name: models of the space {name!r} must output (batch, "
            f"{dataset.num_classes}) logits, but got shape {tuple(getattr(out, 'shape', ()))}"
        )
