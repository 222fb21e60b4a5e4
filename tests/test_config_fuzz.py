"""200 malformed configs: each exits 2 with one error line naming the field, none runs.

The configs come from a seeded generator shared with ``bench/faults/run.py``
(``bench/faults/malformed.py``): a valid base config with one mutation each (wrong types,
out-of-range numbers, unknown keys at every level, misspelt plug-in names, broken import
paths and plug-ins, bad dimension overrides, constraints, run names, addresses, files).
Runners are replaced by a function that raises, so an accepted config is caught, not run.
"""

import random

import pytest

pytest.importorskip("torch")

from bench.faults.malformed import (  # noqa: E402
    COUNT,
    MUTATIONS,
    Case,
    SilentAcceptance,
    base_config,
    field_tokens,
    generate,
    judge,
    write_case,
)
from nascompress import cli  # noqa: E402

CASES = generate()


@pytest.fixture
def runners_refused(monkeypatch):
    import nascompress.search.controller as controller
    import nascompress.search.local as local

    def refuse(*args, **kwargs):
        raise SilentAcceptance("a runner was started for this config")

    monkeypatch.setattr(controller, "run_ray", refuse)
    monkeypatch.setattr(controller, "init_ray", refuse)
    monkeypatch.setattr(local, "run_local", refuse)


def _search(case: Case, tmp_path, capsys):
    argv = write_case(case, tmp_path)
    try:
        code = cli.main(argv)
    except SilentAcceptance:
        return None, capsys.readouterr().err
    return code, capsys.readouterr().err


def test_the_generator_is_deterministic_and_covers_every_category():
    assert generate() == CASES and len(CASES) == COUNT == 200
    per_category = {name: sum(c.category == name for c in CASES) for name in MUTATIONS}
    assert set(per_category.values()) == {COUNT // len(MUTATIONS)}
    assert generate(seed=7) != CASES


def test_the_base_config_reaches_the_runner(tmp_path, capsys, runners_refused):
    # The positive control: unmutated, the config is accepted (so each rejection below
    # is the mutation's doing) and an acceptance is detected.
    import yaml

    base = Case(index=999, category="base", path="", value="", expected=(),
                content=yaml.safe_dump(base_config(random.Random(0), 999)).encode())
    code, err = _search(base, tmp_path, capsys)
    assert code is None, f"the base config was rejected: {err}"


@pytest.mark.parametrize("case", CASES, ids=[c.id.replace("/", "~") for c in CASES])
def test_malformed_config_exits_2_with_one_line_naming_the_field(
    case, tmp_path, capsys, runners_refused
):
    code, err = _search(case, tmp_path, capsys)
    verdict = judge(case, code, err, silent=code is None)
    assert not verdict.silent, f"silently accepted: {case.path} = {case.value}"
    assert not verdict.problems, f"{case.path} = {case.value}: {verdict.problems}\n{err}"


KNOWN_GAPS = [
    # Once gaps: a continuous range checked by its two ends only, and a bool passing a
    # numeric range check (False == 0). Kept as regression tests.
    ("quant/bits", {"type": "float", "low": 2, "high": 8}),
    ("prune/ratio", {"type": "categorical", "choices": [False, 0.5]}),
]


@pytest.mark.parametrize(("key", "spec"), KNOWN_GAPS, ids=[k for k, _ in KNOWN_GAPS])
def test_known_gaps_in_the_image_cnn_space(key, spec, tmp_path, capsys, runners_refused):
    import yaml

    config = base_config(random.Random(0), 0)
    config["space"]["dimensions"][key] = spec
    keys = ("space", "dimensions", key)
    case = Case(index=0, category="known_gap", path=".".join(keys), value=repr(spec),
                content=yaml.safe_dump(config).encode(), expected=field_tokens(keys))
    code, err = _search(case, tmp_path, capsys)
    assert not judge(case, code, err, silent=code is None).problems
