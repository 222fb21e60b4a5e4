import pytest

from nascompress.config import ConfigError, apply_overrides, load_yaml, parse_config


def test_defaults_are_the_default_experiment():
    config = parse_config({})
    assert (config.space.name, config.dataset.name, config.strategy.name) == (
        "image-cnn", "digits", "bayesian")
    assert config.runner == "ray" and config.address is None


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"trials": 0}, "config error: trials must be >= 1, but got 0"),
        ({"max_concurrent": -1}, "config error: max_concurrent must be >= 1"),
        ({"trails": 3}, "trails: unknown field"),
        ({"latency": {"threads": 0}}, "config error: latency.threads must be >= 1"),
        ({"strategy": {"nme": "x"}}, "strategy.nme: unknown field"),
        ({"name": "../escape"}, "config error: name must be"),
        ({"name": "/abs/path"}, "config error: name must be"),
        ({"runner": "slurm"}, "config error: runner must be"),
        ({"seed": "abc"}, "config error: seed must be an integer"),
        ({"resources": {"custom": {"accelerator": -1}}}, "config error: resources.custom must be"),
    ],
)
def test_invalid_fields_are_named(data, field):
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert field in str(info.value)


def test_overrides_apply_dotted_keys_and_skip_none():
    merged = apply_overrides({"strategy": {"name": "random"}, "trials": 5},
                             {"strategy.name": "bayesian", "trials": None, "seed": 3})
    assert merged == {"strategy": {"name": "bayesian"}, "trials": 5, "seed": 3}


def test_yaml_missing_and_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(bad)


def test_the_shipped_example_config_is_valid():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "experiment.yaml"
    config = parse_config(load_yaml(path))
    assert config.constraints and config.space.dimensions
