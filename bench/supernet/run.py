"""Weight sharing's evidence: rank fidelity and cost per candidate (mobilenet, mnist5k).

1. Train the mobilenet space's supernet once (timed).
2. Sample ``--subnets`` random subnets (architecture only, float weights, no other
   compression) and score each with inherited weights through the ``supernet``
   evaluator (extract, BatchNorm recalibration, artifact, measured latency: a whole
   trial, timed).
3. Train each of the same subnets stand-alone with the same recipe (the
   ``compress-train`` evaluator: Adam, the supernet's learning rate, batch size and
   epochs, no fine-tune), timed.
4. Fine-tune each subnet as a finalist would be (``context.stage == "final"``:
   extracted, ``--finetune-epochs`` distilled from the largest subnet), timed.
5. Kendall tau between inherited and stand-alone accuracy, and between fine-tuned and
   stand-alone accuracy, each with a bootstrap spread over the subnets (resampled with
   replacement).

Prints a markdown table; ``--out`` appends it to a file. Every number is measured by
this script; a run with fewer than 20 subnets or a smaller space says "reduced".

    python bench/supernet/run.py --subnets 20 --epochs 10 --out bench/supernet/results.md
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

#: The subnets are architectures only: every other knob pinned to "off".
PLAIN = {"prune/ratio": {"type": "float", "low": 0.0, "high": 0.0},
         "prune/sparsity": {"type": "float", "low": 0.0, "high": 0.0},
         "lowrank/ratio": {"type": "float", "low": 1.0, "high": 1.0},
         "quant/bits": {"type": "categorical", "choices": [32]},
         "quant/scheme": {"type": "categorical", "choices": ["symmetric"]},
         "quant/activations": {"type": "categorical", "choices": [32]},
         "distill/alpha": {"type": "float", "low": 0.0, "high": 0.0},
         "distill/feature_weight": {"type": "float", "low": 0.0, "high": 0.0}}


def draw_subnets(space, count: int, seed: int) -> list[dict]:
    """``count`` distinct valid random points of ``space`` (seeded)."""
    rng = random.Random(seed)
    dims = space.dimensions()
    drawn: list[dict] = []
    while len(drawn) < count:
        params = {k: d.sample(rng) for k, d in dims.items()}
        if space.check(params) is None and params not in drawn:
            drawn.append(params)
    return drawn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--subnets", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10,
                        help="supernet epochs, and the stand-alone trainings' epochs")
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--finetune-epochs", type=int, default=1,
                        help="the finalists' fine-tune (0: skip the fine-tuned tau)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--small-space", action="store_true",
                        help="3 narrow stages of depth <= 2 (a reduced run)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--rows-out", default=None,
                        help="per-subnet figures as JSON (what ceiling.py --rows reads)")
    args = parser.parse_args()

    import torch
    from scipy.stats import kendalltau

    from nascompress.data import DATASETS
    from nascompress.evaluators import CompressTrainEvaluator, SupernetEvaluator, TrialContext
    from nascompress.spaces import MobileNetSpace

    torch.set_num_threads(1)
    dataset = DATASETS.resolve(args.dataset, field="dataset")()
    options = ({"stages": [[8, 1], [16, 2], [24, 2]], "max_depth": 2, "stem_channels": 8,
                "head_channels": 64} if args.small_space else {})
    space = MobileNetSpace(dimensions=PLAIN, **options)
    latency = {"min_repeats": 5, "max_repeats": 20, "warmup": 2, "time_cap_s": 0.5}
    common = {"batch_size": 64, "lr": 3e-3, "threads": 1, "latency": latency}
    supernet = SupernetEvaluator(epochs=args.epochs, warmup_epochs=args.warmup_epochs,
                                 finalists=0, finetune_epochs=max(1, args.finetune_epochs),
                                 **common)
    standalone = CompressTrainEvaluator(epochs=args.epochs, finetune_epochs=0, **common)
    for evaluator in (supernet, standalone):
        evaluator.configure_latency(setup=evaluator.latency, runtime="onnxruntime")
        evaluator.validate()

    work = Path(tempfile.mkdtemp(prefix="bench-supernet-"))
    started = time.perf_counter()
    prepared = supernet.prepare(space=space, dataset=dataset, seed=args.seed, workdir=work)
    supernet_s = time.perf_counter() - started
    print(prepared.summary, flush=True)

    subnets = draw_subnets(space, args.subnets, args.seed)

    rows = []
    for index, params in enumerate(subnets):
        context = TrialContext(trial_id=f"s{index}", seed=args.seed, artifact_dir=work / "a",
                               shared=prepared.shared)
        clock = time.perf_counter()
        inherited = supernet.evaluate(params, space=space, dataset=dataset, context=context)
        inherited_s = time.perf_counter() - clock
        clock = time.perf_counter()
        alone = standalone.evaluate(params, space=space, dataset=dataset, context=context)
        alone_s = time.perf_counter() - clock
        tuned, tuned_s = float("nan"), float("nan")
        if args.finetune_epochs:
            final = TrialContext(trial_id=f"f{index}", seed=args.seed, artifact_dir=work / "a",
                                 shared=prepared.shared, stage="final")
            clock = time.perf_counter()
            tuned = supernet.evaluate(params, space=space, dataset=dataset,
                                      context=final)["accuracy"]
            tuned_s = time.perf_counter() - clock
        rows.append((inherited["accuracy"], alone["accuracy"], inherited_s, alone_s, tuned,
                     tuned_s, {k: v for k, v in inherited.items() if k.startswith("time_")}))
        print(f"subnet {index}: inherited {inherited['accuracy']:.4f} ({inherited_s:.2f} s) "
              f"stand-alone {alone['accuracy']:.4f} ({alone_s:.1f} s) "
              f"fine-tuned {tuned:.4f} ({tuned_s:.1f} s)", flush=True)

    inherited_acc = [r[0] for r in rows]
    alone_acc = [r[1] for r in rows]
    tuned_acc = [r[4] for r in rows]

    def tau_with_spread(scores: list[float]) -> tuple[float, float, float, float, int]:
        """tau against the stand-alone accuracies, its bootstrap 95 % interval and std."""
        tau = kendalltau(scores, alone_acc).statistic
        boot_rng = random.Random(args.seed + 1)
        taus = []
        for _ in range(args.bootstrap):
            pick = [boot_rng.randrange(len(rows)) for _ in rows]
            value = kendalltau([scores[i] for i in pick], [alone_acc[i] for i in pick])
            if value.statistic == value.statistic:  # NaN when a resample has no pairs
                taus.append(value.statistic)
        taus.sort()
        return (tau, taus[int(0.025 * len(taus))], taus[int(0.975 * len(taus)) - 1],
                statistics.pstdev(taus), len(taus))

    tau, low, high, spread, resamples = tau_with_spread(inherited_acc)
    tuned_lines = []
    if args.finetune_epochs:
        t_tau, t_low, t_high, t_spread, _ = tau_with_spread(tuned_acc)
        tuned_lines = [
            f"| Kendall tau, fine-tuned ({args.finetune_epochs} epochs) vs stand-alone | "
            f"{t_tau:.3f} [{t_low:.3f}, {t_high:.3f}], std {t_spread:.3f} |",
            f"| fine-tuned accuracy, mean (min-max) | {statistics.mean(tuned_acc):.4f} "
            f"({min(tuned_acc):.4f}-{max(tuned_acc):.4f}) |",
            f"| seconds per finalist (median, whole trial) | "
            f"{statistics.median(r[5] for r in rows):.1f} |",
        ]
    per_candidate = statistics.median(r[2] for r in rows)
    per_standalone = statistics.median(r[3] for r in rows)
    reduced = args.subnets < 20 or args.small_space
    table = "\n".join([
        f"### {'REDUCED run' if reduced else 'Run'}: mobilenet"
        f"{' (small space)' if args.small_space else ''} on {args.dataset}, "
        f"{args.subnets} subnets, {args.epochs} epochs, seed {args.seed}",
        "",
        f"CPU ({platform.machine()}, torch threads 1), {time.strftime('%Y-%m-%d')}. "
        f"Command: `python bench/supernet/run.py {' '.join(sys.argv[1:])}`",
        "",
        "| measure | value |",
        "|---|---|",
        f"| Kendall tau, inherited vs stand-alone accuracy | {tau:.3f} |",
        f"| bootstrap 95% interval of tau ({resamples} resamples) | [{low:.3f}, {high:.3f}] |",
        f"| bootstrap std of tau | {spread:.3f} |",
        f"| inherited accuracy, mean (min-max) | {statistics.mean(inherited_acc):.4f} "
        f"({min(inherited_acc):.4f}-{max(inherited_acc):.4f}) |",
        f"| stand-alone accuracy, mean (min-max) | {statistics.mean(alone_acc):.4f} "
        f"({min(alone_acc):.4f}-{max(alone_acc):.4f}) |",
        f"| seconds per inherited candidate (median, whole trial) | {per_candidate:.2f} |",
        f"| seconds per stand-alone trial (median) | {per_standalone:.1f} |",
        f"| stand-alone / inherited cost | {per_standalone / per_candidate:.0f}x |",
        *[f"| inherited trial, median `{key}` | "
          f"{statistics.median(r[6].get(key, 0.0) for r in rows):.3f} |"
          for key in sorted(rows[0][6])],
        f"| supernet training seconds | {supernet_s:.1f} |",
        f"| supernet training / one stand-alone trial | {supernet_s / per_standalone:.1f}x |",
        *tuned_lines,
        "",
    ])
    print(table)
    if args.rows_out:
        import json

        Path(args.rows_out).write_text(json.dumps({
            "command": f"python bench/supernet/run.py {' '.join(sys.argv[1:])}",
            "date": time.strftime("%Y-%m-%d"),
            "rows": [{"subnet": i, "inherited": r[0], "standalone_seed0": r[1],
                      "inherited_s": r[2], "standalone_s": r[3], "finetuned": r[4],
                      "finetuned_s": r[5]} for i, r in enumerate(rows)]}, indent=1))
    if args.out:
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write(table + "\n")


if __name__ == "__main__":
    main()
