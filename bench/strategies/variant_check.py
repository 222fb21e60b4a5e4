"""A strategy option against its default, on the tuning seeds and on fresh ones.

The machinery behind the small scripts that record why a default changed
(``nsga2_population.py``, ``nsga2_selection.py``, ``rl_lr.py``): each names a base and a
variant (``run.py`` names, options after ``+``), and this runs both and random search on
every benchmark of ``run.py`` at each budget (a budget above half a table is skipped),
by default on seeds 0-19 (``run.py``'s, where the variant was chosen) and 20-39
(fresh), and writes
``<stem>.md`` (the script's docstring, then the table) and ``<stem>.json`` (per-seed
HV/HV*). Columns: HV/HV* median [IQR]; p: one-sided Mann-Whitney U against random; to
rnd: evaluations to reach random's median final HV (median over seeds, as in
``run.py``); "variant vs base": two-sided Mann-Whitney U on HV.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import mannwhitneyu

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402

SEED_SETS = (range(0, 20), range(20, 40))


def seeds_label(seeds: range) -> str:
    """``0-19`` for ``range(0, 20)``: how tables and per-seed keys name a seed set."""
    return f"{seeds.start}-{seeds.stop - 1}"


def search_cells(benchmarks: Sequence[Any], budgets: Sequence[int],
                 seed_sets: Sequence[range]) -> Iterator[tuple[Any, Any, int, range]]:
    """``(benchmark, scorer, budget, seeds)`` for every cell to run: each benchmark (with
    the scorer of its true front) at each budget, but a budget above half a table (which
    would make every strategy enumerate it), with each seed set."""
    for benchmark in benchmarks:
        scorer = run.Scorer(benchmark.front)
        for budget in budgets:
            if benchmark.size is not None and budget > 0.5 * benchmark.size:
                continue
            for seeds in seed_sets:
                yield benchmark, scorer, budget, seeds


def hv_curves(benchmark: Any, scorer: Any, name: str, budget: int,
              seeds: range) -> list[list[float]]:
    """The HV/HV* after each evaluation of one search per seed of ``name`` (a ``run.py``
    name) on ``benchmark``."""
    return [scorer.hv_curve(scorer.scaled(run.run_one(benchmark, name, seed, budget)["found"]))
            for seed in seeds]


def check(*, stem: str, title: str, doc: str, base: tuple[str, str],
          variant: tuple[str, str], budgets: Sequence[int] = (50, 100, 300),
          seed_sets: Sequence[range] = SEED_SETS) -> None:
    """Run ``base`` and ``variant`` (each ``(label, run.py name)``) and random search, and
    write ``<stem>.md`` / ``<stem>.json`` beside this file. ``doc``: the calling script's
    docstring; its paragraphs after the first three (title, usage and the usage's
    command) head the file."""
    benchmarks, notes = run.load_benchmarks(None)
    names = {"random": "random", base[0]: base[1], variant[0]: variant[1]}
    lines = [f"# {title}", "",
             f"Command: `PYTHONPATH=. .venv/bin/python {' '.join(sys.argv)}`; "
             f"{time.strftime('%Y-%m-%d')}; {platform.machine()}, python "
             f"{platform.python_version()}. Per-seed HV/HV* in `{stem}.json`.", "",
             "\n\n".join(doc.split("\n\n")[3:]).strip(), "",
             f"| benchmark | budget | seeds | random HV | {base[0]} HV [IQR] | p vs random "
             f"| to rnd | {variant[0]} HV [IQR] | p vs random | to rnd "
             f"| {variant[0]} vs {base[0]} (two-sided) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    per_seed: dict[str, list[float]] = {}
    for benchmark, scorer, budget, seeds in search_cells(benchmarks, budgets, seed_sets):
        label = seeds_label(seeds)
        curves = {key: hv_curves(benchmark, scorer, name, budget, seeds)
                  for key, name in names.items()}
        hv = {key: [curve[-1] for curve in runs] for key, runs in curves.items()}
        for key, values in hv.items():
            per_seed[f"{benchmark.name}|{budget}|{label}|{key}"] = values
        target = float(np.median(hv["random"]))
        cells = []
        for key in (base[0], variant[0]):
            q1, med, q3 = np.percentile(hv[key], [25, 50, 75])
            p = mannwhitneyu(hv[key], hv["random"], alternative="greater").pvalue
            cells += [f"{med:.4f} [{q1:.4f}, {q3:.4f}]", run._fmt_p(p),
                      run.evals_to_reach(curves[key], target, budget)]
        both = mannwhitneyu(hv[variant[0]], hv[base[0]], alternative="two-sided").pvalue
        line = (f"| {benchmark.name} | {budget} | {label} | {target:.4f} | "
                f"{' | '.join(cells)} | {run._fmt_p(both)} |")
        print(line, flush=True)
        lines.append(line)
    lines += ["", *[f"- {note}" for note in notes]]
    (HERE / f"{stem}.md").write_text("\n".join(lines) + "\n")
    (HERE / f"{stem}.json").write_text(json.dumps(per_seed, indent=1) + "\n")
