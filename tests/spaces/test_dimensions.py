import json
import random

import pytest

from nascompress.spaces import Categorical, Float, Int, dimension_from_dict


@pytest.mark.parametrize(
    "dim",
    [Categorical([1, "a", 2.5, True]), Int(1, 9, step=2), Int(1, 64, log=True),
     Float(0.0, 1.0), Float(0.0, 0.7, step=0.05), Float(1e-4, 1e-1, log=True)],
)
def test_json_round_trip_and_samples_are_contained(dim):
    again = dimension_from_dict(json.loads(json.dumps(dim.to_dict())))
    assert again == dim
    rng = random.Random(0)
    assert all(dim.contains(dim.sample(rng)) for _ in range(200))


def test_both_ends_inclusive():
    assert Int(2, 4).grid() == [2, 3, 4]
    assert Float(0.0, 0.2, step=0.1).grid() == [0.0, 0.1, 0.2]
    f = Float(0.0, 1.0)
    assert f.contains(0.0) and f.contains(1.0) and not f.contains(1.01)


def test_int_rejects_off_grid_and_non_integers():
    d = Int(0, 10, step=5)
    assert d.contains(5) and not d.contains(3) and not d.contains(5.5) and not d.contains(True)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Float(1.0, 0.0), "low <= high must hold, but got (low=1.0, high=0.0)"),
        (lambda: Int(1, 4, step=2), "multiple of step"),
        (lambda: Float(0.0, 1.0, log=True), "log=True needs low > 0"),
        (lambda: Categorical([]), "choices must not be empty"),
        (lambda: Categorical([1, 1]), "distinct"),
        (lambda: Int(1.5, 3), "low must be an integer, but got 1.5"),
        (lambda: Float(0, float("nan")), "high must be a finite number"),
    ],
)
def test_bad_arguments_name_the_argument_and_value(build, message):
    pattern = message.replace("(", r"\(").replace(")", r"\)")
    with pytest.raises((ValueError, TypeError), match=pattern):
        build()


def test_from_dict_rejects_unknown_type_and_keys():
    with pytest.raises(ValueError, match="type must be one of"):
        dimension_from_dict({"type": "bool"})
    with pytest.raises(ValueError, match="unknown key"):
        dimension_from_dict({"type": "int", "low": 1, "high": 2, "hgih": 3})
