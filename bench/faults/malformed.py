"""Malformed experiment configs: a seeded generator and the check every one must pass.

Shared by ``tests/test_config_fuzz.py`` (one test per config) and ``bench/faults/run.py``
(the summary table). Each config is a valid base config with one mutation; for every one,
``nascompress search --config FILE --output-dir DIR`` must

* exit with status 2,
* print exactly one line on stderr, starting with ``nascompress: error:``, no traceback,
* name the field that was mutated (its dotted path, or the option key with its section),
* never reach a runner (a config that does is a *silent acceptance*).

The generator is deterministic for a seed: the same 200 configs every run.
"""

from __future__ import annotations

import contextlib
import copy
import io
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SEED = 1234
COUNT = 200
ERROR_PREFIX = "nascompress: error:"
RUN_NAME = "fuzz"

#: A tiny valid config; every generated config is this with one mutation.
BASE: dict[str, Any] = {
    "name": RUN_NAME,
    "seed": 0,
    "trials": 4,
    "max_concurrent": 2,
    "runner": "ray",
    "retries": 1,
    "trial_timeout_s": 120,
    "constraints": ["latency_ms <= 50"],
    "strategy": {"name": "bayesian", "options": {"n_startup_trials": 3}},
    "space": {
        "name": "image-cnn",
        "options": {"min_channels": 4},
        "dimensions": {
            "prune/ratio": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
            "quant/bits": {"type": "categorical", "choices": [4, 8, 32]},
        },
    },
    "dataset": {"name": "digits", "options": {"split_seed": 0}},
    "evaluator": {
        "name": "compress-train",
        "options": {"epochs": 1, "finetune_epochs": 1, "teacher_epochs": 1, "lr": 0.003},
    },
    "latency": {"device": "cpu", "threads": 1, "batch_size": 16, "warmup": 1,
                "min_repeats": 3, "max_repeats": 10, "target_rel_iqr": 0.1,
                "time_cap_s": 0.2},
    "resources": {"cpu": 1, "gpu": 0},
}

NAMES = {
    "strategy": ["bayesian", "random", "evolution", "nsga2", "grid"],
    "space": ["image-cnn"],
    "dataset": ["digits"],
    "evaluator": ["compress-train"],
}

DIMENSIONS = ["arch/depth", "arch/width", "arch/kernel", "prune/ratio", "prune/importance",
              "prune/sparsity", "quant/bits", "quant/scheme", "quant/activations",
              "lowrank/ratio", "distill/alpha", "distill/temperature",
              "distill/feature_weight"]
CATEGORICAL = ["arch/width", "arch/kernel", "prune/importance", "quant/bits", "quant/scheme",
               "quant/activations"]
#: numeric dimensions with the range a valid override may use
NUMERIC = {"arch/depth": ("int", 1, 6), "prune/ratio": ("float", 0.0, 0.9),
           "prune/sparsity": ("float", 0.0, 0.9), "lowrank/ratio": ("float", 0.1, 1.0),
           "distill/alpha": ("float", 0.0, 1.0), "distill/temperature": ("float", 1.0, 10.0),
           "distill/feature_weight": ("float", 0.0, 1.0)}


@dataclass(frozen=True)
class Case:
    """One malformed config.

    Attributes:
        index: position in the generated sequence.
        category: which kind of mutation.
        path: the dotted field that was mutated (``--config`` for file problems).
        value: the bad value, for display.
        content: the config file's bytes; ``None`` means no file exists at that path.
        argv: extra command-line flags.
        expected: alternatives; the error names the field when, for one alternative,
            every token appears in the message as a whole word or path.
        is_dir: the config path is a folder, not a file.
    """

    index: int
    category: str
    path: str
    value: str
    content: bytes | None
    argv: tuple[str, ...] = ()
    expected: tuple[tuple[str, ...], ...] = ()
    is_dir: bool = False

    @property
    def id(self) -> str:
        return f"{self.index:03d}-{self.category}-{self.path}"


# -- helpers ----------------------------------------------------------------------------


def _dotted(keys: Sequence[str]) -> str:
    return ".".join(keys)


def field_tokens(keys: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """How an error message may name the field at ``keys``.

    Top-level fields appear as ``field:`` or, in the settings' message format, as
    ``field must be ...``; fields under ``<section>.options`` may be named
    in full, as ``<section>.<key>`` (how plug-ins name their options), or as the section
    and the quoted key (``evaluator.options: ... unexpected keyword argument 'epoch'``).
    """
    keys = list(keys)
    if len(keys) == 1:
        return ((f"{keys[0]}:",), (f"{keys[0]} must be",))
    alternatives = [(_dotted(keys),)]
    if len(keys) >= 3 and keys[1] == "options":
        alternatives.append((_dotted([keys[0], *keys[2:]]),))
        alternatives.append((f"{keys[0]}.options", keys[2]))
        if len(keys) >= 4:  # e.g. evaluator.options.latency.threads -> latency.threads
            alternatives.append((_dotted(keys[2:]),))
    return tuple(alternatives)


def _mentions(message: str, token: str) -> bool:
    # A whole path or word: 'epoch' must not match inside 'epochs', nor 'name' in 'space.name'.
    pattern = r"(?<![\w./-])" + re.escape(token) + r"(?![\w/-])"
    return re.search(pattern, message) is not None


def names_field(message: str, expected: Sequence[Sequence[str]]) -> bool:
    """Whether ``message`` names the field, per one of the ``expected`` alternatives."""
    return any(all(_mentions(message, token) for token in alt) for alt in expected)


def _set(config: dict[str, Any], keys: Sequence[str], value: Any) -> None:
    target = config
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value


def _dump(config: dict[str, Any]) -> bytes:
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True).encode("utf-8")


def typo(rng: random.Random, word: str, avoid: Sequence[str] = ()) -> str:
    """A plausible misspelling of ``word`` that is none of ``avoid``."""
    for _ in range(100):
        chars = list(word)
        op = rng.choice(["swap", "drop", "double", "replace", "sep"])
        i = rng.randrange(len(chars))
        if op == "swap" and len(chars) > 1:
            i = min(i, len(chars) - 2)
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        elif op == "drop" and len(chars) > 2:
            del chars[i]
        elif op == "double":
            chars.insert(i, chars[i])
        elif op == "replace":
            chars[i] = rng.choice("aeioustnr")
        elif op == "sep":
            chars = list(word.replace("-", "_") if "-" in word else word + "s")
        candidate = "".join(chars)
        if candidate != word and candidate not in avoid:
            return candidate
    return word + "x"


# -- mutations --------------------------------------------------------------------------
# Each takes (rng, config) and mutates config in place; it returns
# (path, value, expected) or a dict with extra Case fields (argv, content, is_dir).

Mutation = Callable[[random.Random, dict[str, Any]], dict[str, Any]]

WRONG_TYPES: list[tuple[tuple[str, ...], list[Any]]] = [
    (("trials",), ["ten", [4], 2.5, True, None, {"n": 4}, "4"]),
    (("seed",), ["zero", 0.5, [0], True, "0"]),
    (("max_concurrent",), ["two", 1.5, False, "2"]),
    (("retries",), ["once", 0.5, True]),
    (("trial_timeout_s",), ["soon", [10], True, "60"]),
    (("runner",), [1, "Ray", "slurm", True, ["ray"]]),
    (("name",), [123, ["a"], True, 1.5]),
    (("constraints",), ["latency_ms <= 50", 5, {"latency_ms": 50}]),
    (("strategy",), ["bayesian", 5, ["bayesian"]]),
    (("strategy", "name"), [5, None, ["bayesian"], True]),
    (("strategy", "options"), ["n_startup_trials=3", [3], 3]),
    (("space", "options"), ["min_channels=4", [4]]),
    (("space", "dimensions"), [["prune/ratio"], "prune/ratio: 0.5"]),
    (("space", "dimensions", "prune/ratio"), [0.5, "0.5", [0.1, 0.2]]),
    (("space", "options", "min_channels"), ["4", 2.5, True]),
    (("space", "options", "mixed_precision"), ["yes", 1, "true"]),
    (("dataset", "name"), [7, None]),
    (("dataset", "options"), ["split_seed=1", [1]]),
    (("evaluator", "options", "epochs"), ["one", 1.5, True, None, "1"]),
    (("evaluator", "options", "lr"), ["fast", True, [0.01], "0.01"]),
    (("evaluator", "options", "importance"), [1, "L1", "magnitude"]),
    (("evaluator", "options", "teacher"), ["big", 5, ["params"]]),
    (("strategy", "options", "n_startup_trials"), ["3", 1.5, True]),
    (("strategy", "options", "constant_liar"), ["yes", 1]),
    (("latency", "threads"), ["one", 1.5, True, "1"]),
    (("latency", "warmup"), ["ten", True, 2.5]),
    (("latency", "time_cap_s"), ["2s", True, [2]]),
    (("latency", "device"), [0, "gpu", "CPU", True]),
    (("latency", "runtime"), ["tensorrt", "ORT", 1]),
    (("resources", "cpu"), ["one", [1], True, "1"]),
    (("resources", "gpu"), ["none", True, "0"]),
]


def _one_bad_value(rng, config, table: list[tuple[tuple[str, ...], list[Any]]]):
    """Set one field drawn from ``table`` to one of its bad values."""
    keys, values = rng.choice(table)
    value = rng.choice(values)
    _set(config, keys, value)
    return {"path": _dotted(keys), "value": value, "expected": field_tokens(keys)}


def wrong_type(rng, config):
    return _one_bad_value(rng, config, WRONG_TYPES)


NON_POSITIVE: list[tuple[tuple[str, ...], list[Any]]] = [
    (("trials",), [0, -1, -100]),
    (("max_concurrent",), [0, -2]),
    (("seed",), [-1, -7]),
    (("retries",), [-1]),
    (("trial_timeout_s",), [0, -5.0]),
    (("latency", "threads"), [0, -1]),
    (("latency", "batch_size"), [0, -16]),
    (("latency", "warmup"), [-1]),
    (("latency", "min_repeats"), [0, -3]),
    (("latency", "max_repeats"), [0, -1]),
    (("latency", "target_rel_iqr"), [0, -0.1]),
    (("latency", "time_cap_s"), [0, -2.0]),
    (("evaluator", "options", "epochs"), [0, -3]),
    (("evaluator", "options", "teacher_epochs"), [0, -1]),
    (("evaluator", "options", "finetune_epochs"), [-1]),
    (("evaluator", "options", "batch_size"), [0, -64]),
    (("evaluator", "options", "lr"), [0, -0.001]),
    (("evaluator", "options", "finetune_lr"), [0, -1.0]),
    (("evaluator", "options", "threads"), [0, -2]),
    (("space", "options", "min_channels"), [0, -4]),
    (("strategy", "options", "n_startup_trials"), [-1, -10]),
    (("resources", "cpu"), [0, -1, -0.5]),
    (("resources", "gpu"), [-1, -0.25]),
]


def non_positive(rng, config):
    return _one_bad_value(rng, config, NON_POSITIVE)


UNKNOWN_KEYS: list[tuple[tuple[str, ...], list[str]]] = [
    ((), ["trails", "seeds", "max_concurent", "runer", "constraint", "strategies",
          "evaluators", "latancy", "resource", "adress", "retry", "output", "epochs"]),
    (("strategy",), ["nmae", "option", "opts", "seed"]),
    (("space",), ["dimension", "optons", "dims", "dimensions_"]),
    (("dataset",), ["nam", "option", "path"]),
    (("evaluator",), ["optionz", "nme", "epochs"]),
    (("latency",), ["thread", "warm_up", "batchsize", "repeats", "runtimes"]),
    (("resources",), ["cpus", "gpus", "memory"]),
    (("evaluator", "options"), ["epoch", "learning_rate", "finetune_epoch", "teacher_epoch"]),
    (("strategy", "options"), ["n_startup", "startup_trials", "population"]),
    (("space", "options"), ["min_channel", "mixed", "max_depth"]),
    (("dataset", "options"), ["split_sed", "fraction", "root"]),
    (("space", "dimensions", "prune/ratio"), ["lo", "hi", "steps", "choices"]),
    (("evaluator", "options", "latency"), ["thread", "warmups"]),
]


def unknown_key(rng, config):
    parent, keys = rng.choice(UNKNOWN_KEYS)
    key = rng.choice(keys)
    value = rng.choice([1, "x", 0.5, True])
    if parent == ("evaluator", "options", "latency"):
        _set(config, parent, {"threads": 1, key: value})
    else:
        _set(config, (*parent, key), value)
    path = _dotted((*parent, key))
    if parent and parent[-1] == "options" or parent == ("evaluator", "options", "latency"):
        expected = ((path,), (_dotted(parent), key), (f"{parent[0]}.options", key))
    elif parent and parent[:2] == ("space", "dimensions"):
        expected = ((path,), (_dotted(parent), key))
    else:
        expected = ((path,) if parent else (f"{key}:",),)
    return {"path": path, "value": value, "expected": expected}


def unknown_name(rng, config):
    section = rng.choice(sorted(NAMES))
    name = typo(rng, rng.choice(NAMES[section]), avoid=sum(NAMES.values(), []))
    keys = (section, "name")
    result = {"path": _dotted(keys), "value": name,
              "expected": ((_dotted(keys), name),)}
    if section == "strategy" and rng.random() < 0.3:
        result["argv"] = ("--strategy", name)
    else:
        _set(config, keys, name)
    return result


def _dimension(config, key: str, spec: dict[str, Any]) -> dict[str, Any]:
    config["space"]["dimensions"][key] = spec
    keys = ("space", "dimensions", key)
    return {"path": _dotted(keys), "value": spec, "expected": ((_dotted(keys),),)}


def low_above_high(rng, config):
    key = rng.choice(sorted(NUMERIC))
    kind, lo, hi = NUMERIC[key]
    if kind == "int":
        low = rng.randint(lo + 1, hi)
        high = rng.randint(lo, low - 1)
    else:
        a, b = sorted(rng.sample(range(int(lo * 100), int(hi * 100) + 1), 2))
        low, high = b / 100, a / 100
    return _dimension(config, key, {"type": kind, "low": low, "high": high})


def empty_choices(rng, config):
    return _dimension(config, rng.choice(CATEGORICAL), {"type": "categorical", "choices": []})


def prune_to_one(rng, config):
    key = "prune/sparsity" if rng.random() < 0.2 else "prune/ratio"
    low = rng.choice([0.0, 0.1, 0.2, 0.5])
    spec = rng.choice([
        {"type": "float", "low": low, "high": 1.0},
        {"type": "float", "low": 0.0, "high": 1.0, "step": 0.25},
        {"type": "categorical", "choices": [low, 1.0]},
        {"type": "float", "low": low, "high": rng.choice([1.2, 2.0])},
        {"type": "float", "low": -0.1, "high": 0.5},
        {"type": "int", "low": 0, "high": 1},
    ])
    return _dimension(config, key, spec)


def bad_bits(rng, config):
    bad = rng.choice([0, 1, 33, "8", 16, 64, -8, 8.5, True])
    choices = sorted({4, 8, 32} - {bad}, key=str) if not isinstance(bad, str) else [4, 32]
    choices = [*choices, bad]
    rng.shuffle(choices)
    spec = rng.choice([
        {"type": "categorical", "choices": choices},
        {"type": "categorical", "choices": choices},
        {"type": "int", "low": rng.choice([0, 1]), "high": 8},
        {"type": "int", "low": 8, "high": rng.choice([33, 64])},
    ])
    return _dimension(config, "quant/bits", spec)


def unknown_dimension(rng, config):
    name = rng.choice([
        typo(rng, rng.choice(DIMENSIONS), avoid=DIMENSIONS),
        rng.choice(["arch/layers", "foo", "quant/bit", "prune/ratios", "distill/temp",
                    "arch/depht", "arch", "lowrank"]),
    ])
    return _dimension(config, name, {"type": "categorical", "choices": [1, 2]})


def malformed_dimension(rng, config):
    key, spec = rng.choice([
        ("prune/ratio", {"type": rng.choice(["uniform", "choice", None, 5])}),
        ("prune/ratio", {"type": "float", "low": 0.1}),
        ("arch/depth", {"type": "int", "high": 3}),
        ("arch/width", {"type": "categorical"}),
        ("arch/width", {"type": "categorical", "choices": None}),
        ("arch/width", {"type": "categorical", "choices": "8,16"}),
        ("arch/width", {"type": "categorical", "choices": [8, 8]}),
        ("arch/width", {"type": "categorical", "choices": [[8], [16]]}),
        ("distill/alpha", {"type": "float", "low": 0.0, "high": 0.9, "log": True}),
        ("distill/alpha", {"type": "float", "low": 0.1, "high": 0.9, "log": "yes"}),
        ("distill/alpha", {"type": "float", "low": 0.0, "high": 0.5, "step": 0.3}),
        ("distill/alpha", {"type": "float", "low": 0.0, "high": 0.5, "step": -0.1}),
        ("distill/alpha", {"type": "float", "low": "0", "high": 0.5}),
        ("arch/depth", {"type": "int", "low": 1.5, "high": 3}),
        ("arch/depth", {"type": "int", "low": 1, "high": 4, "step": 2}),
        ("arch/depth", {"type": "int", "low": 1, "high": 3, "step": 0}),
        ("arch/depth", {"type": "int", "low": 1, "high": 3, "step": -1}),
        ("arch/kernel", {"type": "categorical", "choices": [3, 4]}),
        ("prune/ratio", {"type": "categorical", "choices": ["0.5", "0.2"]}),
        ("arch/width", {"type": "int", "low": 0, "high": 8}),
    ])
    return _dimension(config, key, copy.deepcopy(spec))


def bad_constraint_text(rng, config):
    text = rng.choice(["latency_ms < = 2", "latency_ms", "<= 2", "latency_ms <= fast",
                       "latency_ms == 2", "latency_ms < 2", "latency_ms <= nan",
                       "latency_ms <= inf", "accuracy >= 0.9 and size_bytes <= 1000", "",
                       "size_bytes =< 1000", 5, None,
                       # parse, but can never be met: accuracy is a fraction, sizes >= 0
                       "accuracy >= 90", "accuracy <= 1.5", "size_bytes <= -1",
                       "latency_ms <= -0.5"])
    index = rng.randint(0, len(config["constraints"]))
    config["constraints"].insert(index, text)
    return {"path": f"constraints[{index}]", "value": text,
            "expected": ((f"constraints[{index}]",), (f"constraints.{index}",))}


def constraint_not_an_objective(rng, config):
    metric = rng.choice(["latency_s", "acc", "size_kb", "params", "Accuracy", "latency",
                         "size", "macs", typo(rng, "latency_ms", avoid=["latency_ms"])])
    text = f"{metric} {rng.choice(['<=', '>='])} {rng.choice([1, 0.5, 1000])}"
    index = rng.randint(0, len(config["constraints"]))
    config["constraints"].insert(index, text)
    return {"path": f"constraints[{index}]", "value": text,
            "expected": ((f"constraints[{index}]", metric),)}


def bad_run_name(rng, config):
    name = rng.choice(["a/b", "../x", "..", "/abs/path", "/tmp/x", "./x", ".hidden", "",
                       "a" * 129, "name with space", "x\\y", "~user", "runs/../../etc",
                       "ok/", "_under"])
    result = {"path": "name", "value": name, "expected": field_tokens(["name"])}
    if rng.random() < 0.3 and name:
        result["argv"] = ("--name", name)
    else:
        config["name"] = name
    return result


def config_file(rng, config):
    kind = rng.choice(["missing", "missing", "directory", "yaml-syntax", "binary", "list",
                       "scalar"])
    content: bytes | None = {
        "missing": None,
        "directory": None,
        "yaml-syntax": b"trials: [1, 2\nseed: {\n",
        "binary": bytes(range(128, 256)) * 4,
        "list": b"- trials: 4\n- seed: 0\n",
        "scalar": b"just a sentence\n",
    }[kind]
    return {"path": "--config", "value": kind, "content": content,
            "is_dir": kind == "directory", "expected": (("--config",),)}


def bad_import_path(rng, config):
    section = rng.choice(sorted(NAMES))
    attr = rng.choice(["X", "Thing", "Plugin"])
    path = rng.choice([f"nosuch.module:{attr}", f"nascompress.nosuchmodule:{attr}",
                       f"nascompress.{section}s:NoSuch{attr}", "nascompress:", f":{attr}",
                       "collections:OrderedDict", f"nosuch.module:{attr}"])
    keys = (section, "name")
    if section == "space":
        config["space"].pop("dimensions")
        config["space"].pop("options")
    if section == "evaluator":
        config["evaluator"]["options"] = {}
    if section == "strategy":
        config["strategy"]["options"] = {}
    if section == "dataset":
        config["dataset"]["options"] = {}
    result = {"path": _dotted(keys), "value": path, "expected": ((_dotted(keys),),)}
    if section == "strategy" and rng.random() < 0.3:
        result["argv"] = ("--strategy", path)
    else:
        config[section]["name"] = path
    return result


def faulty_space_plugin(rng, config):
    from bench.faults.plugins import FAULTY_SPACES

    path = f"bench.faults.plugins:{rng.choice(FAULTY_SPACES)}"
    config["space"] = {"name": path}
    return {"path": "space.name", "value": path,
            "expected": (("space.name", path), ("space.dimensions", path))}


def latency_out_of_range(rng, config):
    choice = rng.randrange(9)
    if choice == 0:
        low = rng.randint(5, 50)
        config["latency"].update(min_repeats=low, max_repeats=rng.randint(1, low - 1))
        return {"path": "latency.max_repeats", "value": config["latency"]["max_repeats"],
                "expected": (("latency.max_repeats",),)}
    if choice == 1:
        low = rng.randint(5, 50)
        config["evaluator"]["options"]["latency"] = {"min_repeats": low, "max_repeats": 2}
        keys = ("evaluator", "options", "latency", "max_repeats")
        return {"path": _dotted(keys), "value": 2, "expected": field_tokens(keys)}
    if choice == 2:
        key = rng.choice(["threads", "batch_size", "min_repeats"])
        config["evaluator"]["options"]["latency"] = {key: rng.choice([0, -1])}
        keys = ("evaluator", "options", "latency", key)
        return {"path": _dotted(keys), "value": 0, "expected": field_tokens(keys)}
    if choice == 3:
        value = rng.choice(["tensorrt", "tflite", "ORT"])
        config["evaluator"]["options"]["latency_runtime"] = value
        keys = ("evaluator", "options", "latency_runtime")
        return {"path": _dotted(keys), "value": value, "expected": field_tokens(keys)}
    if choice == 4:
        value = rng.choice(["tpu", "gpu", "mps", "cuda:0"])
        config["latency"]["device"] = value
        return {"path": "latency.device", "value": value,
                "expected": (("latency.device",),)}
    keys, values = rng.choice([
        (("latency", "threads"), [0, -4]), (("latency", "batch_size"), [0, -1]),
        (("latency", "warmup"), [-1, -10]), (("latency", "target_rel_iqr"), [0.0, -0.5]),
        (("latency", "time_cap_s"), [0, -1.0]), (("latency", "min_repeats"), [0]),
    ])
    value = rng.choice(values)
    _set(config, keys, value)
    return {"path": _dotted(keys), "value": value, "expected": field_tokens(keys)}


def negative_resources(rng, config):
    key = rng.choice(["cpu", "cpu", "gpu"])
    value = rng.choice([0, -1, -0.5, -8]) if key == "cpu" else rng.choice([-1, -0.25, -2])
    config["resources"][key] = value
    return {"path": f"resources.{key}", "value": value,
            "expected": ((f"resources.{key}",),)}


def bad_address(rng, config):
    address = rng.choice(["127.0.0.1:1", "localhost:1", "ray://127.0.0.1:1",
                          "localhost", "127.0.0.1", "127.0.0.1:", ":6379", "127.0.0.1:0",
                          "127.0.0.1:70000", "127.0.0.1:abc", "ray://", "", " ",
                          "127.0.0.1:6379 ", "127.0.0.1:-5", "with runner local"])
    result = {"path": "address", "value": address, "expected": field_tokens(["address"])}
    if address == "with runner local":  # a well-formed address the local runner ignores
        config.update(runner="local", address="127.0.0.1:6379")
    elif address.strip() and not address.startswith("-") and rng.random() < 0.4:
        result["argv"] = ("--address", address)
    else:
        config["address"] = address
    return result


def bad_plugin_options(rng, config):
    choice = rng.randrange(7)
    if choice == 0:
        fractions = rng.choice([[0.5, 0.5], [0.7, 0.2, 0.2], [1.0, 0.0, 0.0], [-0.1, 0.6, 0.5]])
        config["dataset"]["options"]["fractions"] = fractions
        keys = ("dataset", "options", "fractions")
        return {"path": _dotted(keys), "value": fractions,
                "expected": (("dataset.options", "fractions"),)}
    if choice == 1:
        config["space"]["options"]["min_channels"] = rng.choice([100, 65, 1000])
        keys = ("space", "options", "min_channels")
        return {"path": _dotted(keys), "value": config["space"]["options"]["min_channels"],
                "expected": (*field_tokens(keys), ("space", "min_channels"))}
    if choice == 2:
        value = rng.choice(["tpe2", "cmaes", "GP"])
        config["strategy"]["options"]["sampler"] = value
        keys = ("strategy", "options", "sampler")
        return {"path": _dotted(keys), "value": value, "expected": field_tokens(keys)}
    if choice == 3:
        value = rng.choice(["magnitude", "L1", "random"])
        config["evaluator"]["options"]["importance"] = value
        keys = ("evaluator", "options", "importance")
        return {"path": _dotted(keys), "value": value, "expected": field_tokens(keys)}
    teacher = rng.choice([
        {"params": {"arch/depth": 3}, "model": "x:y"},
        {"paramz": {"arch/depth": 3}},
        {},
        {"params": {"arch/depth": 3}, "checkpoint": "/nonexistent/teacher.pt"},
    ])
    config["evaluator"]["options"]["teacher"] = teacher
    keys = ("evaluator", "options", "teacher")
    return {"path": _dotted(keys), "value": teacher, "expected": field_tokens(keys)}


MUTATIONS: dict[str, Mutation] = {
    "wrong_type": wrong_type,
    "non_positive": non_positive,
    "unknown_key": unknown_key,
    "unknown_name": unknown_name,
    "low_above_high": low_above_high,
    "empty_choices": empty_choices,
    "prune_to_one": prune_to_one,
    "bad_bits": bad_bits,
    "unknown_dimension": unknown_dimension,
    "malformed_dimension": malformed_dimension,
    "bad_constraint_text": bad_constraint_text,
    "constraint_not_an_objective": constraint_not_an_objective,
    "bad_run_name": bad_run_name,
    "config_file": config_file,
    "bad_import_path": bad_import_path,
    "faulty_space_plugin": faulty_space_plugin,
    "latency_out_of_range": latency_out_of_range,
    "negative_resources": negative_resources,
    "bad_address": bad_address,
    "bad_plugin_options": bad_plugin_options,
}


def base_config(rng: random.Random, index: int) -> dict[str, Any]:
    """:data:`BASE` with harmless seeded variations (still valid), so no two configs match."""
    config = copy.deepcopy(BASE)
    config.update(name=f"{RUN_NAME}-{index:03d}", seed=rng.randrange(10_000),
                  trials=rng.randint(2, 50))
    return config


class _Deals(random.Random):
    """A seeded ``Random`` whose ``choice`` deals each option once before repeating any.

    So that 10 draws from a list of 10 variants cover all of them, where independent
    draws would leave about a third out.
    """

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self._decks: dict[str, list[int]] = {}

    def choice(self, seq):
        key = repr(seq)
        deck = self._decks.get(key)
        if not deck:
            deck = list(range(len(seq)))
            self.shuffle(deck)
            self._decks[key] = deck
        return seq[deck.pop()]


def generate(count: int = COUNT, *, seed: int = SEED) -> list[Case]:
    """``count`` malformed configs, the categories taken in turn (10 each for 200)."""
    rng = _Deals(seed)
    categories = list(MUTATIONS)
    cases = []
    for index in range(count):
        category = categories[index % len(categories)]
        config = base_config(rng, index)
        result = MUTATIONS[category](rng, config)
        content = result["content"] if "content" in result else _dump(config)
        cases.append(Case(index=index, category=category, path=result["path"],
                          value=repr(result["value"]), content=content,
                          argv=tuple(result.get("argv", ())), expected=result["expected"],
                          is_dir=result.get("is_dir", False)))
    return cases


# -- running one case ---------------------------------------------------------------------


class SilentAcceptance(Exception):
    """A runner was reached: the config was accepted."""


def _refuse(*args, **kwargs):
    raise SilentAcceptance("a runner was started for this config")


RUNNER_HOOKS = (("nascompress.search.controller", "run_ray"),
                ("nascompress.search.controller", "init_ray"),
                ("nascompress.search.local", "run_local"))


@contextlib.contextmanager
def runners_refused() -> Iterator[None]:
    """Make every runner raise :class:`SilentAcceptance` (outside pytest's monkeypatch)."""
    import importlib

    saved = []
    for module_name, attr in RUNNER_HOOKS:
        module = importlib.import_module(module_name)
        saved.append((module, attr, getattr(module, attr)))
        setattr(module, attr, _refuse)
    try:
        yield
    finally:
        for module, attr, original in saved:
            setattr(module, attr, original)


def write_case(case: Case, folder: Path) -> list[str]:
    """Write the case's config under ``folder``; return the CLI arguments for it."""
    path = folder / f"config-{case.index:03d}.yaml"
    if case.is_dir:
        path.mkdir(parents=True, exist_ok=True)
    elif case.content is not None:
        path.write_bytes(case.content)
    output = folder / "out"
    return ["search", "--config", str(path), "--output-dir", str(output), "--quiet",
            *case.argv]


@dataclass
class Verdict:
    """What happened to one case, and what is wrong with it (``problems`` empty: fine)."""

    case: Case
    code: int | None
    stderr: str
    silent: bool = False
    traceback: bool = False
    named: bool = False
    problems: list[str] = field(default_factory=list)


def judge(case: Case, code: int | None, stderr: str, *, silent: bool = False,
          crashed: BaseException | None = None) -> Verdict:
    """Check one outcome against the rules in the module docstring."""
    lines = stderr.strip().splitlines()
    message = lines[0] if lines else ""
    verdict = Verdict(case, code, stderr, silent=silent,
                      traceback="Traceback" in stderr or crashed is not None,
                      named=len(lines) == 1 and names_field(message, case.expected))
    if silent:
        verdict.problems.append("silently accepted (a runner was reached)")
    if crashed is not None:
        verdict.problems.append(f"raised {type(crashed).__name__}: {crashed}")
    if code != 2:
        verdict.problems.append(f"exit status {code}, expected 2")
    if len(lines) != 1:
        verdict.problems.append(f"{len(lines)} stderr lines, expected 1")
    if not message.startswith(ERROR_PREFIX):
        verdict.problems.append(f"stderr does not start with {ERROR_PREFIX!r}")
    if "Traceback" in stderr:
        verdict.problems.append("a traceback was printed")
    if not verdict.named and not silent:
        verdict.problems.append(f"the message does not name {case.path!r} "
                                f"(any of {case.expected})")
    return verdict


def run_case(case: Case, folder: Path) -> Verdict:
    """Run one case through ``nascompress.cli.main`` in this process, runners refused."""
    from nascompress import cli

    argv = write_case(case, folder)
    stderr = io.StringIO()
    code, silent, crashed = None, False, None
    with runners_refused(), contextlib.redirect_stderr(stderr), \
            contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(argv)
        except SilentAcceptance:
            silent = True
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception as exc:  # noqa: BLE001 - a crash is what we are looking for
            crashed = exc
    return judge(case, code, stderr.getvalue(), silent=silent, crashed=crashed)
