"""Cost per candidate against the trial a multi-trial search would run instead.

``run.py`` times a stand-alone trial with the supernet's own short recipe (the same
epochs as the supernet: what rank fidelity needs). A multi-trial search does not run
that recipe: it runs ``compress-train`` with its defaults (15 epochs, then 5 epochs of
fine-tuning with QAT at the subnet's bits). This script times, for the first
``--subnets`` subnets ``run.py`` draws, both an inherited trial (a whole ``supernet``
search trial: load, extract, BatchNorm recalibration, compression, scoring, artifact,
latency) and a default ``compress-train`` trial, one after the other in this process
with one torch thread, and prints each pair, the medians and their ratio. The supernet
is trained (``--epochs``) or reused from ``--workdir``; its training time is what
``run.py`` reports. Run it on a quiet machine: both arms are timed under whatever else
runs.

    python bench/supernet/cost.py --joint --subnets 5 --out bench/supernet/results.md
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import COMMON, bench_space, draw_subnets, emit  # noqa: E402 - run.py beside this file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--subnets", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5, help="the supernet's epochs")
    parser.add_argument("--joint", action="store_true", help="run.py's --joint")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None,
                        help="where the supernet is trained or reused (default: a new one)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import torch

    from nascompress.data import DATASETS
    from nascompress.evaluators import CompressTrainEvaluator, SupernetEvaluator, TrialContext

    torch.set_num_threads(1)
    dataset = DATASETS.resolve(args.dataset, field="dataset")()
    space = bench_space(joint=args.joint)
    supernet = SupernetEvaluator(epochs=args.epochs, warmup_epochs=1, finalists=0, **COMMON)
    default = CompressTrainEvaluator(threads=1, latency=COMMON["latency"])
    for evaluator in (supernet, default):
        evaluator.configure_latency(setup=evaluator.latency, runtime="onnxruntime")
        evaluator.validate()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-cost-"))
    prepared = supernet.prepare(space=space, dataset=dataset, seed=args.seed, workdir=work)
    print(prepared.summary, flush=True)

    rows = []
    for index, params in enumerate(draw_subnets(space, args.subnets, args.seed)):
        times, scores = [], []
        for evaluator, shared in ((supernet, prepared.shared), (default, {})):
            context = TrialContext(trial_id=f"c{index}", seed=args.seed,
                                   artifact_dir=work / "cost", shared=shared)
            clock = time.perf_counter()
            result = evaluator.evaluate(params, space=space, dataset=dataset, context=context)
            times.append(time.perf_counter() - clock)
            scores.append(result["accuracy"])
        rows.append((*times, *scores, params.get("quant/bits", 32)))
        print(f"subnet {index} (bits {rows[-1][4]}): inherited {times[0]:.2f} s "
              f"({scores[0]:.4f}), default compress-train {times[1]:.1f} s ({scores[1]:.4f}), "
              f"ratio {times[1] / times[0]:.0f}x", flush=True)

    inherited = statistics.median(r[0] for r in rows)
    alone = statistics.median(r[1] for r in rows)
    ratios = sorted(r[1] / r[0] for r in rows)
    lines = [
        f"### Cost per candidate against a default multi-trial trial: {len(rows)} subnets"
        f"{' (joint)' if args.joint else ''} of the default mobilenet space on "
        f"{args.dataset}",
        "",
        f"CPU ({platform.machine()}, torch threads 1), {time.strftime('%Y-%m-%d')}. "
        f"Command: `python bench/supernet/cost.py {' '.join(sys.argv[1:])}`",
        "",
        "| subnet | bits | inherited trial s | default compress-train trial s | ratio | "
        "inherited acc | compress-train acc |",
        "|---|---|---|---|---|---|---|",
        *[f"| {i} | {r[4]} | {r[0]:.2f} | {r[1]:.1f} | {r[1] / r[0]:.0f}x | {r[2]:.4f} | "
          f"{r[3]:.4f} |" for i, r in enumerate(rows)],
        "",
        f"Median inherited trial {inherited:.2f} s, median default trial {alone:.1f} s: "
        f"**{alone / inherited:.0f}x** (per-subnet ratios {ratios[0]:.0f}x-{ratios[-1]:.0f}x).",
        "",
    ]
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
