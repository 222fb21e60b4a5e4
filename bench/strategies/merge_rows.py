"""Put the rows of a partial benchmark run into the full ``results.md`` / ``results.json``.

Usage (from the repository root)::

    PYTHONPATH=. .venv/bin/python bench/strategies/merge_rows.py \\
        bench/strategies/results-neighbours.md --strategies bayesian,nsga2,rl

A run of ``run.py`` with ``--strategies`` and ``--output`` writes only the strategies
it ran (and ``random``), without the optuna peers. This replaces, in the full
``results.md`` (``--into``), the rows of ``--strategies`` in every section where the
partial run has them: per benchmark and budget, in the table of targets and against the
few-seed peers. Their "p vs best peer" and "worse than best peer" are computed again
from the per-seed HV of the full run's best peer (same seeds), so every figure of a
replaced row comes from the partial run or from the two runs' per-seed scores. It
refuses when ``random``'s per-seed HV differs between the two runs beyond rounding (the
runs would not be comparable). ``results.json`` gets the partial run's entries for those strategies
and a note of the partial run under ``info["replaced"]``; the ``.md`` says, under its
command, which rows come from which run.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
from scipy.stats import mannwhitneyu

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import _fmt_p  # noqa: E402

SECTION = re.compile(r"^## (\S+), budget (\d+)$")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _section_rows(text: str) -> dict[tuple[str, str], dict[str, list[str]]]:
    """Per (benchmark, budget): strategy -> the cells of its row."""
    rows: dict[tuple[str, str], dict[str, list[str]]] = {}
    current = None
    for line in text.splitlines():
        match = SECTION.match(line)
        if match:
            current = (match.group(1), match.group(2))
            rows[current] = {}
        elif line.startswith("## "):
            current = None
        elif current and line.startswith("| ") and not line.startswith("| strategy"):
            cells = _cells(line)
            rows[current][cells[0]] = cells
    return rows


def _target_rows(text: str) -> dict[tuple[str, str, str], list[str]]:
    rows, inside = {}, False
    for line in text.splitlines():
        if line.startswith("## "):
            inside = line == "## Targets"
        elif inside and line.startswith("| ") and not line.startswith("| benchmark"):
            cells = _cells(line)
            rows[(cells[0], cells[1], cells[2])] = cells
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("partial", type=Path, help="results .md of the partial run")
    parser.add_argument("--strategies", required=True, help="comma-separated")
    parser.add_argument("--into", type=Path, default=HERE / "results.md")
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.strategies.split(",") if s.strip()]
    full_text = args.into.read_text()
    part_text = args.partial.read_text()
    full_json = json.loads(args.into.with_suffix(".json").read_text())
    part_json = json.loads(args.partial.with_suffix(".json").read_text())
    full_runs, part_runs = full_json["runs"], part_json["runs"]

    for key, run in part_runs.items():
        bench, budget, name = key.split("|")
        # Equal up to rounding: the hypervolume of the same points can differ in its
        # last bit between runs (summation order), and that is not another search.
        if name == "random" and key in full_runs and not np.allclose(
                full_runs[key]["hv"], run["hv"], rtol=1e-12, atol=0.0):
            raise SystemExit(f"random's per-seed HV differs between the runs at {key}")

    part_rows = _section_rows(part_text)
    part_targets = _target_rows(part_text)
    best_peer: dict[tuple[str, str], str] = {}
    out: list[str] = []
    section = None
    in_targets = in_few = False
    for line in full_text.splitlines():
        match = SECTION.match(line)
        if line.startswith("## "):
            section = (match.group(1), match.group(2)) if match else None
            in_targets = line == "## Targets"
            in_few = line == "## Against the peers run with fewer seeds"
        elif section and line.startswith("best peer: "):
            best_peer[section] = line.removeprefix("best peer: ").strip()
        elif (section and line.startswith("| ") and _cells(line)[0] in names
              and _cells(line)[0] in part_rows.get(section, {})):
            name = _cells(line)[0]
            cells = list(part_rows[section][name])
            peer = best_peer.get(section, "-")
            hv = part_runs[f"{section[0]}|{section[1]}|{name}"]["hv"]
            peer_run = full_runs.get(f"{section[0]}|{section[1]}|{peer}")
            if peer_run is not None and name != peer:
                cells[4] = _fmt_p(mannwhitneyu(hv, peer_run["hv"],
                                               alternative="greater").pvalue)
            line = _row(cells)
        elif in_targets and line.startswith("| ") and _cells(line)[2] in names:
            cells = _cells(line)
            key = (cells[0], cells[1], cells[2])
            if key in part_targets:
                new = list(part_targets[key])
                peer = best_peer.get((cells[0], cells[1]), "-")
                peer_run = full_runs.get(f"{cells[0]}|{cells[1]}|{peer}")
                hv = part_runs[f"{cells[0]}|{cells[1]}|{cells[2]}"]["hv"]
                if peer_run is not None:
                    less = mannwhitneyu(hv, peer_run["hv"], alternative="less").pvalue
                    new[4] = "**yes**" if less < 0.05 else "no"
                line = _row(new)
        elif in_few and line.startswith("| ") and not line.startswith("| benchmark"):
            cells = _cells(line)
            name = cells[4].split(" (")[0]
            key = f"{cells[0]}|{cells[1]}|{name}"
            if name in names and key in part_runs:
                peer = cells[2].split(" (")[0]
                peer_hv = full_runs[f"{cells[0]}|{cells[1]}|{peer}"]["hv"]
                hv = part_runs[key]["hv"]
                cells[4] = f"{name} ({len(hv)})"
                cells[5] = f"{np.median(hv):.4f}"
                cells[6] = _fmt_p(mannwhitneyu(hv, peer_hv, alternative="less").pvalue)
                cells[7] = _fmt_p(mannwhitneyu(hv, peer_hv, alternative="greater").pvalue)
                line = _row(cells)
        out.append(line)
        if line.startswith("Command: "):  # say where the replaced rows come from
            info = part_json["info"]
            out += ["", f"The rows of {', '.join(names)} come from a later run, merged by "
                        f"`merge_rows.py`: `{info['command'].strip()}`; {info['date']}."]
    args.into.write_text("\n".join(out) + "\n")

    for key, run in part_runs.items():
        if key.split("|")[2] in names:
            full_runs[key] = run
    full_json.setdefault("info", {})["replaced"] = {
        "strategies": names, "by": part_json["info"]}
    args.into.with_suffix(".json").write_text(json.dumps(full_json, indent=0) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
