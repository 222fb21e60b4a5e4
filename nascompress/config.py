"""Experiment configuration: a YAML file and command-line flags, validated up front.

Every error becomes one :class:`ConfigError` whose message names the field (dotted path),
shows the value and says what would be accepted, before any compute is spent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from nascompress.latency.measure import LatencySetup
from nascompress.latency.settings import LatencySharing
from nascompress.search.halving_settings import HalvingSettings
from nascompress.settings import ConstraintError, Settings, describe_errors

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ConfigError(ValueError):
    """Invalid experiment configuration; the message is meant for the user as is.

    The message is kept to one line (the CLI prints it as one ``error:`` line), even
    when it quotes a multi-line parser or plug-in message.
    """

    def __init__(self, message: str) -> None:
        super().__init__(re.sub(r"\s*\n\s*", " ", str(message)).strip())


class _Section(Settings):
    """A config section: strict, unknown keys refused (see :class:`Settings`)."""


class NamedSection(_Section):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class StrategyConfig(NamedSection):
    name: str = "bayesian"


class SpaceConfig(NamedSection):
    name: str = "image-cnn"
    dimensions: dict[str, dict[str, Any]] = Field(default_factory=dict)


class DatasetConfig(NamedSection):
    name: str = "digits"


class EvaluatorConfig(NamedSection):
    name: str = "compress-train"


class LatencyConfig(LatencySharing, LatencySetup):
    """The ``latency`` section: how latency is measured (:class:`LatencySetup`), how
    measurements share nodes (:class:`LatencySharing`), both declared there, and the
    fields below."""

    model_config = ConfigDict(frozen=False)

    runtime: Literal["onnxruntime", "torch"] = "onnxruntime"
    # Skip candidates whose predicted latency is far above a latency_ms constraint,
    # predicted by a per-layer table timed on the target or by a feature regression.
    predictor_filter: bool = False
    predictor: Literal["layer-table", "regression"] = "layer-table"

    def setup(self) -> LatencySetup:
        return LatencySetup(**self.to_dict())


class EarlyStoppingConfig(HalvingSettings):
    """Multi-objective successive halving (nascompress.search.early_stopping); rungs,
    eta and relative_margin are declared in :class:`HalvingSettings`."""

    enabled: bool = False
    # None: what the evaluator declares (Evaluator.intermediate_metrics / _margins),
    # resolved by the experiment, so any evaluator's report can be compared.
    metrics: dict[str, Literal["max", "min"]] | None = None
    margins: dict[str, float] | None = None


class ResourcesConfig(_Section):
    """Per trial: CPUs, GPUs (fractions allowed) and Ray custom resources."""

    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0)
    custom: dict[str, float] = Field(default_factory=dict)

    @field_validator("custom")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not v >= 0 or k in ("CPU", "GPU", "cpu", "gpu")}
        if bad:
            raise ConstraintError("named amounts >= 0 other than CPU/GPU (use resources.cpu / "
                                  "resources.gpu)", value=bad)
        return value


class MlflowTrackingConfig(_Section):
    """MLflow logging: one run per search (its settings), one child run per trial."""

    enabled: bool = False
    #: ``file:/path/mlruns``, ``http://host:5000``, ...; None: MLflow's own default
    #: (``MLFLOW_TRACKING_URI``, else its local store in the working directory).
    tracking_uri: str | None = None
    experiment: str = "nascompress"
    #: Upload each trial's artifact (``models/<trial_id>.nasc``) to its child run.
    artifacts: bool = True


class TensorBoardTrackingConfig(_Section):
    """TensorBoard scalars (objectives and hypervolume per trial number)."""

    enabled: bool = False
    #: Event folder; None: ``<run>/tensorboard``.
    log_dir: str | None = None


class TrackingConfig(_Section):
    """Optional trackers fed with every record; nothing is sent unless enabled here."""

    mlflow: MlflowTrackingConfig = Field(default_factory=MlflowTrackingConfig)
    tensorboard: TensorBoardTrackingConfig = Field(default_factory=TensorBoardTrackingConfig)


class ExperimentConfig(_Section):
    """Everything a search needs; see ``examples/experiment.yaml`` for a commented copy."""

    name: str | None = None
    output_dir: str = "results"
    seed: int = Field(0, ge=0)
    trials: int = Field(100, ge=1)
    max_concurrent: int = Field(2, ge=1)
    runner: Literal["ray", "local"] = "ray"
    address: str | None = None
    retries: int = Field(1, ge=0)
    trial_timeout_s: float | None = Field(None, gt=0)
    constraints: list[str] = Field(default_factory=list)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    space: SpaceConfig = Field(default_factory=SpaceConfig)
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    evaluator: EvaluatorConfig = Field(default_factory=EvaluatorConfig)
    latency: LatencyConfig = Field(default_factory=LatencyConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str | None) -> str | None:
        # The run name becomes a folder under output_dir: it must not escape it.
        if value is not None and not RUN_NAME.match(value):
            raise ConstraintError(
                "1-128 characters of letters, digits, '.', '_' or '-', starting with a letter "
                "or digit (no '/', no '..')"
            )
        return value

    @field_validator("address")
    @classmethod
    def _non_empty_address(cls, value: str | None) -> str | None:
        # An empty address would silently start a local Ray instead of joining a cluster.
        if value is not None and not value.strip():
            raise ConstraintError("HOST:PORT (e.g. 127.0.0.1:6379) or ray://HOST:PORT, or "
                                  "left out to start a local Ray")
        return value


def parse_config(data: Mapping[str, Any] | None) -> ExperimentConfig:
    """Validate a mapping into an :class:`ExperimentConfig`.

    Raises:
        ConfigError: naming the first invalid field and its value.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config: the top level must be a mapping, but got {data!r}")
    try:
        return ExperimentConfig.model_validate(dict(data))
    except ValidationError as exc:
        # The message format of every settings object (nascompress.settings), dotted
        # from the top: "latency.threads must be >= 1, but got 0".
        first, count = describe_errors(exc)
        extra = f" (and {count - 1} more)" if count > 1 else ""
        raise ConfigError(f"config error: {first}{extra}") from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file.

    Raises:
        ConfigError: the file is missing, unreadable or not a YAML mapping.
    """
    import yaml

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"--config: {str(path)!r} is a folder, not a YAML file")
    if not path.is_file():
        raise ConfigError(f"--config: file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"--config: cannot read {str(path)!r}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config: {str(path)!r} must hold a YAML mapping at the top level")
    return data


def apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``data`` with dotted-key ``overrides`` applied (``None`` values are skipped)."""
    merged: dict[str, Any] = {
        k: (dict(v) if isinstance(v, Mapping) else v) for k, v in data.items()
    }
    for dotted, value in overrides.items():
        if value is None:
            continue
        target = merged
        *parents, leaf = dotted.split(".")
        for part in parents:
            child = target.get(part)
            if not isinstance(child, dict):
                child = {} if child is None else child
                if not isinstance(child, dict):
                    raise ConfigError(f"config error: {part}: must be a mapping, got {child!r}")
                target[part] = child
            target = child
        target[leaf] = value
    return merged
