"""Compare finalist fine-tune recipes on the same subnets: paired fine-tuned accuracies.

``finalists.py`` fine-tunes picked inherited front points of recorded weight-sharing
searches and caches each result by subnet (``--cache DIR``, one JSON file per search).
Run it once per recipe, each with its own cache (``--finetune-lr``,
``--finetune-alpha``), then give this script the caches, the first being the baseline:

    python bench/supernet/finetune_recipe.py lr=5e-4:/tmp/c0 lr=2e-3:/tmp/c1 --out F

Only subnets present in every cache are compared. Per recipe: the median fine-tuned
accuracy, the median paired difference to the baseline with its quartiles, how many
subnets got better / worse and the two-sided Wilcoxon signed-rank p of the differences.
No seconds: runs of different recipes usually share the machine under different loads.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

from scipy.stats import wilcoxon

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import emit  # noqa: E402 - run.py beside this file


def load(folder: Path) -> dict[tuple[str, str], dict]:
    """``(search, subnet key) -> cache entry`` for every cache file in ``folder``."""
    entries = {}
    for path in sorted(folder.glob("*.json")):
        for key, entry in json.loads(path.read_text()).items():
            entries[(path.stem, key)] = entry
    return entries


def quartiles(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return q[0], q[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="+",
                        help="NAME:CACHE_DIR, the first the baseline")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    recipes = []
    for spec in args.recipes:
        name, _, folder = spec.partition(":")
        if not folder:
            parser.error(f"recipe {spec!r}: expected NAME:CACHE_DIR, e.g. lr=5e-4:/tmp/cache")
        recipes.append((name, load(Path(folder))))
    base_name, base = recipes[0]
    common = sorted(set.intersection(*(set(entries) for _, entries in recipes)),
                    key=lambda key: (key[0], base[key]["number"]))
    if not common:
        raise SystemExit("no subnet is in every cache")
    lines = [
        f"### Finalist fine-tune recipes on the same {len(common)} subnets",
        "",
        f"{platform.machine()} CPU, 1 torch thread per process; {time.strftime('%Y-%m-%d')}. "
        f"Command: `python bench/supernet/finetune_recipe.py {' '.join(sys.argv[1:])}`",
        "",
        f"Searches: {', '.join(sorted({search for search, _ in common}))}. Differences are "
        f"paired (the same subnet, the same seed), against `{base_name}`.",
        "",
        "| recipe | median fine-tuned accuracy | min | median difference [IQR] | better / worse "
        "| Wilcoxon p (two-sided) |",
        "|---|---|---|---|---|---|",
    ]
    for name, entries in recipes:
        tuned = [entries[key]["tuned"][0] for key in common]
        if name == base_name:
            lines.append(f"| {name} (baseline) | {statistics.median(tuned):.4f} | "
                         f"{min(tuned):.4f} | - | - | - |")
            continue
        diffs = [entries[key]["tuned"][0] - base[key]["tuned"][0] for key in common]
        low, high = quartiles(diffs)
        better = sum(d > 0 for d in diffs)
        worse = sum(d < 0 for d in diffs)
        p = wilcoxon(diffs).pvalue if any(diffs) else 1.0
        lines.append(f"| {name} | {statistics.median(tuned):.4f} | {min(tuned):.4f} | "
                     f"{statistics.median(diffs):+.4f} [{low:+.4f}, {high:+.4f}] | "
                     f"{better} / {worse} | {p:.2g} |")
    lines += ["", "Per subnet (inherited -> fine-tuned by each recipe, in the order above):", ""]
    for search, key in common:
        values = " / ".join(f"{entries[(search, key)]['tuned'][0]:.3f}" for _, entries in recipes)
        lines.append(f"- {search} trial {base[(search, key)]['number']}: "
                     f"{base[(search, key)]['inherited'][0]:.3f} -> {values}")
    emit("\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
