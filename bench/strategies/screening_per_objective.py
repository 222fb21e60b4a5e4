"""The screened strategies with one model per objective, against the same searches before.

Usage (from the repository root; one process per strategy, then the table)::

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python \\
        bench/strategies/screening_per_objective.py run evolution --budgets 50,100 \\
        --seeds 0-19,20-39
    PYTHONPATH=. .venv/bin/python bench/strategies/screening_per_objective.py render

``most_promising`` (``nascompress/strategies/_screening.py``), which picks ``evolution``'s
and ``nsga2``'s children and ``rl``'s policy samples, fitted one multi-output model of
every objective until 2026-12-07 and fits one model per objective now
(``screening_models.md`` measures what that does to the model's ranking of unseen
points). ``run`` searches with the code of this checkout on every benchmark of ``run.py``
(a budget above half a table is skipped) and saves per-seed HV/HV* and the evaluations
to random search's median final HV in ``screening_per_objective/<strategy>.json``.
``adopt`` takes the same from a ``run.py`` run of the strategy (its ``.json`` and
``.md``, seeds 0-19). ``render`` sets them beside the same searches with the joint
model, read from the files that recorded them when screening was added:
``evolution_screening.json``, ``nsga2_screening.json`` and ``rl_screening.json``
(their "4 screened" rows, same seeds; their ``.md`` tables give those searches'
evaluations to random's HV; for ``rl`` above 100 evaluations, "screened to 100", its
default then, whose "to rnd" was not recorded: "-"), and writes
``screening_per_objective.md``. The searches are deterministic given the seed: random
search's per-seed HV is checked to equal the one stored beside the baseline.

Tried with the per-objective model, not kept: ``evolution`` screening 8 children instead
of 4 (``screening_per_objective/evolution-8-children.md``: ``run.py --strategies
random,evolution+screened_children=8 --budgets 100``, seeds 0-19, every benchmark). The
better model might have made a wider pick pay; it did not: HV 0.9940, 0.9941, 0.9720,
0.9885, 0.9570 and 0.8405 against 0.9927, 0.9929, 0.9765, 0.9837, 0.9478 and 0.8656
with 4 (``digits-cnn-3x``, ``digits-9d-1x``, ``digits-7d-3x``, ``mnist5k-cnn-6d``,
``mnist5k-mbv3-ws``, surrogate; two-sided p 0.09-0.70), evaluations to random's HV 43,
46, 44, 54, 46 and 68 against 36, 46, 48, 54, 47 and 68: ``mnist5k-cnn-6d`` and the
surrogate, where 4 children need more than half the budget, unchanged.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from pathlib import Path

import numpy as np
from scipy.stats import mannwhitneyu

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402
from variant_check import hv_curves, search_cells, seeds_label  # noqa: E402

OUT = HERE / "screening_per_objective"
STRATEGIES = ("evolution", "nsga2", "rl")
BASE_LABEL = "4 screened"  # the row of the stored files that is the default before
#: rl screens up to its 100th result only (rl.SCREEN_UNTIL_RESULTS): above 100 its default
#: before is stored as "screened to 100" (rl_screening.md's last section).
RL_ABOVE_100_LABEL = "screened to 100"


def base_label(strategy: str, budget: int) -> str:
    return RL_ABOVE_100_LABEL if strategy == "rl" and budget > 100 else BASE_LABEL


def parse_seeds(text: str) -> list[range]:
    sets = []
    for part in text.split(","):
        first, last = (int(x) for x in part.split("-"))
        sets.append(range(first, last + 1))
    return sets


def run_strategy(strategy: str, budgets: list[int], seed_sets: list[range],
                 names: list[str] | None) -> None:
    benchmarks, notes = run.load_benchmarks(names)
    path = OUT / f"{strategy}.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    for benchmark, scorer, budget, seeds in search_cells(benchmarks, budgets, seed_sets):
        curves = {key: hv_curves(benchmark, scorer, key, budget, seeds)
                  for key in ("random", strategy)}
        target = float(np.median([c[-1] for c in curves["random"]]))
        key = f"{benchmark.name}|{budget}|{seeds_label(seeds)}"
        saved[key] = {
            "random": [c[-1] for c in curves["random"]],
            "hv": [c[-1] for c in curves[strategy]],
            "to_rnd": run.evals_to_reach(curves[strategy], target, budget),
        }
        print(key, f"{np.median(saved[key]['hv']):.4f}", saved[key]["to_rnd"], flush=True)
        OUT.mkdir(exist_ok=True)
        path.write_text(json.dumps({**saved, "_info": {
            "date": str(datetime.date.today()), "machine": platform.machine(),
            "python": platform.python_version(), "notes": notes}}, indent=1) + "\n")


def adopt(strategy: str, results: Path) -> None:
    """Save the cells of a ``run.py`` run (``results``: its .json; the .md beside it)."""
    data = json.loads(results.read_text())
    first = data["info"].get("first_seed", 0)
    seeds = seeds_label(range(first, first + data["info"]["seeds"]))
    to_rnd, section = {}, None
    for line in results.with_suffix(".md").read_text().splitlines():
        if line.startswith("## ") and ", budget " in line:
            name, budget = line[3:].split(", budget ")
            section = f"{name}|{budget}"
        cells = [c.strip() for c in line.strip("|").split("|")]
        if section and len(cells) == 10 and cells[0] == strategy:
            to_rnd[section] = cells[7]
    path = OUT / f"{strategy}.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    saved.pop("_info", None)
    for key, cell in data["runs"].items():
        benchmark, budget, name = key.split("|")
        if name != strategy:
            continue
        saved[f"{benchmark}|{budget}|{seeds}"] = {
            "random": data["runs"][f"{benchmark}|{budget}|random"]["hv"],
            "hv": cell["hv"], "to_rnd": to_rnd[f"{benchmark}|{budget}"]}
    OUT.mkdir(exist_ok=True)
    path.write_text(json.dumps({**saved, "_info": {
        "date": data["info"].get("date", ""), "machine": data["info"].get("machine", ""),
        "python": data["info"].get("python", ""), "notes": [f"adopted from {results.name}"]}},
        indent=1) + "\n")


def stored_to_rnd(strategy: str) -> dict[str, str]:
    """The "to rnd" of the stored "4 screened" rows, from their .md table."""
    found = {}
    for line in (HERE / f"{strategy}_screening.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 11 and cells[1].isdigit():
            found[f"{cells[0]}|{cells[1]}|{cells[2]}"] = cells[9]
    return found


def render() -> None:
    lines = ["# The screened strategies: one model per objective against one joint model", "",
             "Command: `PYTHONPATH=. .venv/bin/python bench/strategies/"
             "screening_per_objective.py run <strategy> ...` then `render`; "
             f"rendered {datetime.date.today()}. The joint model's figures are the stored "
             "searches of `<strategy>_screening.json` (\"4 screened\"; same seeds, code "
             "before the change). HV/HV* median [IQR] over the seeds; p vs random: "
             "one-sided Mann-Whitney U; to rnd: evaluations to reach random search's "
             "median final HV (median over seeds); own vs joint: two-sided Mann-Whitney U.",
             "", "\n\n".join(__doc__.split("\n\n")[2:]).strip(), "",
             "| strategy | benchmark | budget | seeds | random HV | joint HV [IQR] | p vs "
             "random | to rnd | own HV [IQR] | p vs random | to rnd | own vs joint |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for strategy in STRATEGIES:
        path = OUT / f"{strategy}.json"
        if not path.exists():
            continue
        new = json.loads(path.read_text())
        info = new.pop("_info")
        lines[2] += f" {strategy}: run {info['date']}, {info['machine']}."
        old = json.loads((HERE / f"{strategy}_screening.json").read_text())
        old_to_rnd = stored_to_rnd(strategy)
        for key, cell in new.items():
            label_before = base_label(strategy, int(key.split("|")[1]))
            base = old.get(f"{key}|{label_before}")
            if base is None:
                continue
            # The .md tables give "to rnd" for the "4 screened" rows only.
            base_to_rnd = old_to_rnd.get(key, "-") if label_before == BASE_LABEL else "-"
            if not np.allclose(old[f"{key}|random"], cell["random"], rtol=0, atol=1e-9):
                raise SystemExit(f"{strategy} {key}: random search differs from the stored "
                                 "one; the two runs are not the same searches")
            target = float(np.median(cell["random"]))
            row = [strategy, *key.split("|"), f"{target:.4f}"]
            for values, to_rnd in ((base, base_to_rnd),
                                   (cell["hv"], cell["to_rnd"])):
                q1, med, q3 = np.percentile(values, [25, 50, 75])
                p = mannwhitneyu(values, cell["random"], alternative="greater").pvalue
                row += [f"{med:.4f} [{q1:.4f}, {q3:.4f}]", run._fmt_p(p), to_rnd]
            row.append(run._fmt_p(mannwhitneyu(cell["hv"], base,
                                               alternative="two-sided").pvalue))
            lines.append("| " + " | ".join(row) + " |")
    (HERE / "screening_per_objective.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    runs = commands.add_parser("run")
    runs.add_argument("strategy", choices=STRATEGIES)
    runs.add_argument("--budgets", default="50,100")
    runs.add_argument("--seeds", default="0-19,20-39")
    runs.add_argument("--benchmarks", default="", help="comma-separated; default all")
    adopts = commands.add_parser("adopt")
    adopts.add_argument("strategy", choices=STRATEGIES)
    adopts.add_argument("results", type=Path, help="a run.py .json (its .md beside it)")
    commands.add_parser("render")
    args = parser.parse_args()
    if args.command == "render":
        render()
        return
    if args.command == "adopt":
        adopt(args.strategy, args.results)
        return
    run_strategy(args.strategy, [int(b) for b in args.budgets.split(",")],
                 parse_seeds(args.seeds),
                 [n for n in args.benchmarks.split(",") if n] or None)


if __name__ == "__main__":
    main()
