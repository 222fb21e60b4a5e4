"""Strategies with several trials in flight: 1 (sequential) against 2 and 8.

Usage (from the repository root)::

    PYTHONPATH=. .venv/bin/python bench/strategies/concurrency.py        # runs (hours), compares
    PYTHONPATH=. .venv/bin/python bench/strategies/concurrency.py --compare-only

Every other figure of ``bench/strategies`` comes from sequential searches (one ask, one
tell), but a search runs ``max_concurrent`` trials at once (2 by default, more on a
cluster): a strategy is asked again before the results of its last proposals are in.
This runs ``run.py --concurrency N`` for N = 1, 2 and 8 (the fast strategies, random and
optuna's fast peers; 20 seeds; budgets 50 and 100; every benchmark), each writing
``concurrency-cN.md/.json``, and compares them in ``concurrency.md``: for each strategy,
benchmark and budget, the HV/HV* median and its one-sided Mann-Whitney U p against
random at each N, the evaluations to random's final HV, and a two-sided Mann-Whitney U
of HV at N against the same seeds run sequentially. ``random`` proposes the same points
whatever N, so its final HV is the same at every N.

``bayesian`` runs optuna's GP at budgets up to 100 (about 1 s per step on two cores), too
slow for 20 seeds everywhere: ``bayesian+sampler="tpe"`` stands for it in those runs, and
the GP itself (``bayesian``, its default up to 100 trials) runs at budget 100 with seeds
0-9, 2 in flight on three benchmarks and 8 on the two measured ones of them (``run.py
--strategies random,bayesian --budgets 100 --seeds 10 --slow-seeds 10 --benchmarks
digits-7d-3x,mnist5k-mbv3-ws,surrogate --concurrency 2``, the same without the surrogate
and with 8; ``concurrency-gp-cN.md``),
compared with the same seeds of its latest sequential run
(``results-repeat-told.json``, the GP as ``bayesian-gp``, which ``bayesian`` runs at
budgets up to 100; ``bayesian`` run sequentially today on ``digits-7d-3x``, seed 0,
reproduces that run's HV, 0.98768).

Reading (2026-12-07, this 2-core machine): at 2 in flight (the default) one of 78
comparisons differs from its sequential self at p < 0.05 (``rl`` on ``mnist5k-cnn-6d`` at
50, 0.900 against 0.930, p 0.029; chance level), and the GP does not. At 8, ``rl`` is
lower in 4 of 13 cells (p < 0.05), ``nsga2`` in 4 (three at budget 50), ``evolution`` in
2 (at 50), TPE and the GP in none; about 4 of 78 would fall under 0.05 by chance. Each
of ours still beats random at 100 on every measured table at 2 and 8; on the modelled
surrogate ``nsga2``, ``evolution`` and (at 8) ``rl`` do not. The population strategies
have no result to breed from while their first generation is out: with a population of
10 (budget 50) and 8 in flight, 17 proposals are random before the first child.

The ``rl`` rows are a rerun (merged by ``merge_rows.py``; each file says so under its
command) after ``rl`` began screening four policy samples with a model of the results
(``rl_screening.md``). Unscreened, ``rl`` was lower than sequential at 8 in flight in 9
of 13 cells and needed 46-61 evaluations to random's HV at 100 on the measured tables
(screened: 4 of 13, 38-56); at 2 it was lower in none (lowest p 0.057).

Real trial times grow with the model, so small models report first. A second run at 8
in flight (``run.py ... --concurrency 8 --durations latency``, in two parts by strategy,
``concurrency-c8-latency-*.md``) makes each trial last its point's measured latency
times log-normal noise (sigma 0.25; latency stands in for training cost, which it only
roughly follows: quantization lowers latency, not training time). Against durations
independent of the point, two of the 52 cells of ours (13 per strategy) differ at
p < 0.05 (TPE on ``mnist5k-mbv3-ws`` at 100, 0.891 against 0.923, p 0.032; ``rl`` on
``mnist5k-cnn-6d`` at 100, 0.959 against 0.983, p 0.021; about one in 20 would by
chance); each of ours still beats random at 100 on every measured table (largest p
3e-04, ``rl`` on ``mnist5k-cnn-6d``; unscreened ``rl`` there was at 0.938, p 0.025).

Tried for ``rl`` (unscreened, before the rerun) at 8 in flight, where it lost most, on
seeds 0-19 at 50 and 100 (``run.py --strategies
random,rl,rl+batch_size=8,rl+batch_size=4,rl+lr=0.05,rl+epochs=1 --budgets 50,100
--seeds 20 --slow-seeds 0 --concurrency 8``): a policy that waits for as many
results as are in flight before it updates (``batch_size`` 4 or 8), a slower rate (0.05)
and one Adam step per update instead of two, in case a policy moving fast while its
samples are out made their probability ratios stale. None was better than the default:
the highest median on 5 of the 13 benchmark-budget cells for the default, 3 each for
``batch_size`` 8 and 4, 2 for ``epochs: 1``, none for 0.05; the fewest evaluations to
random's HV on 7 of 13 (ties included) for the default; at 100 on ``mnist5k-mbv3-ws``
0.912 against 0.864-0.879, on ``mnist5k-cnn-6d`` 0.978 against 0.948-0.961. Nothing was
changed.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy.stats import mannwhitneyu

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (its p-value format, so these tables read like its own)

LEVELS = (1, 2, 8)
STRATEGIES = 'random,bayesian+sampler="tpe",nsga2,evolution,rl,optuna-tpe,optuna-nsga2'
_SECTION = re.compile(r"^## (\S+), budget (\d+)$")


#: 8 in flight with durations proportional to latency: two runs (file part -> strategies).
LATENCY_RUNS = {"tpe-rl": 'random,bayesian+sampler="tpe",rl,optuna-tpe',
                "nsga2-evolution": "random,nsga2,evolution"}
#: Where the GP runs at each level (seeds 0-9, budget 100): about 1 s per step.
GP_BENCHMARKS = {2: "digits-7d-3x,mnist5k-mbv3-ws,surrogate", 8: "digits-7d-3x,mnist5k-mbv3-ws"}


def _run_py(output: str, *options: str) -> None:
    """One ``run.py`` run writing ``<output>.md/.json`` beside this file."""
    subprocess.run([sys.executable, str(HERE / "run.py"), *options,
                    "--output", str(HERE / f"{output}.md")], check=True)


def run_level(level: int) -> None:
    fast = ("--budgets", "50,100", "--seeds", "20", "--slow-seeds", "0",
            "--concurrency", str(level))
    _run_py(f"concurrency-c{level}", "--strategies", STRATEGIES, *fast)
    if level == 8:
        for part, strategies in LATENCY_RUNS.items():
            _run_py(f"concurrency-c8-latency-{part}", "--strategies", strategies, *fast,
                    "--durations", "latency")
    if level in GP_BENCHMARKS:
        _run_py(f"concurrency-gp-c{level}", "--strategies", "random,bayesian", "--budgets",
                "100", "--seeds", "10", "--slow-seeds", "10", "--benchmarks",
                GP_BENCHMARKS[level], "--concurrency", str(level))


def read_level(level: int) -> dict[tuple[str, int, str], dict]:
    """(benchmark, budget, strategy) -> HV per seed, median, its text against random, and
    evaluations to random's HV (from the markdown table: the .json keeps no curves)."""
    md = HERE / f"concurrency-c{level}.md"
    runs = json.loads(md.with_suffix(".json").read_text())["runs"]
    rows: dict[tuple[str, int, str], dict] = {}
    section = None
    for line in md.read_text().splitlines():
        if match := _SECTION.match(line):
            section = (match[1], int(match[2]))
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if section is None or len(cells) != 10 or cells[0] in ("strategy", "---"):
            continue
        hv = runs[f"{section[0]}|{section[1]}|{cells[0]}"]["hv"]
        random_hv = runs[f"{section[0]}|{section[1]}|random"]["hv"]
        rows[(*section, cells[0])] = {"hv": hv, "median": float(np.median(hv)),
                                      "against_random": _against(hv, random_hv),
                                      "to_random": cells[7]}
    if len(rows) != len(runs):
        raise SystemExit(f"{md.name}: read {len(rows)} table rows for {len(runs)} runs in "
                         f"its .json; has run.py's table layout changed?")
    return rows


def compare() -> str:
    levels = {n: read_level(n) for n in LEVELS}
    base = levels[1]
    lines = ["# Strategies with several trials in flight: 1 (sequential), 2 and 8", "",
             "Produced by `PYTHONPATH=. .venv/bin/python bench/strategies/concurrency.py` "
             "from `concurrency-c1.md`, `-c2.md` and `-c8.md` (each names its command, "
             "date and machine; per-seed HV in their `.json`).", "",
             "\n\n".join(__doc__.split("\n\n")[3:]).strip(), "",
             "HV/HV* median (one-sided p against random) and evaluations to random's final "
             "HV, 20 seeds (0-19) each; \"vs 1\": two-sided Mann-Whitney U of HV against "
             "the same seeds run sequentially, with the direction of the medians.", "",
             "| benchmark | budget | strategy | 1 in flight | to rnd | 2 in flight | to rnd "
             "| vs 1 | 8 in flight | to rnd | vs 1 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, row in base.items():
        if key[2] == "random":
            continue
        cells = [key[0], str(key[1]), key[2], row["against_random"], row["to_random"]]
        for level in LEVELS[1:]:
            other = levels[level].get(key)
            if other is None:
                cells += ["-", "-", "-"]
                continue
            cells += [other["against_random"], other["to_random"],
                      _versus(other["hv"], row["hv"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += latency_table(levels[1], levels[8])
    lines += gp_table()
    return "\n".join(lines) + "\n"


def latency_table(sequential: dict, independent: dict) -> list[str]:
    """8 in flight, durations by latency, against sequential and independent durations."""
    runs: dict[str, dict] = {}
    for part in LATENCY_RUNS:
        runs.update(json.loads(
            (HERE / f"concurrency-c8-latency-{part}.json").read_text())["runs"])
    lines = ["", "## 8 in flight, durations proportional to the point's latency", "",
             "HV/HV* median (one-sided p against random); two-sided Mann-Whitney U against "
             "the same seeds run sequentially and with 8 in flight and durations "
             "independent of the point (the table above).", "",
             "| benchmark | budget | strategy | 1 in flight | 8, independent durations "
             "| 8, durations by latency | vs 1 | vs independent |",
             "|---|---|---|---|---|---|---|---|"]
    for key, hv in runs.items():
        benchmark, budget, name = key.split("|")
        if name == "random":
            continue
        hv = hv["hv"]
        index = (benchmark, int(budget), name)
        cells = [benchmark, budget, name, f"{sequential[index]['median']:.3f}",
                 f"{independent[index]['median']:.3f}",
                 _against(hv, runs[f"{benchmark}|{budget}|random"]["hv"]),
                 _versus(hv, sequential[index]["hv"]), _versus(hv, independent[index]["hv"])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


#: The GP's latest sequential per-seed HV (budget 100): file key in
#: results-repeat-told.json -> run key.
GP_SEQUENTIAL = {"digits-7d-3x": ("d7-100.json", "digits-7d-3x|100|bayesian-gp"),
                 "mnist5k-mbv3-ws": ("dup-mnist5k-mbv3-ws-b100.json",
                                     "mnist5k-mbv3-ws|100|bayesian-gp"),
                 "surrogate": ("sur.json", "surrogate|100|bayesian-gp")}


def _versus(hv: list[float], sequential: list[float]) -> str:
    """Direction of the medians and two-sided Mann-Whitney U, bold below 0.05."""
    p = mannwhitneyu(hv, sequential, alternative="two-sided").pvalue
    ours, theirs = np.median(hv), np.median(sequential)
    sign = "lower" if ours < theirs else "higher" if ours > theirs else "same"
    return f"{sign}, p {run._fmt_p(p)}"


def _against(hv: list[float], random_hv: list[float]) -> str:
    """Median HV and one-sided Mann-Whitney U that it is above random's, as run.py writes."""
    p = mannwhitneyu(hv, random_hv, alternative="greater").pvalue
    return f"{np.median(hv):.3f} (p {run._fmt_p(p)})"


def gp_table() -> list[str]:
    """``bayesian`` (the GP) at 2 and 8 in flight against its sequential run, seeds 0-9."""
    told = json.loads((HERE / "results-repeat-told.json").read_text())
    levels = {n: json.loads((HERE / f"concurrency-gp-c{n}.json").read_text())["runs"]
              for n in LEVELS[1:]}
    lines = ["", "## `bayesian` (the GP), budget 100, seeds 0-9", "",
             "HV/HV* median (one-sided p against random, same seeds); \"vs 1\": two-sided "
             "Mann-Whitney U against the sequential run's seeds 0-9.", "",
             "| benchmark | random | 1 in flight | 2 in flight | vs 1 | 8 in flight | vs 1 |",
             "|---|---|---|---|---|---|---|"]
    randoms = levels[LEVELS[1]]  # random's HV is the same at every level
    for benchmark, (file, key) in GP_SEQUENTIAL.items():
        random_hv = randoms[f"{benchmark}|100|random"]["hv"]
        sequential = told[file]["runs"][key]["hv"][:len(random_hv)]
        cells = [benchmark, f"{np.median(random_hv):.3f}", _against(sequential, random_hv)]
        for level in LEVELS[1:]:
            if f"{benchmark}|100|bayesian" not in levels[level]:
                cells += ["not run", "-"]
                continue
            hv = levels[level][f"{benchmark}|100|bayesian"]["hv"]
            cells += [_against(hv, random_hv), _versus(hv, sequential)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare-only", action="store_true",
                        help="compare the concurrency-cN files already written")
    args = parser.parse_args(argv)
    if not args.compare_only:
        for level in LEVELS:
            run_level(level)
    text = compare()
    (HERE / "concurrency.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
