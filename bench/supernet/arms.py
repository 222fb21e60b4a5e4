"""Supernet recipes compared on the same subnets, several supernet seeds each.

One supernet per recipe says little: supernets of the same recipe and different seeds
rank the same subnets differently. ``run.py --standalone-from DRAW0 DRAW1 --seed S``
trains one supernet and scores every draw's subnets with it, writing one rows file per
draw; this script takes such supernets, grouped by recipe (``--supernet RECIPE FILE...``,
one file per ``--draw``, in the same order), and reports for each:

- rank fidelity pooled over the draws (pairs within a draw, as ``pooled.py``), against
  the mean of ``--runs-each`` stand-alone runs of every subnet, with a bootstrap 95 %
  interval (each draw's subnets resampled on their own), and per draw;
- the mean inherited accuracy;
- how alike two supernets rank the subnets (pooled tau-a between their inherited
  accuracies): seed-to-seed agreement within a recipe, and across recipes;
- the tau of the mean of each recipe's supernets: if supernets of one recipe err
  independently, averaging them ranks better; if it does not, their error is shared
  (a bias of the recipe, not noise of a seed).

    cd bench/supernet && python arms.py \\
        --draw rank_fidelity_joint_5ep.json ceiling_joint_seed1.json ceiling_joint_seed2.json \\
        --draw rank_fidelity_joint_5ep_draw1.json ceiling_joint_draw1_seed2.json \\
               ceiling_joint_draw1_seed3.json \\
        --supernet default supernets/default_5ep_s2_draw0.json \\
                   supernets/default_5ep_s2_draw1.json \\
        --supernet progressive supernets/progressive_5ep_s2_draw0.json ...

The first file of each ``--draw`` (a ``run.py --rows-out`` file) also counts as a
supernet of the recipe named by ``--draw-recipe`` (its own supernet scored it). It
trains nothing.
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pooled import _stratified, _within_draws, add_draw_arguments, load_draws  # noqa: E402
from run import emit, read_rows  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_draw_arguments(parser)
    parser.add_argument("--draw-recipe", default=None,
                        help="count the --draw files' own supernets as this recipe's")
    parser.add_argument("--supernet", nargs="+", action="append", default=[],
                        metavar="ARG", help="RECIPE, then one run.py --rows-out file per "
                                            "draw from one supernet (repeat)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    draws, each = load_draws(args)

    supernets = []  # (recipe, label, inherited per draw)
    if args.draw_recipe:
        supernets.append((args.draw_recipe, "each draw's own",
                          [d["inherited"] for d in draws]))
    for recipe, *files in args.supernet:
        if len(files) != len(draws):
            raise SystemExit(f"--supernet {recipe}: give one file per --draw "
                             f"({len(draws)}), but got {len(files)}")
        scored = []
        for draw, path in zip(draws, files, strict=True):
            rows = read_rows(path)
            if rows["params"] != draw["params"]:
                raise SystemExit(f"--supernet {recipe} {path}: its subnets are not the "
                                 f"draw's (score them with run.py --standalone-from)")
            scored.append(rows["inherited"])
        supernets.append((recipe, Path(files[0]).stem.removesuffix("_draw0"), scored))

    boot = {"resamples": args.bootstrap, "seed": args.seed}

    def scored_by(scored):
        """The draws with ``scored`` as their inherited accuracies."""
        return [{**d, "inherited": s} for d, s in zip(draws, scored, strict=True)]

    def fidelity(among) -> str:
        value, low, high = _stratified(
            among, lambda picks: _within_draws(among, "inherited", picks), **boot)
        return f"{value:.3f} [{low:.3f}, {high:.3f}]"

    def agreement(a, b) -> float:
        """Pooled tau-a of one supernet's inherited accuracies against another's."""
        paired = [{**d, "inherited": x, "reference": y}
                  for d, x, y in zip(draws, a, b, strict=True)]
        return _within_draws(paired, "inherited", [range(len(x)) for x in a])

    count = sum(len(d["inherited"]) for d in draws)
    lines = [
        f"### Supernet recipes over {len(supernets)} supernets, {len(draws)} draws, "
        f"{count} subnets, against the mean of {each} stand-alone runs each", "",
        f"{time.strftime('%Y-%m-%d')}. Command: `python bench/supernet/arms.py "
        f"{shlex.join(sys.argv[1:])}`. Bootstrap 95 % intervals over subnets "
        f"({args.bootstrap} resamples, each draw on its own).", "",
        "| recipe | supernet | pooled tau-a | "
        + " | ".join(f"draw {n}" for n in range(len(draws)))
        + " | mean inherited accuracy |",
        "|---|---|---|" + "---|" * len(draws) + "---|",
    ]
    for recipe, label, scored in supernets:
        among = scored_by(scored)
        per_draw = " | ".join(  # the point value alone: no bootstrap to throw away
            f"{_within_draws([d], 'inherited', [range(len(d['inherited']))]):.3f}"
            for d in among)
        mean_acc = statistics.mean(x for s in scored for x in s)
        lines.append(f"| {recipe} | `{label}` | {fidelity(among)} | {per_draw} | "
                     f"{mean_acc:.3f} |")
    recipes = list(dict.fromkeys(r for r, _, _ in supernets))
    for recipe in recipes:
        members = [s for r, _, s in supernets if r == recipe]
        if len(members) > 1:
            averaged = [[statistics.mean(x) for x in zip(*(m[n] for m in members), strict=True)]
                        for n in range(len(draws))]
            lines.append(f"| {recipe} | mean of its {len(members)} supernets' inherited "
                         f"accuracies | {fidelity(scored_by(averaged))} | "
                         + " | ".join("" for _ in draws) + " | |")
    lines += ["", "Agreement: pooled tau-a between two supernets' inherited accuracies "
              "(pairs within a draw), for every two supernets of one recipe, and the "
              "median over the pairs of two recipes:", "",
              "| supernets | tau-a |", "|---|---|"]
    across: dict[tuple[str, str], list[float]] = {}
    for (ra, la, a), (rb, lb, b) in itertools.combinations(supernets, 2):
        if ra == rb:
            lines.append(f"| {ra}: `{la}` ~ `{lb}` | {agreement(a, b):.3f} |")
        else:
            across.setdefault((ra, rb), []).append(agreement(a, b))
    for (ra, rb), values in across.items():
        lines.append(f"| {ra} ~ {rb} (median of {len(values)}) | "
                     f"{statistics.median(values):.3f} |")
    emit("\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
