"""One declaration per setting, one message format (nascompress.settings)."""

import pickle

import pytest

from nascompress.config import (
    ConfigError,
    EarlyStoppingConfig,
    LatencyConfig,
    parse_config,
)
from nascompress.latency.measure import LatencySetup
from nascompress.latency.settings import LatencyServiceConfig, LatencySharing
from nascompress.search.early_stopping import MultiObjectiveHalving
from nascompress.search.halving_settings import HalvingSettings
from nascompress.settings import SettingError, UnknownSettingError, violation


def _default(model, name):
    field = model.model_fields[name]
    return field.get_default(call_default_factory=True)


@pytest.mark.parametrize(("base", "built"), [
    (LatencySetup, LatencyConfig),
    (LatencySharing, LatencyConfig),
    (LatencySharing, LatencyServiceConfig),
    (HalvingSettings, EarlyStoppingConfig),
])
def test_fields_are_taken_from_one_declaration(base, built):
    assert issubclass(built, base)
    for name in base.model_fields:
        assert name in built.model_fields
        assert _default(built, name) == _default(base, name)
        assert built.model_fields[name].metadata == base.model_fields[name].metadata


def test_the_config_setup_is_the_default_setup():
    assert LatencyConfig().setup() == LatencySetup()
    assert type(LatencyConfig().setup()) is LatencySetup
    assert LatencyConfig().to_dict() == LatencySetup().to_dict()


def test_the_rule_defaults_are_the_settings_defaults():
    rule = MultiObjectiveHalving(rungs=[1], metrics={"val_accuracy": "max"})
    settings = HalvingSettings()
    assert (rule.eta, rule.relative_margin) == (settings.eta, settings.relative_margin)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: LatencySetup(threads=0), "latency.threads must be >= 1, but got 0"),
    (lambda: LatencySetup(time_cap_s=-2.0), "latency.time_cap_s must be > 0, but got -2.0"),
    (lambda: LatencySetup(device="tpu"),
     "latency.device must be 'auto', 'cpu' or 'cuda', but got 'tpu'"),
    (lambda: LatencySetup(min_repeats=10, max_repeats=5),
     "latency.max_repeats must be >= latency.min_repeats (10), but got 5"),
    (lambda: LatencySetup(batch_size="16"), "latency.batch_size must be an integer, but got '16'"),
    (lambda: LatencyServiceConfig(lease_ttl_s=0), "latency.lease_ttl_s must be > 0, but got 0"),
    (lambda: MultiObjectiveHalving(rungs=[1], eta=1, metrics={"a": "max"}),
     "early_stopping.eta must be >= 2, but got 1"),
    (lambda: MultiObjectiveHalving(rungs=[2, 1], metrics={"a": "max"}),
     "early_stopping.rungs must be a non-empty, strictly increasing list of steps >= 1, "
     "but got [2, 1]"),
])
def test_direct_construction_fails_with_one_line_in_the_one_format(make, message):
    with pytest.raises(SettingError) as info:
        make()
    assert isinstance(info.value, ValueError)
    assert str(info.value) == message


def test_several_errors_are_counted_on_the_one_line():
    with pytest.raises(ValueError) as info:
        LatencySetup(threads=0, warmup=-1)
    assert str(info.value) == "latency.threads must be >= 1, but got 0 (and 1 more)"


def test_an_unknown_keyword_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'thread'") as info:
        LatencySetup(thread=2)
    assert isinstance(info.value, UnknownSettingError) and "\n" not in str(info.value)


def test_the_format():
    assert violation("a.b", ">= 1", 0) == "a.b must be >= 1, but got 0"


@pytest.mark.parametrize(("data", "message"), [
    ({"latency": {"threads": 0}}, "config error: latency.threads must be >= 1, but got 0"),
    ({"latency": {"max_wait_s": 0}}, "config error: latency.max_wait_s must be > 0, but got 0"),
    ({"latency": {"min_repeats": 9, "max_repeats": 3}},
     "config error: latency.max_repeats must be >= latency.min_repeats (9), but got 3"),
    ({"early_stopping": {"eta": 1}}, "config error: early_stopping.eta must be >= 2, but got 1"),
    ({"early_stopping": {"relative_margin": -0.1}},
     "config error: early_stopping.relative_margin must be >= 0, but got -0.1"),
    ({"latency": {"thread": 1}},
     "config error: latency.thread: unknown field; check the spelling (value: 1)"),
])
def test_config_errors_name_the_dotted_field(data, message):
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert str(info.value) == message


def test_setups_pickle_hash_round_trip_and_replace():
    setup = LatencySetup(threads=2, time_cap_s=0.5)
    assert pickle.loads(pickle.dumps(setup)) == setup
    assert LatencySetup(**setup.to_dict()) == setup
    assert {setup: 1}[LatencySetup(threads=2, time_cap_s=0.5)] == 1
    assert setup.replace(batch_size=1) == LatencySetup(threads=2, time_cap_s=0.5, batch_size=1)
    with pytest.raises(SettingError, match="latency.batch_size"):
        setup.replace(batch_size=0)
    with pytest.raises(ValueError):  # frozen
        setup.threads = 3
    config = LatencyServiceConfig(backend="ray", device_resource="target")
    assert pickle.loads(pickle.dumps(config)) == config
    assert config.replace(device_resource=None).device_resource is None
