"""Behaviour check for refactors: a seeded 12-trial local search, params and sizes per trial.

    python bench/equivalence/run.py --out bench/equivalence/after.json [--compare before.json]

Runs ``nascompress search`` (local runner, one trial at a time, fixed seed, shortened
recipe) twice: with the ``random`` strategy (params independent of measured objectives)
and with the default ``bayesian`` one. Records each trial's params and ``size_bytes``
(an exact byte count, so a change in training, compression or the artifact format
shows). ``--compare`` reports every trial whose params or size differ from a recording
made before the change, and exits 1 if any does. Latency is measured, hence noisy, and is
not compared; the bayesian run's params after its random start depend on measured
latencies too, but only through their ranking, and in practice they match.

Recorded: ``before.json`` (the code before the one-home-per-concern redesign, with the
teacher seeded) and ``after.json`` (after it); ``results.md`` says what was compared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """
seed: 3
trials: 12
runner: local
strategy: {{name: {strategy}}}
evaluator: {{name: compress-train, options: {{epochs: 3, finetune_epochs: 1, teacher_epochs: 3}}}}
"""


def run(strategy: str, root: Path) -> list[dict]:
    config = root / f"{strategy}.yaml"
    config.write_text(CONFIG.format(strategy=strategy), encoding="utf-8")
    # One thread everywhere: multi-threaded float reductions differ from run to run,
    # and a last-bit difference can change an artifact's size by a byte.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-m", "nascompress.cli", "search", "--config", str(config),
         "--output-dir", str(root), "--name", strategy, "--quiet"],
        check=True, stdout=subprocess.DEVNULL, env=env,
    )
    lines = (root / strategy / "trials.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    return [{"number": r["number"], "state": r["state"], "params": r["params"],
             "size_bytes": (r.get("objectives") or {}).get("size_bytes")} for r in records]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--compare", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.platform(),
                  "runs": {s: run(s, Path(tmp)) for s in ("random", "bayesian")}}
    args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    if not args.compare:
        return 0
    before = json.loads(args.compare.read_text(encoding="utf-8"))["runs"]
    differ = 0
    for strategy, trials in result["runs"].items():
        same = 0
        for old, new in zip(before[strategy], trials, strict=True):
            if old == new:
                same += 1
            else:
                differ += 1
                print(f"{strategy} trial {new['number']}: before {old} after {new}")
        print(f"{strategy}: {same}/{len(trials)} trials identical (params, state, size_bytes)")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
