"""Build tabular benchmarks: every point of a reduced space, measured by the real evaluator.

Usage (from the repository root)::

    .venv/bin/python bench/tabular/build.py digits-cnn-3x     # one table
    .venv/bin/python bench/tabular/build.py --list            # the tables and their sizes

Each table is a reduced space (:data:`TABLES`): a few values of some dimensions, the
others pinned. Every point of its grid is scored, compressed, written as an artifact
and timed by the table's evaluator, in this process, exactly as a search trial would be
(``prepare`` once, then ``evaluate`` per point), and one JSON line per point is appended
to ``<name>.jsonl`` next to this file: the free params, the measured validation
accuracy, the artifact's byte count, the measured latency (median, with its kind:
``fp32``, ``int8`` or ``simulated`` below 8 bits), the seconds it took and the seed.

Two kinds of table:

* ``image-cnn`` tables, ``compress-train`` evaluator: every point trained stand-alone.
* ``mobilenet`` tables, ``supernet`` evaluator (``"accuracy_source": "inherited"`` in
  every row): one supernet over the table's reduced space is trained by ``prepare``
  (kept under ``bench/tabular/.supernets/<name>/``, so a rebuild reuses it), and every
  point is scored with weights inherited from it, as a weight-sharing search's trials
  are. Accuracy, size and latency are measured; the accuracy is inherited, not trained:
  it is the landscape a strategy searches in weight-sharing mode, not the one of
  stand-alone training. Points the space's constraint rejects are recorded as invalid. The build
is resumable: points already in the file are skipped, so an interrupted build continues
where it stopped.

Every point is trained with the same seed (:data:`SEED`, passed as the trial seed and
to ``prepare``), so the differences between points come from their configurations, not
from different initialisations; the accuracy of one point is still one training run
(its seed-to-seed spread is not in the table). Latency is measured once per point, on
the machine that built the table, with the evaluator's default set-up (CPU, 1 thread,
batch 16, ONNX Runtime): a table keeps that machine's noise.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from itertools import product
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SEED = 0

#: The tables: dataset, evaluator options, the free dimensions (values each) and the
#: pinned ones. Any dimension of ``image-cnn`` not named is pinned to ``BASE`` (of a
#: ``mobilenet`` table, to ``MOBILENET_BASE``).
BASE: dict[str, Any] = {
    "arch/depth": 1, "arch/width": 16, "arch/kernel": 3, "prune/ratio": 0.0,
    "prune/importance": "l1", "prune/sparsity": 0.0, "quant/bits": 32,
    "quant/scheme": "symmetric", "quant/activations": 32, "lowrank/ratio": 1.0,
    "distill/alpha": 0.0, "distill/temperature": 4.0, "distill/feature_weight": 0.0,
}

#: The pinned values of a ``mobilenet`` table (the default four stages): mid-range
#: architecture, every compression knob off but the free ones.
MOBILENET_BASE: dict[str, Any] = {
    "arch/width_mult": 0.75,
    **{f"arch/stage{s}/{key}": value for s in range(4)
       for key, value in (("depth", 2), ("expand", 4), ("kernel", 3), ("se", 0))},
    **{k: v for k, v in BASE.items() if not k.startswith("arch/")},
}

TABLES: dict[str, dict[str, Any]] = {
    # Few dimensions with several values each; 3 epochs, so accuracy saturates (many
    # points at or near 1.0 on digits' 270 validation images).
    "digits-cnn-3x": {
        "dataset": "digits",
        "evaluator": {"epochs": 3, "finetune_epochs": 1},
        "free": {
            "arch/depth": [1, 2, 3],
            "arch/width": [8, 16, 32, 64],
            "arch/kernel": [3, 5],
            "prune/ratio": [0.0, 0.25, 0.5],
            "quant/bits": [2, 4, 6, 8, 32],
        },
    },
    # Nine dimensions with two values each, one training epoch: unsaturated accuracy and
    # interactions between many knobs (sparsity, low rank, activation bits, distillation).
    "digits-9d-1x": {
        "dataset": "digits",
        "evaluator": {"epochs": 1, "finetune_epochs": 1, "teacher_epochs": 10},
        "free": {
            "arch/depth": [1, 3],
            "arch/width": [8, 32],
            "arch/kernel": [3, 5],
            "prune/ratio": [0.0, 0.5],
            "prune/sparsity": [0.0, 0.6],
            "quant/bits": [4, 8],
            "quant/activations": [8, 32],
            "lowrank/ratio": [0.5, 1.0],
            "distill/alpha": [0.0, 0.7],
        },
    },
    # Seven dimensions with three values each (2187 points), two epochs: large enough
    # for a budget of 300 to be a small part of the table.
    "digits-7d-3x": {
        "dataset": "digits",
        "evaluator": {"epochs": 2, "finetune_epochs": 1, "teacher_epochs": 10},
        "free": {
            "arch/depth": [1, 2, 3],
            "arch/width": [8, 16, 32],
            "prune/ratio": [0.0, 0.25, 0.5],
            "prune/sparsity": [0.0, 0.3, 0.6],
            "quant/bits": [4, 8, 32],
            "lowrank/ratio": [0.5, 0.75, 1.0],
            "distill/alpha": [0.0, 0.45, 0.9],
        },
    },
    # mnist5k with six dimensions (486 points, one epoch + one of fine-tuning): large
    # enough for a budget of 100 on real 28x28 data, trained stand-alone.
    "mnist5k-cnn-6d": {
        "dataset": "mnist5k",
        "evaluator": {"epochs": 1, "finetune_epochs": 1},
        "free": {
            "arch/depth": [1, 2, 3],
            "arch/width": [8, 16, 32],
            "arch/kernel": [3, 5],
            "prune/ratio": [0.0, 0.25, 0.5],
            "quant/bits": [2, 4, 8],
            "lowrank/ratio": [0.5, 0.75, 1.0],
        },
    },
    # Weight sharing: MobileNet stages on mnist5k, every point scored with weights
    # inherited from one 5-epoch supernet over this reduced space (elastic width, depth,
    # expansion, kernel and bits). 972 points of about a second each.
    "mnist5k-mbv3-ws": {
        "dataset": "mnist5k",
        "space": "mobilenet",
        "evaluator_name": "supernet",
        "evaluator": {"epochs": 5, "warmup_epochs": 1, "finalists": 0, "batch_size": 64,
                      "lr": 3e-3},
        "free": {
            "arch/width_mult": [0.5, 0.75, 1.0],
            "arch/stage1/depth": [1, 2, 3],
            "arch/stage2/depth": [1, 2, 3],
            "arch/stage2/expand": [2, 4, 6],
            "arch/stage3/kernel": [3, 5, 7],
            "quant/bits": [2, 4, 8, 32],
        },
    },
    # mnist5k (28x28, 5000 images), stand-alone: built in 3.6 min (1.3 s a point, median).
    "mnist5k-cnn-1x": {
        "dataset": "mnist5k",
        "evaluator": {"epochs": 1, "finetune_epochs": 1},
        "free": {
            "arch/depth": [1, 2, 3],
            "arch/width": [8, 16, 32],
            "arch/kernel": [3, 5],
            "prune/ratio": [0.0, 0.5],
            "quant/bits": [2, 4, 8, 32],
        },
    },
}


def base(name: str) -> dict[str, Any]:
    """The pinned values of table ``name``'s space."""
    return MOBILENET_BASE if TABLES[name].get("space") == "mobilenet" else BASE


def table_space(name: str):
    """The reduced space of table ``name`` (free dims as categoricals)."""
    from nascompress.spaces import Categorical, ImageCNNSpace, MobileNetSpace

    spec = TABLES[name]
    dims = {key: Categorical([value]) for key, value in base(name).items()}
    dims.update({key: Categorical(list(values)) for key, values in spec["free"].items()})
    space = MobileNetSpace if spec.get("space") == "mobilenet" else ImageCNNSpace
    return space(dimensions=dims)


def table_evaluator(name: str):
    """Table ``name``'s evaluator, validated."""
    from nascompress.evaluators import CompressTrainEvaluator, SupernetEvaluator

    spec = TABLES[name]
    kind = {"compress-train": CompressTrainEvaluator, "supernet": SupernetEvaluator}[
        spec.get("evaluator_name", "compress-train")]
    evaluator = kind(**spec["evaluator"])
    evaluator.validate()
    return evaluator


def grid(name: str) -> list[dict[str, Any]]:
    free = TABLES[name]["free"]
    return [dict(zip(free, values, strict=True)) for values in product(*free.values())]


def point_key(free_params: dict[str, Any]) -> str:
    return json.dumps(free_params, sort_keys=True)


def load_rows(name: str) -> list[dict[str, Any]]:
    path = HERE / f"{name}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def build(name: str, *, limit: int | None = None) -> None:
    import torch

    from nascompress.data import load_digits_splits, load_mnist5k_splits
    from nascompress.evaluators import Prepared, TrialContext

    torch.set_num_threads(1)
    spec = TABLES[name]
    data = {"digits": load_digits_splits, "mnist5k": load_mnist5k_splits}[spec["dataset"]]()
    space = table_space(name)
    evaluator = table_evaluator(name)
    # A supernet is kept beside the tables, so a resumed build reuses it.
    keep = HERE / ".supernets" / name if spec.get("evaluator_name") == "supernet" else None
    path = HERE / f"{name}.jsonl"
    done = {point_key(row["params"]) for row in load_rows(name)}
    todo = [p for p in grid(name) if point_key(p) not in done]
    print(f"{name}: {len(done)} points done, {len(todo)} to go", flush=True)
    if limit is not None:
        todo = todo[:limit]
    if not todo:
        return
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        prepared = Prepared.of(evaluator.prepare(space=space, dataset=data, seed=SEED,
                                                 workdir=keep or Path(tmp)))
        shared = prepared.shared
        print(f"prepare: {time.perf_counter() - started:.1f} s {prepared.summary or ''}",
              flush=True)
        for number, free in enumerate(todo):
            params = {**base(name), **free}
            row: dict[str, Any] = {"params": free, "seed": SEED}
            reason = space.check(params)
            if reason is not None:
                row.update(state="INVALID", error=reason)
            else:
                folder = Path(tmp) / f"p{number}"
                folder.mkdir()
                t0 = time.perf_counter()
                result = evaluator.evaluate(params, space=space, dataset=data, context=TrialContext(
                    trial_id=f"p{number}", seed=SEED, artifact_dir=folder, shared=shared))
                row.update(
                    state="COMPLETE", accuracy=float(result["accuracy"]),
                    size_bytes=float(result["size_bytes"]),
                    latency_ms=float(result["latency_ms"]),
                    latency_kind=result.get("latency_kind"),
                    seconds=round(time.perf_counter() - t0, 3),
                )
                if "accuracy_source" in result:
                    row["accuracy_source"] = result["accuracy_source"]
                for item in folder.iterdir():
                    item.unlink()
            with path.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            if number % 20 == 0:
                print(f"  {number + 1}/{len(todo)} {row}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"tables to build: {', '.join(TABLES)}")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--limit", type=int, default=None, help="build at most this many points")
    args = parser.parse_args(argv)
    if args.list or not args.names:
        for name in TABLES:
            print(f"{name}: {len(grid(name))} points, {len(load_rows(name))} built")
        return 0
    print(f"python {platform.python_version()} on {platform.machine()}, seed {SEED}")
    for name in args.names:
        if name not in TABLES:
            raise SystemExit(f"unknown table {name!r}; known: {', '.join(TABLES)}")
        build(name, limit=args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
