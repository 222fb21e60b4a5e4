"""Weight sharing's evidence: rank fidelity and cost per candidate (mobilenet, mnist5k).

1. Train the mobilenet space's supernet once (timed).
2. Sample ``--subnets`` random subnets (architecture only, float weights, no other
   compression) and score each with inherited weights through the ``supernet``
   evaluator (extract, BatchNorm recalibration, artifact, measured latency: a whole
   trial, timed).
3. Train each of the same subnets stand-alone with the same recipe (the
   ``compress-train`` evaluator: Adam, the supernet's learning rate, batch size and
   epochs, no fine-tune), timed. ``--standalone-from ROWS`` instead takes the subnets
   and their stand-alone figures from an earlier run's ``--rows-out`` file and trains
   only the supernet (to judge another supernet recipe against the same reference,
   and with ``reference.py`` against every stand-alone run of those subnets). Given
   several such files (independent draws), the one supernet scores every draw's
   subnets and ``--rows-out`` takes one file per draw, for ``pooled.py``.
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
import bisect
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


#: ``--joint``: the subnets also draw the supernet's shared compression knobs
#: (``quant/bits`` and ``quant/scheme`` over the space's default values); the knobs a
#: supernet does not share (pruning, sparsity, low rank, activation bits, distillation)
#: stay pinned off as in :data:`PLAIN`.
JOINT = {k: v for k, v in PLAIN.items() if k not in ("quant/bits", "quant/scheme")}
SMALL_STAGES = {"stages": [[8, 1], [16, 2], [24, 2]], "max_depth": 2, "stem_channels": 8,
                "head_channels": 64}
LATENCY = {"min_repeats": 5, "max_repeats": 20, "warmup": 2, "time_cap_s": 0.5}
#: The recipe both arms share: Adam, this batch size and learning rate, one thread.
COMMON = {"batch_size": 64, "lr": 3e-3, "threads": 1, "latency": LATENCY}


def bench_space(*, small: bool = False, joint: bool = False):
    """The mobilenet space the subnets are drawn from (and the supernet trains)."""
    from nascompress.spaces import MobileNetSpace

    return MobileNetSpace(dimensions=JOINT if joint else PLAIN,
                          **(SMALL_STAGES if small else {}))


def supernet_evaluator(epochs: int, *, warmup_epochs: int = 1, finetune_epochs: int = 1,
                       random_subnets: int = 2, progressive: bool = False,
                       kd_alpha: float = 1.0):
    """The weight-sharing arm: the ``supernet`` evaluator with the recipe both arms share
    (its supernet found again by ``prepare`` in the same work folder with the same
    arguments)."""
    from nascompress.evaluators import SupernetEvaluator

    evaluator = SupernetEvaluator(epochs=epochs, warmup_epochs=warmup_epochs, finalists=0,
                                  random_subnets=random_subnets, progressive=progressive,
                                  kd_alpha=kd_alpha,
                                  finetune_epochs=max(1, finetune_epochs), **COMMON)
    evaluator.configure_latency(setup=evaluator.latency, runtime="onnxruntime")
    evaluator.validate()
    return evaluator


def standalone_evaluator(epochs: int, *, joint: bool = False):
    """The stand-alone arm: ``compress-train`` with the supernet's recipe and ``epochs``
    epochs in all. Joint subnets train ``epochs - 1`` epochs and then one epoch of
    quantization-aware fine-tuning at their bits (the supernet trained every bit-width
    with its quantizer in the loop; post-training quantization alone would not be the
    same recipe); float subnets get the same split."""
    from nascompress.evaluators import CompressTrainEvaluator

    evaluator = CompressTrainEvaluator(epochs=epochs - 1 if joint else epochs,
                                       finetune_epochs=1 if joint else 0, **COMMON)
    evaluator.configure_latency(setup=evaluator.latency, runtime="onnxruntime")
    evaluator.validate()
    return evaluator


def pooled_tau(a: list[float], b: list[float], groups: list) -> float:
    """Kendall's tau-a over the pairs inside each group only (pairs across groups, and
    pairs tied in both ``a`` and ``b``, such as a subnet a bootstrap drew twice, are left
    out): how well ``a`` ranks subnets that share a bit-width."""
    score = pairs = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            if groups[i] == groups[j] and (a[i], b[i]) != (a[j], b[j]):
                pairs += 1
                product = (a[i] - a[j]) * (b[i] - b[j])
                score += (product > 0) - (product < 0)
    return score / pairs if pairs else float("nan")


def bootstrap_tau(a: list[float], b: list[float], *, resamples: int, seed: int,
                  groups: list | None = None) -> tuple[float, float, float, float, int]:
    """Kendall tau of ``a`` against ``b`` (with ``groups``, :func:`pooled_tau` within
    them), its bootstrap 95 % interval and std over the subnets (resampled with
    replacement, ``seed``), and how many resamples had pairs to compare."""
    from scipy.stats import kendalltau

    def statistic(pick):
        x, y = [a[i] for i in pick], [b[i] for i in pick]
        if groups is not None:
            return pooled_tau(x, y, [groups[i] for i in pick])
        return kendalltau(x, y).statistic

    tau = statistic(range(len(a)))
    rng = random.Random(seed)
    taus = []
    for _ in range(resamples):
        value = statistic([rng.randrange(len(a)) for _ in a])
        if value == value:  # NaN when a resample has no pairs
            taus.append(value)
    taus.sort()
    return (tau, taus[int(0.025 * len(taus))], taus[int(0.975 * len(taus)) - 1],
            statistics.pstdev(taus), len(taus))


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


def emit(table: str, out: str | None) -> None:
    """Print a result table and append it to ``out`` (a markdown file), if given."""
    print(table)
    if out:
        with open(out, "a", encoding="utf-8") as handle:
            handle.write("\n" + table + "\n")


def write_rows(path: str, rows: list[tuple], subnets: list[dict], *,
               command: str | None = None) -> None:
    """The per-subnet figures as JSON (``ceiling.py`` and ``reference.py`` read them
    with :func:`read_rows`); ``command`` is what made them (default: this run)."""
    import json

    Path(path).write_text(json.dumps({
        "command": command or f"python bench/supernet/run.py {' '.join(sys.argv[1:])}",
        "date": time.strftime("%Y-%m-%d"),
        "rows": [{"subnet": i, "inherited": r[0], "standalone_seed0": r[1],
                  "inherited_s": r[2], "standalone_s": r[3], "finetuned": r[4],
                  "finetuned_s": r[5], "params": subnets[i]} for i, r in enumerate(rows)]},
        indent=1))


def read_rows(path: str) -> dict[str, list]:
    """What :func:`write_rows` wrote, by column: ``params`` (``None`` in files written
    before the rows carried them), ``inherited``, ``standalone`` (seed 0), ``bits`` and
    ``finetuned`` (``None`` when the run skipped the fine-tune: its rows hold NaN), and
    ``standalone_s``."""
    import json

    rows = json.loads(Path(path).read_text())["rows"]
    tuned = [r.get("finetuned", float("nan")) for r in rows]
    return {"params": [r.get("params") for r in rows],
            "inherited": [r["inherited"] for r in rows],
            "standalone": [r["standalone_seed0"] for r in rows],
            "bits": [(r.get("params") or {}).get("quant/bits", 32) for r in rows],
            "standalone_s": [r["standalone_s"] for r in rows],
            "finetuned": tuned if all(t == t for t in tuned) else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--subnets", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10,
                        help="supernet epochs, and the stand-alone trainings' epochs")
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--random-subnets", type=int, default=2,
                        help="random subnets per supernet step besides the largest and "
                             "smallest (the evaluator's default: 2)")
    parser.add_argument("--progressive", action="store_true",
                        help="progressive shrinking (the evaluator's option)")
    parser.add_argument("--kd-alpha", type=float, default=1.0,
                        help="weight of the largest's soft labels in the other subnets' "
                             "loss (the evaluator's kd_alpha; default 1.0)")
    parser.add_argument("--finetune-epochs", type=int, default=1,
                        help="the finalists' fine-tune (0: skip the fine-tuned tau)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--small-space", action="store_true",
                        help="3 narrow stages of depth <= 2 (a reduced run)")
    parser.add_argument("--joint", action="store_true",
                        help="subnets draw quant/bits and quant/scheme too (see JOINT)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--rows-out", default=None, nargs="+", metavar="FILE",
                        help="per-subnet figures as JSON (what ceiling.py --rows reads); "
                             "one file per --standalone-from file")
    parser.add_argument("--standalone-from", default=None, nargs="+", metavar="ROWS",
                        help="earlier --rows-out files: their subnets and stand-alone "
                             "figures are reused, not retrained (--epochs is then the "
                             "supernet's alone); several: one supernet scores them all")
    args = parser.parse_args()
    sources = args.standalone_from or []
    if args.rows_out and len(args.rows_out) != max(1, len(sources)):
        raise SystemExit(f"--rows-out: give one file per --standalone-from file "
                         f"({len(sources)}), but got {len(args.rows_out)}")
    earlier = None
    ends = []  # where each --standalone-from file's subnets end in the joined list
    for source in sources:
        read = read_rows(source)
        if any(p is None for p in read["params"]):
            raise SystemExit(f"--standalone-from {source}: its rows carry no "
                             "params; use a file written by a newer run.py --rows-out")
        earlier = read if earlier is None else {
            k: earlier[k] + read[k] for k in ("params", "standalone", "standalone_s")}
        ends.append(len(earlier["params"]))
    if earlier is not None:
        args.subnets = len(earlier["params"])
    bounds = ends or [args.subnets]  # where each rows file's subnets end

    import torch

    from nascompress.data import DATASETS
    from nascompress.evaluators import TrialContext

    torch.set_num_threads(1)
    dataset = DATASETS.resolve(args.dataset, field="dataset")()
    space = bench_space(small=args.small_space, joint=args.joint)
    supernet = supernet_evaluator(args.epochs, warmup_epochs=args.warmup_epochs,
                                  random_subnets=args.random_subnets,
                                  progressive=args.progressive, kd_alpha=args.kd_alpha,
                                  finetune_epochs=args.finetune_epochs)
    standalone = None if earlier else standalone_evaluator(args.epochs, joint=args.joint)

    work = Path(tempfile.mkdtemp(prefix="bench-supernet-"))
    started = time.perf_counter()
    prepared = supernet.prepare(space=space, dataset=dataset, seed=args.seed, workdir=work)
    supernet_s = time.perf_counter() - started
    print(prepared.summary, flush=True)

    subnets = earlier["params"] if earlier else draw_subnets(space, args.subnets, args.seed)

    rows = []
    for index, params in enumerate(subnets):
        context = TrialContext(trial_id=f"s{index}", seed=args.seed, artifact_dir=work / "a",
                               shared=prepared.shared)
        clock = time.perf_counter()
        inherited = supernet.evaluate(params, space=space, dataset=dataset, context=context)
        inherited_s = time.perf_counter() - clock
        if earlier:
            alone = {"accuracy": earlier["standalone"][index]}
            alone_s = earlier["standalone_s"][index]
        else:
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
        if args.rows_out:  # after every subnet, so an interrupted run keeps its rows
            # Only the file of the draw this subnet belongs to has changed.
            draw = bisect.bisect_right(bounds, len(rows) - 1)
            start = bounds[draw - 1] if draw else 0
            write_rows(args.rows_out[draw], rows[start:bounds[draw]],
                       subnets[start:bounds[draw]])

    inherited_acc = [r[0] for r in rows]
    alone_acc = [r[1] for r in rows]
    tuned_acc = [r[4] for r in rows]

    bits = [params.get("quant/bits", 32) for params in subnets]

    def tau_with_spread(scores: list[float], within_bits: bool = False):
        """tau against the stand-alone accuracies (``within_bits``: over pairs of the
        same bit-width), with its bootstrap interval and std."""
        return bootstrap_tau(scores, alone_acc, resamples=args.bootstrap, seed=args.seed + 1,
                             groups=bits if within_bits else None)

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
    joint_lines = []
    if args.joint:
        w_tau, w_low, w_high, w_spread, _ = tau_with_spread(inherited_acc, within_bits=True)
        counts = {b: bits.count(b) for b in sorted(set(bits))}
        joint_lines = [
            f"| subnets per bit-width | {', '.join(f'{b}: {n}' for b, n in counts.items())} |",
            f"| Kendall tau-a within bit-widths (pairs of the same bits only) | "
            f"{w_tau:.3f} [{w_low:.3f}, {w_high:.3f}], std {w_spread:.3f} |",
        ]
    table = "\n".join([
        f"### {'REDUCED run' if reduced else 'Run'}: mobilenet"
        f"{' (small space)' if args.small_space else ''}"
        f"{', joint (architecture + shared quantization knobs)' if args.joint else ''}"
        f" on {args.dataset}, "
        f"{args.subnets} subnets, {args.epochs} epochs, seed {args.seed}"
        f"{', stand-alone figures reused' if earlier else ''}",
        "",
        f"CPU ({platform.machine()}, torch threads 1), {time.strftime('%Y-%m-%d')}. "
        f"Command: `python bench/supernet/run.py {' '.join(sys.argv[1:])}`"
        + (f". The subnets and their stand-alone accuracies and seconds are "
           f"`{' '.join(sources)}`'s (not retrained here; that run's recipe), "
           f"so {args.epochs} epochs is the supernet's alone." if earlier else "")
        + (" With several draws the taus below pair subnets across draws too, each "
           "against its draw's first stand-alone run: compare recipes with `arms.py`."
           if len(sources) > 1 else ""),
        "",
        "| measure | value |",
        "|---|---|",
        f"| Kendall tau, inherited vs stand-alone accuracy | {tau:.3f} |",
        f"| bootstrap 95% interval of tau ({resamples} resamples) | [{low:.3f}, {high:.3f}] |",
        f"| bootstrap std of tau | {spread:.3f} |",
        *joint_lines,
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
    emit(table, args.out)


if __name__ == "__main__":
    main()
