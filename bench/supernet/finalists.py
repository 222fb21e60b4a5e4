"""Which finalists? Score finalist-choice rules on fine-tuned truth, not on inherited numbers.

A weight-sharing search fine-tunes only ``k`` points of its inherited front, chosen by
:meth:`SupernetEvaluator.finalists`. Whether that choice is good shows only after the
fine-tuning, so this script fine-tunes **every** point of the inherited front of recorded
searches (the folders ``same_clock.py`` leaves: ``ws/`` and ``mt/`` inside), exactly as
the search's finishing stage does (the search's own trial runner, ``stage="final"``, the
per-candidate seed), and caches the results. Each rule then picks ``k`` points from the
inherited pool; a rule's score is the hypervolume of its picks' *fine-tuned and
measured* front, scaled as in ``same_clock.py`` (accuracy, log10 size, log10 latency to
[0, 1], reference 1.1) over fixed bounds per folder: every fine-tuned front point and the
multi-trial arm's front, so every rule is scored on the same axes. The multi-trial
arm's hypervolume on those axes is printed beside them, and so are the best and the
average ``k``-subset of the fine-tuned front (what a perfect and a random choice get).

Rules (greedy hypervolume contribution, ties to the earlier trial, on different axes):

* ``raw-units``: the rule before 2026-12-06: objectives in raw units (accuracy,
  bytes, milliseconds), reference point the run's own rule,
  :func:`nascompress.pareto.reference_point` (accuracy 0, sizes and latencies 10 %
  past the pool's worst);
* ``score-at-worst``: the same, but the accuracy reference at the pool's worst value,
  so a candidate no better than the worst one contributes nothing, however small;
* ``scaled-axes``: the rule from 2026-12-06
  (:func:`~nascompress.evaluators.supernet.finalist_axes`: accuracy linear, size and
  latency in log10, each scaled to [0, 1] over the pool, reference 1.1). These are the
  scoring's axes too, computed from the inherited pool instead of the fine-tuned
  fronts: a rule that agrees with the score's idea of a good front, which is why it
  was one of the three candidates named before any fine-tuning was run;
* ``above-chance``: what :meth:`SupernetEvaluator.finalists` does now: ``scaled-axes``
  without the candidates whose inherited accuracy is indistinguishable from chance
  (:func:`~nascompress.evaluators.supernet.at_chance`) while enough others are left.
  It needs the trials' recorded chance accuracy: on searches recorded before it was,
  it is ``scaled-axes``.

    python bench/supernet/finalists.py /tmp/same-clock-0-XXXX ... --cache DIR --out F

``--picks-only`` fine-tunes only the points some rule picks (the comparison of the rules
then stands, but not the best and mean ``k``-subsets, which need the whole front); a
folder without a multi-trial arm (``same_clock.py --ws-only``) has no multi-trial column.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import emit  # noqa: E402 - run.py beside this file
from same_clock import scaled_hypervolume  # noqa: E402 - the benchmark's own scoring

OBJECTIVE_NAMES = ("accuracy", "size_bytes", "latency_ms")


def params_key(params) -> str:
    return repr(sorted(params.items()))


def point(objectives) -> tuple[float, float, float]:
    return tuple(float(objectives[name]) for name in OBJECTIVE_NAMES)


def rule_picks(pool, objectives, evaluator) -> dict[str, list[int]]:
    from nascompress.evaluators.supernet import finalist_axes
    from nascompress.evaluators.supernet import greedy_hypervolume as greedy
    from nascompress.pareto import minimised_vector, reference_point

    k = evaluator.finalists_count
    raw = [minimised_vector(r, objectives) for r in pool]
    run_ref = reference_point(pool, objectives)
    reference = [o.as_minimised(run_ref[o.name]) for o in objectives]
    at_worst = [max(v[0] for v in raw), *reference[1:]]  # accuracy is objective 0
    index = {id(record): i for i, record in enumerate(pool)}
    scaled = finalist_axes(pool, objectives, score="accuracy")
    return {"raw-units": greedy(raw, reference, k),
            "score-at-worst": greedy(raw, at_worst, k),
            "scaled-axes": greedy(scaled, [1.1] * len(objectives), k),
            "above-chance": [index[id(r)]
                             for r in evaluator.finalists(pool, objectives=objectives)]}


def finetune_front(folder: Path, cache_path: Path, *, train: bool = True,
                   picks_only: bool = False, overrides: dict | None = None) -> dict:
    """Fine-tune every inherited front point of ``folder/ws`` (cached, resumable), or
    with ``picks_only`` the points some rule picks; ``overrides`` replaces evaluator
    options of the recorded search (the fine-tune's ``finetune_lr``, ...)."""
    from nascompress.config import parse_config
    from nascompress.evaluators.supernet import distinct_candidates
    from nascompress.pareto import pareto_front
    from nascompress.search.experiment import build_experiment
    from nascompress.search.records import RunDirectory

    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    config = parse_config(json.loads((folder / "ws.json").read_text()))
    experiment = build_experiment(config, allow_existing=True)
    for name, value in (overrides or {}).items():
        setattr(experiment.evaluator, name, value)
    experiment.evaluator.validate()
    records = RunDirectory(folder / "ws").load_trials()
    pool = distinct_candidates([r for r in records if r.get("stage", "search") == "search"],
                               experiment.objectives)
    front = pareto_front(pool, experiment.objectives)
    picks = rule_picks(pool, experiment.objectives, experiment.evaluator)
    wanted = ([pool[i] for i in sorted({i for chosen in picks.values() for i in chosen})]
              if picks_only else front)
    todo = [r for r in wanted if params_key(r["params"]) not in cache]
    if todo and not train:
        raise SystemExit(f"{folder}: {len(todo)} front points not fine-tuned yet in {cache_path}")
    if todo:
        prepared = experiment.evaluator.prepare(
            space=experiment.space, dataset=experiment.dataset, seed=config.seed,
            workdir=experiment.run_dir.path)
        runner = replace(experiment.trial_runner(shared=prepared.shared, in_process_rules=False),
                         stage="final")
        for index, record in enumerate(todo):
            outcome = runner(record["params"], f"replay_{record['number']}")
            if outcome.state != "COMPLETE":
                raise SystemExit(f"{folder}: trial {record['number']} failed: {outcome.error}")
            cache[params_key(record["params"])] = {
                "number": record["number"], "inherited": point(record["objectives"]),
                "tuned": point(outcome.objectives), "seconds": outcome.duration_s}
            cache_path.write_text(json.dumps(cache, indent=1))
            print(f"{folder.name} {index + 1}/{len(todo)}: trial {record['number']} "
                  f"inherited {record['objectives']['accuracy']:.3f} -> fine-tuned "
                  f"{outcome.objectives['accuracy']:.3f} ({outcome.duration_s:.0f} s)",
                  flush=True)
        experiment.release()
    recorded = {params_key(r["params"]): point(r["objectives"]) for r in records
                if r.get("stage") == "final" and r.get("state") == "COMPLETE"}
    mt = [point(r["objectives"]) for r in pareto_front(
        [r for r in RunDirectory(folder / "mt").load_trials() if r.get("state") == "COMPLETE"],
        experiment.objectives)] if (folder / "mt").exists() else []
    return {"pool": pool, "front": front, "picks": picks, "whole_front": not picks_only,
            "objectives": experiment.objectives, "cache": cache, "recorded": recorded,
            "mt": mt, "evaluator": experiment.evaluator}


def scorers(points, chance: float) -> dict:
    """The two scores of a front, on axes fixed by ``points`` (all fronts of a folder).

    ``same-clock``: ``same_clock.py``'s (accuracy from the worst to the best point found,
    reference 1.1 beyond the worst: a model at chance accuracy still adds a thin slab).
    ``at-chance``: the accuracy axis runs from ``chance`` to the best point and the
    reference sits at ``chance`` itself, so a model no better than chance adds nothing.
    """
    from nascompress.pareto import hypervolume

    best = max(p[0] for p in points)
    logs = [(min(math.log10(p[j]) for p in points), max(math.log10(p[j]) for p in points))
            for j in (1, 2)]
    bounds = [(min(p[0] for p in points), best), *logs]

    def scale(value, lo, hi):
        return (value - lo) / (hi - lo) if hi > lo else 0.0

    def at_chance(front) -> float:
        vectors = [(scale(-a, -best, -chance), scale(math.log10(size), *logs[0]),
                    scale(math.log10(latency), *logs[1]))
                   for a, size, latency in front if a > chance]
        return hypervolume(vectors, (1.0, 1.1, 1.1)) if vectors else 0.0

    return {"same-clock": lambda front: scaled_hypervolume(front, bounds),
            "at-chance": at_chance}


def score_folder(data: dict, chance: float) -> dict:
    from nascompress.evaluators.supernet import at_chance

    pool, front, cache = data["pool"], data["front"], data["cache"]
    whole_front = data["whole_front"]
    k = data["evaluator"].finalists_count
    tuned = {key: tuple(entry["tuned"]) for key, entry in cache.items()}
    picks = {name: [params_key(pool[i]["params"]) for i in chosen]
             for name, chosen in data["picks"].items()}
    # every k-subset of the fine-tuned front: what a perfect and a random choice get
    subsets = list(itertools.combinations(tuned.values(), k)) if whole_front else []
    scores = {}
    for scorer, hv in scorers(list(tuned.values()) + data["mt"], chance).items():
        every = [hv(list(subset)) for subset in subsets]
        scores[scorer] = {"rules": {name: hv([tuned[key] for key in keys])
                                    for name, keys in picks.items()},
                          "best": max(every, default=None),
                          "mean": statistics.fmean(every) if every else None,
                          "mt": hv(data["mt"]) if data["mt"] else None}
    inherited = {params_key(r["params"]): r["objectives"]["accuracy"] for r in pool}
    repeat = [(data["recorded"][key][0], tuned[key][0]) for key in tuned
              if key in data["recorded"]]
    tau = kendalltau([cache[key]["inherited"][0] for key in tuned],
                     [tuned[key][0] for key in tuned]).statistic if whole_front else None
    return {"front": len(tuned), "tau": tau, "scores": scores, "repeat": repeat,
            "picks": {name: [(inherited[key], tuned[key][0]) for key in keys]
                      for name, keys in picks.items()},
            "at_chance": (sum(at_chance(r, "accuracy") for r in pool), len(pool),
                          sum(at_chance(r, "accuracy") for r in front), len(front))}


def optional(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--cache", type=Path, required=True,
                        help="folder for one <run folder name>.json per folder")
    parser.add_argument("--score-only", action="store_true",
                        help="fine-tune nothing; score what the cache holds")
    parser.add_argument("--picks-only", action="store_true",
                        help="fine-tune only the points some rule picks, not the whole front")
    parser.add_argument("--chance", type=float, default=0.1,
                        help="the task's chance accuracy (mnist5k: 10 classes, 0.1)")
    parser.add_argument("--finetune-lr", type=float, default=None,
                        help="fine-tune at this learning rate instead of the search's "
                             "(give such a run its own --cache)")
    parser.add_argument("--finetune-alpha", type=float, default=None,
                        help="weight of the largest subnet's soft labels instead of the "
                             "search's (its own --cache too)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    overrides = {name: value for name, value in (("finetune_lr", args.finetune_lr),
                                                 ("finetune_alpha", args.finetune_alpha))
                 if value is not None}

    import torch

    torch.set_num_threads(1)
    args.cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for folder in args.folders:
        data = finetune_front(folder, args.cache / f"{folder.name}.json",
                              train=not args.score_only, picks_only=args.picks_only,
                              overrides=overrides)
        config = json.loads((folder / "ws.json").read_text())
        rows.append((folder.name, config, score_folder(data, args.chance)))
    names = list(rows[0][2]["picks"]) if rows else []
    lines = [
        "### Finalist choice scored on fine-tuned truth",
        "",
        f"{platform.machine()} CPU, 1 torch thread per process; {time.strftime('%Y-%m-%d')}. "
        f"Command: `python bench/supernet/finalists.py {' '.join(sys.argv[1:])}`",
    ]
    for scorer in ("same-clock", "at-chance"):
        lines += [
            "", f"Hypervolume of each rule's fine-tuned finalists, scored `{scorer}`:", "",
            "| search | seed | fine-tune epochs | front | tau inherited vs fine-tuned | "
            + " | ".join(names) + " | best k | mean k | multi-trial |",
            "|---|---|---|---|---|" + "---|" * len(names) + "---|---|---|"]
        for name, config, score in rows:
            values = score["scores"][scorer]
            lines.append(
                f"| {name} | {config['seed']} | "
                f"{config['evaluator']['options']['finetune_epochs']} | {score['front']} | "
                f"{optional(score['tau'], 3)} | "
                + " | ".join(f"{values['rules'][n]:.4f}" for n in names)
                + f" | {optional(values['best'])} | {optional(values['mean'])} | "
                f"{optional(values['mt'])} |")
    lines += ["", "Picks (inherited -> fine-tuned accuracy):", ""]
    for name, _, score in rows:
        for rule in names:
            lines.append(f"- {name} {rule}: " + ", ".join(
                f"{a:.3f} -> {b:.3f}" for a, b in score["picks"][rule]))
    lines += ["", "Inherited accuracy at chance (`at_chance`; trials recorded before the chance "
              "level was are never at chance): "
              + "; ".join(f"{name} {c[0]} of {c[1]} trials, {c[2]} of {c[3]} front points"
                          for name, _, score in rows for c in [score["at_chance"]])]
    lines += ["", "Same subnet fine-tuned twice (the search's finalist, this replay): "
              + "; ".join(f"{a:.4f} / {b:.4f}" for _, _, s in rows for a, b in s["repeat"]), ""]
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
