"""Calibration on the train split's first samples against a random sample of it.

A trial calibrates activation ranges (``quant/activations: 8``), Taylor pruning
importance and int8 ONNX on 256 training images. Until 2026-12-08 they were the split's
first 256; ``mnist5k``'s train split is stored in label order, so they were all zeros.
Now they are a fixed-seed random sample (``nascompress.data.train_sample``). This script
runs the same ``compress-train`` trials both ways (the old way by swapping the sampler
back in this process) on ``mnist5k`` with the ``image-cnn`` space, ``--seeds`` seeds
each, and prints the validation accuracies, their paired differences and medians.

``--supernet-workdir DIR`` (a ``supernet/run.py`` work folder and its ``--seed``) also
scores that supernet's largest and smallest subnets the way the supernet's per-epoch
progress line does, with BatchNorm recalibrated on the first 8 batches (before) and on
8 batches of a seeded random order (now).

    python bench/calibration/run.py --seeds 3 --out bench/calibration/results.md
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

#: What every trial shares: a 2-block CNN, short training, no other compression.
BASE = {"arch/depth": 2, "arch/width": 32, "arch/kernel": 3, "prune/ratio": 0.0,
        "prune/importance": "l1", "prune/sparsity": 0.0, "quant/bits": 32,
        "quant/scheme": "symmetric", "quant/activations": 32, "lowrank/ratio": 1.0,
        "distill/alpha": 0.0, "distill/temperature": 1.0, "distill/feature_weight": 0.0}
#: The knobs that use the calibration set.
CASES = {
    "8-bit activations": {"quant/activations": 8},
    "Taylor pruning, ratio 0.5": {"prune/ratio": 0.5, "prune/importance": "taylor"},
}


def first_samples(dataset, count, *, seed=0):
    """The sampler before 2026-12-08: the split's first ``count`` samples."""
    from nascompress.data import take

    return take(dataset.loader("train", batch_size=count), count)


def trial_accuracy(evaluator, params, *, dataset, seed: int, sampler, workdir: Path) -> float:
    """One ``compress-train`` trial's validation accuracy with ``sampler`` as the
    calibration sampler."""
    import nascompress.data as data
    from nascompress.evaluators import TrialContext
    from nascompress.spaces import ImageCNNSpace

    saved = data.train_sample
    data.train_sample = sampler
    try:
        result = evaluator.evaluate(
            params, space=ImageCNNSpace(), dataset=dataset,
            context=TrialContext(trial_id=f"t{seed}", seed=seed, artifact_dir=workdir))
    finally:
        data.train_sample = saved
    return result["accuracy"]


def extremes(workdir: str, seed: int, dataset) -> list[str]:
    """The supernet's largest and smallest subnets as its progress line scores them:
    BatchNorm on the first 8 batches (before) and through ``_score_extremes`` (now)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "supernet"))
    from run import bench_space, supernet_evaluator

    from nascompress.supernet.training import (
        SupernetOptions,
        _score_extremes,
        load_supernet,
        recalibrate_bn,
    )
    from nascompress.training.loop import accuracy

    space = bench_space(joint=True)
    prepared = supernet_evaluator(5).prepare(space=space, dataset=dataset, seed=seed,
                                             workdir=Path(workdir))
    net = load_supernet(prepared.shared["supernet_checkpoint"], space, dataset)
    options = SupernetOptions(batch_size=64, bn_batches=8)
    now = _score_extremes(net, dataset, options, "cpu")
    lines = []
    for name, subnet in (("largest", net.largest()), ("smallest", net.smallest())):
        model = net.extract(subnet)
        recalibrate_bn(model, dataset.loader("train", batch_size=options.batch_size),
                       batches=options.bn_batches)
        before, after = accuracy(model, dataset.loader("val")), now[f"val_accuracy_{name}"]
        lines.append(f"| supernet's {name} subnet (seed {seed}) | {before:.4f} | "
                     f"{after:.4f} | {after - before:+.4f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--supernet-workdir", default=None)
    parser.add_argument("--supernet-seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import tempfile

    import torch

    from nascompress.data import DATASETS, train_sample
    from nascompress.evaluators import CompressTrainEvaluator

    torch.set_num_threads(1)
    dataset = DATASETS.resolve("mnist5k", field="dataset")()
    evaluator = CompressTrainEvaluator(epochs=3, finetune_epochs=1, threads=1)
    evaluator.configure_latency(setup={"min_repeats": 3, "max_repeats": 5, "warmup": 1,
                                       "time_cap_s": 0.2}, runtime="onnxruntime")
    work = Path(tempfile.mkdtemp(prefix="bench-calibration-"))
    lines = ["### Calibration on the first training samples (before) and a random sample "
             "(now), mnist5k, image-cnn", "",
             f"{platform.machine()} CPU, torch threads 1, {time.strftime('%Y-%m-%d')}. "
             f"Command: `python bench/calibration/run.py {' '.join(sys.argv[1:])}`. "
             f"`compress-train`, 3 epochs + 1 of fine-tuning, width 32, depth 2; "
             f"validation accuracy (750 images).", "",
             "| case | seed | first 256 (before) | random 256 (now) | now - before |",
             "|---|---|---|---|---|"]
    for case, knobs in CASES.items():
        differences = []
        for seed in range(args.seeds):
            params = {**BASE, **knobs}
            arm = {"dataset": dataset, "seed": seed, "workdir": work}
            before = trial_accuracy(evaluator, params, sampler=first_samples, **arm)
            now = trial_accuracy(evaluator, params, sampler=train_sample, **arm)
            differences.append(now - before)
            lines.append(f"| {case} | {seed} | {before:.4f} | {now:.4f} | {now - before:+.4f} |")
            print(lines[-1], flush=True)
        lines.append(f"| {case} | median | | | {statistics.median(differences):+.4f} |")
    if args.supernet_workdir:
        lines += ["", "| BatchNorm on 8 x 64 training images | first 8 batches (before) | "
                  "random order (now) | now - before |", "|---|---|---|---|"]
        lines += extremes(args.supernet_workdir, args.supernet_seed, dataset)
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write("\n" + table)


if __name__ == "__main__":
    main()
