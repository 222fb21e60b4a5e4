"""Fault-injection benchmark: does a search survive kills, and does bad input fail cleanly?

Usage (from the repository root)::

    .venv/bin/python bench/faults/run.py              # all four cases, writes results.md
    .venv/bin/python bench/faults/run.py --only a,c   # some of them

Cases, each through the real command line (``python -m nascompress.cli``) in a child
process started in its own session, with a tiny evaluator (1 epoch, short latency timing):

a. **Driver killed.** A 20-trial Ray search (2 at a time) whose driver is SIGKILLed, with
   its whole process group, at 3 seeded points (when ``trials.jsonl`` reaches k lines),
   each time followed by ``nascompress resume``; the last resume runs to the end. Counts
   COMPLETE trials, lost ones (numbers 0..19 missing), duplicated ones (repeated trial
   ids or numbers), artifacts missing, and whether ``pareto.json`` equals the front
   recomputed from ``trials.jsonl``.
b. **Workers killed.** A 12-trial Ray search with ``retries: 2``; the benchmark SIGKILLs
   5 Ray worker processes of this search (in the child's session) while they run a trial
   (process title ``ray::ImplicitFunc.train``; an idle reused actor is titled
   ``ray::ImplicitFunc``; the trial is the worker's cwd, Tune's trial folder), each
   after a seeded delay into its trial, at most ``retries`` times per trial (a third kill
   of one trial ends it FAILED, as configured). Counts trials finished (COMPLETE, or
   FAILED with a reason), lost, duplicated, and retries (Tune's ``num_failures`` per
   trial: one per kill that struck a running trial). Kill timing depends on the machine,
   so the figures vary a little from run to run.
c. **Malformed configs.** The 200 configs of ``bench/faults/malformed.py`` (also
   ``tests/test_config_fuzz.py``), run in this process with the runners replaced.
d. **Two-node cluster.** ``ray.cluster_utils.Cluster`` on loopback (head + one worker
   node, 1 CPU each); trials per node.

Clean-up: every child runs in a new session; when it ends (or is killed), any process
left in that session (Ray's GCS, raylet, workers) is SIGKILLed. Nothing else is touched:
no ``ray stop``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # for bench.faults.malformed when run as a script

TINY = """
trials: {trials}
runner: ray
seed: {seed}
max_concurrent: 2
retries: {retries}
strategy: {{name: bayesian, options: {{n_startup_trials: 3}}}}
evaluator:
  options:
    epochs: 1
    finetune_epochs: 1
    teacher_epochs: 1
    latency: {{min_repeats: 3, max_repeats: 10, warmup: 1, time_cap_s: 0.2}}
"""

ENV = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
ENV.update(RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(ROOT))
CLI = [sys.executable, "-m", "nascompress.cli"]
RUN_TIMEOUT_S = 900


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- processes ---------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # fields after "(comm)": state ppid pgrp session


def session_pids(sid: int) -> list[int]:
    """Live processes (not zombies) of session ``sid``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields and fields[0] != "Z" and int(fields[3]) == sid:
            pids.append(int(entry.name))
    return pids


def title(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


class Child:
    """A CLI command in a new session; :meth:`cleanup` ends whatever is left of it."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None):
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in cleanup()
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                        cwd=ROOT, env=env or ENV, start_new_session=True)
        self.sid = self.process.pid

    def poll(self) -> int | None:
        return self.process.poll()

    def kill_group(self) -> None:
        try:
            os.killpg(self.sid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float = RUN_TIMEOUT_S) -> int | None:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def cleanup(self, grace_s: float = 10.0) -> int:
        """SIGKILL what is left of this child's session after ``grace_s``; returns how many.

        The grace period lets Ray's own processes notice that their driver or raylet is
        gone and exit by themselves; what outlives it is counted and killed.
        """
        if self.poll() is None:
            self.kill_group()
            self.process.wait()
        deadline = time.time() + grace_s
        while session_pids(self.sid) and time.time() < deadline:
            time.sleep(0.2)
        killed: set[int] = set()
        deadline = time.time() + 15
        while time.time() < deadline:
            left = session_pids(self.sid)
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        self._log.close()
        return len(killed)


# -- records -----------------------------------------------------------------------------


def lines(path: Path) -> int:
    try:
        return len(path.read_text(encoding="utf-8").splitlines())
    except OSError:
        return 0


def recorded_ids(run_dir: Path) -> set[str]:
    ids = set()
    try:
        text = (run_dir / "trials.jsonl").read_text(encoding="utf-8")
    except OSError:
        return ids
    for line in text.splitlines():
        try:
            ids.add(json.loads(line)["trial_id"])
        except (ValueError, KeyError):
            pass
    return ids


def check_records(run_dir: Path, budget: int) -> dict[str, Any]:
    """Counts that say whether the run's records are whole."""
    from nascompress.pareto import front_hypervolume, pareto_front, reference_point
    from nascompress.search.records import RunDirectory

    run = RunDirectory(run_dir)
    records = run.load_trials()
    objectives, constraints = run.objectives(), run.constraints()
    ids = [r["trial_id"] for r in records]
    numbers = [r["number"] for r in records]
    front = pareto_front(records, objectives, constraints)
    stored = json.loads((run_dir / "pareto.json").read_text(encoding="utf-8"))
    ref = reference_point(records, objectives)
    volume = front_hypervolume(front, objectives, ref) if front and ref else 0.0
    pareto_ok = (
        [(t["number"], t["trial_id"]) for t in stored["front"]]
        == [(t["number"], t["trial_id"]) for t in front]
        and stored["n_trials"] == len(records)
        and math.isclose(stored["hypervolume"]["value"], volume, rel_tol=1e-9, abs_tol=1e-12)
    )
    missing_artifacts = 0
    for r in records:
        if r["state"] != "COMPLETE":
            continue
        artifact = (r.get("metrics") or {}).get("artifact")
        path = run_dir / "models" / str(artifact)
        if not artifact or not path.exists() or path.stat().st_size != r["objectives"].get(
                "size_bytes"):
            missing_artifacts += 1
    failed = [r for r in records if r["state"] != "COMPLETE"]
    return {
        "records": len(records),
        "complete": sum(r["state"] == "COMPLETE" for r in records),
        "failed": len(failed),
        "failed_without_reason": sum(not (r.get("error") or "").strip() for r in failed),
        "failed_reasons": sorted({(r.get("error") or "")[:120] for r in failed}),
        "lost": len(set(range(budget)) - set(numbers)),
        "duplicated": (len(ids) - len(set(ids))) + (len(numbers) - len(set(numbers))),
        "over_budget": max(0, len(records) - budget),
        "pareto_ok": pareto_ok,
        "front_size": len(front),
        "missing_artifacts": missing_artifacts,
        "run_status": run.read_run().get("status"),
        "resumes": len(run.read_run().get("resumed", [])),
    }


def write_config(folder: Path, *, trials: int, seed: int, retries: int) -> Path:
    path = folder / "experiment.yaml"
    path.write_text(TINY.format(trials=trials, seed=seed, retries=retries))
    return path


# -- a. driver killed ----------------------------------------------------------------------


def driver_kills(work: Path, rng: random.Random, *, trials: int = 20, kills: int = 3):
    folder = work / "a"
    folder.mkdir()
    config = write_config(folder, trials=trials, seed=rng.randrange(1000), retries=1)
    run_dir = folder / "out" / "driver"
    points = sorted(rng.sample(range(1, trials), kills))
    log(f"a. driver kills at trial-log lengths {points}")
    steps, leftovers, started = [], 0, time.time()
    for index, point in enumerate(points):
        args = (["search", "--config", str(config), "--name", "driver", "--output-dir",
                 str(folder / "out")] if index == 0 else ["resume", str(run_dir)])
        child = Child(CLI + args + ["--quiet"], folder / "log.txt")
        deadline = time.time() + RUN_TIMEOUT_S
        while child.poll() is None and time.time() < deadline:
            if lines(run_dir / "trials.jsonl") >= point:
                child.kill_group()
                break
            time.sleep(0.05)
        at = lines(run_dir / "trials.jsonl")
        exited = child.poll()
        leftovers += child.cleanup()
        steps.append({"kill_at": point, "log_lines_after_kill": at,
                      "exited_before_kill": exited not in (None, -signal.SIGKILL)})
        log(f"a. killed {'search' if index == 0 else 'resume'} at {at} records")
    child = Child(CLI + ["resume", str(run_dir), "--quiet"], folder / "log.txt")
    code = child.wait()
    leftovers += child.cleanup()
    result = check_records(run_dir, trials)
    strategy = json.loads((run_dir / "strategy.json").read_text(encoding="utf-8"))
    result.update(
        exit_code=code, kills=steps, leftover_processes=leftovers,
        # asked before a checkpoint and unfinished when a kill came: on resume the
        # strategy is told these FAILED (trials asked after the last checkpoint are not in
        # it, so this is a lower bound on the trials the kills cut off)
        interrupted_in_flight=len(set(strategy["asked"]) - recorded_ids(run_dir)),
        seconds=round(time.time() - started),
    )
    return result


# -- b. workers killed ---------------------------------------------------------------------


def tune_failures(run_dir: Path) -> dict[str, int]:
    """Tune's ``num_failures`` per trial id, from the newest experiment state."""
    failures: dict[str, int] = {}
    for state in sorted((run_dir / "ray").glob("tune-*/experiment_state-*.json")):
        data = json.loads(state.read_text(encoding="utf-8"))
        for trial_json, runtime_json in data["trial_data"]:
            trial_id = json.loads(trial_json)["trial_id"]
            failures[trial_id] = json.loads(runtime_json).get("num_failures", 0)
    return failures


TRAINING = "ray::ImplicitFunc.train"  # a Tune function-trainable actor inside train()


def worker_trial(pid: int) -> str | None:
    """The trial a Tune worker runs: Tune makes the trial's working dir its cwd."""
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None
    name = Path(cwd).name
    return name.removeprefix("trial_") if name.startswith("trial_") else None


def worker_kills(work: Path, rng: random.Random, *, trials: int = 12, kills: int = 5,
                 retries: int = 2):
    folder = work / "b"
    folder.mkdir()
    config = write_config(folder, trials=trials, seed=rng.randrange(1000), retries=retries)
    run_dir = folder / "out" / "workers"
    child = Child(CLI + ["search", "--config", str(config), "--name", "workers",
                         "--output-dir", str(folder / "out"), "--quiet"], folder / "log.txt")
    hits: list[dict[str, Any]] = []
    started = time.time()
    deadline = started + RUN_TIMEOUT_S
    training_since: dict[int, float] = {}  # worker pid -> when it was first seen training
    kill_after: dict[int, float] = {}  # worker pid -> seeded delay before killing it
    not_before = started
    # Spread the kills over the first third of the run: kill i waits for this many records.
    thresholds = sorted(rng.randint(0, trials // 3) for _ in range(kills))
    hits_per_trial: dict[str, int] = {}
    while child.poll() is None and len(hits) < kills and time.time() < deadline:
        now = time.time()
        records = lines(run_dir / "trials.jsonl")
        # Only this search's workers: they are in the child's session.
        training = {pid for pid in session_pids(child.sid) if title(pid) == TRAINING}
        for pid in list(training_since):
            if pid not in training:
                del training_since[pid]
        for pid in sorted(training):
            if pid not in training_since:
                training_since[pid] = now
                # Short: a warm worker finishes a tiny trial in about a second.
                kill_after[pid] = rng.uniform(0.2, 1.0)
        ready = [pid for pid in sorted(training)
                 if now - training_since[pid] >= kill_after[pid] and now >= not_before
                 and records >= thresholds[len(hits)]]
        # At most 'retries' kills per trial (one more and it ends FAILED, by design: that
        # is Tune's FailureConfig, not what this case measures), and the trial hit least
        # so far first, so that the retries spread over several trials.
        trial_of = {pid: worker_trial(pid) for pid in ready}
        trial_of = {pid: t for pid, t in trial_of.items()
                    if t and hits_per_trial.get(t, 0) < retries}
        ready = list(trial_of)
        fewest = min((hits_per_trial.get(t, 0) for t in trial_of.values()), default=0)
        ready = [pid for pid in ready if hits_per_trial.get(trial_of[pid], 0) == fewest]
        if ready:
            pid = rng.choice(ready)
            name, trial_id = title(pid), trial_of[pid]
            if name == TRAINING and trial_id:  # still inside a trial right now
                os.kill(pid, signal.SIGKILL)
                hits_per_trial[trial_id] = hits_per_trial.get(trial_id, 0) + 1
                hits.append({"pid": pid, "trial_id": trial_id, "title": name,
                             "at_s": round(now - started, 1),
                             "training_for_s": round(now - training_since[pid], 1),
                             "records_at_kill": records})
                log(f"b. killed worker {pid} in trial {trial_id} after "
                    f"{now - training_since[pid]:.1f} s in it ({records} records)")
                not_before = now + rng.uniform(0.5, 2.0)
        time.sleep(0.1)
    code = child.wait()
    leftovers = child.cleanup()
    result = check_records(run_dir, trials)
    failures = tune_failures(run_dir)
    states = {}
    for line in (run_dir / "trials.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        states[record["trial_id"]] = record["state"]
    result.update(
        exit_code=code, kills=len(hits), hits=hits, leftover_processes=leftovers,
        # Tune counts a failure for each kill that struck a running trial, then retries it
        retries=sum(failures.values()),
        trials_retried=sum(1 for n in failures.values() if n > 0),
        hit_trials_outcome={
            tid: f"{states.get(tid, 'MISSING')} (killed {n}x, Tune failures "
                 f"{failures.get(tid, 0)})" for tid, n in sorted(hits_per_trial.items())},
        seconds=round(time.time() - started),
    )
    return result


# -- c. malformed configs ------------------------------------------------------------------


def malformed_configs(work: Path):
    from bench.faults.malformed import generate, run_case

    folder = work / "c"
    folder.mkdir()
    started = time.time()
    verdicts = [run_case(case, folder) for case in generate()]
    return {
        "configs": len(verdicts),
        "exit_2": sum(v.code == 2 for v in verdicts),
        "one_line_error": sum(len(v.stderr.strip().splitlines()) == 1
                              and v.stderr.startswith("nascompress: error:") for v in verdicts),
        "tracebacks": sum(v.traceback for v in verdicts),
        "silent_acceptances": sum(v.silent for v in verdicts),
        "naming_the_field": sum(v.named for v in verdicts),
        "problems": [f"{v.case.id}: {v.problems}" for v in verdicts if v.problems],
        "seconds": round(time.time() - started, 1),
    }


# -- d. two-node cluster -------------------------------------------------------------------

CLUSTER_SCRIPT = textwrap.dedent("""
    import json, sys
    from ray.cluster_utils import Cluster
    from nascompress import cli

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "node_ip_address": "127.0.0.1"})
    worker = cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    with open(sys.argv[3], "w") as handle:
        json.dump({"head": cluster.head_node.node_id, "worker": worker.node_id}, handle)
    try:
        code = cli.main(["search", "--config", sys.argv[1], "--address", cluster.address,
                         "--output-dir", sys.argv[2], "--name", "cluster", "--quiet"])
    finally:
        cluster.shutdown()
    sys.exit(code)
""")


def cluster_search(work: Path, rng: random.Random, *, trials: int = 8):
    folder = work / "d"
    folder.mkdir()
    config = write_config(folder, trials=trials, seed=rng.randrange(1000), retries=1)
    nodes_file = folder / "nodes.json"
    env = {**ENV, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    started = time.time()
    child = Child([sys.executable, "-c", CLUSTER_SCRIPT, str(config), str(folder / "out"),
                   str(nodes_file)], folder / "log.txt", env=env)
    code = child.wait()
    leftovers = child.cleanup()
    run_dir = folder / "out" / "cluster"
    result = check_records(run_dir, trials)
    nodes = json.loads(nodes_file.read_text())
    names = {nodes["head"]: "head", nodes["worker"]: "worker"}
    per_node: dict[str, int] = {}
    for line in (run_dir / "trials.jsonl").read_text(encoding="utf-8").splitlines():
        node = json.loads(line).get("metrics", {}).get("node_id")
        label = names.get(node, f"other:{node}")
        per_node[label] = per_node.get(label, 0) + 1
    result.update(exit_code=code, per_node=per_node, leftover_processes=leftovers,
                  seconds=round(time.time() - started))
    return result


# -- report --------------------------------------------------------------------------------


def table(results: dict[str, dict[str, Any]]) -> str:
    rows = []
    if "a" in results:
        a = results["a"]
        kills = ", ".join(str(k["log_lines_after_kill"]) for k in a["kills"])
        rows += [
            ("a. driver SIGKILLed 3x, resumed", "kill points (records on disk)", kills,
             "3 points"),
            ("", "COMPLETE / records", f"{a['complete']} / {a['records']}", "20 / 20"),
            ("", "lost / duplicated / over budget",
             f"{a['lost']} / {a['duplicated']} / {a['over_budget']}", "0 / 0 / 0"),
            ("", "cut-off trials told FAILED to the strategy on resume",
             a["interrupted_in_flight"], "-"),
            ("", "pareto.json == recomputed front", "yes" if a["pareto_ok"] else "NO", "yes"),
            ("", "artifacts missing", a["missing_artifacts"], "0"),
            ("", "resumes recorded / final exit", f"{a['resumes']} / {a['exit_code']}",
             "3 / 0"),
        ]
    if "b" in results:
        b = results["b"]
        outcomes = "; ".join(b["hit_trials_outcome"].values())
        rows += [
            ("b. 5 Ray workers SIGKILLed mid-trial", "workers killed", b["kills"], "5"),
            ("", "COMPLETE / FAILED (with reason) / records",
             f"{b['complete']} / {b['failed'] - b['failed_without_reason']} / {b['records']}",
             "12 finished"),
            ("", "lost / duplicated", f"{b['lost']} / {b['duplicated']}", "0 / 0"),
            ("", "retries (Tune num_failures) / trials retried",
             f"{b['retries']} / {b['trials_retried']}", "5 / <= 5"),
            ("", "outcome of the trials hit", outcomes, "-"),
            ("", "pareto.json == recomputed front", "yes" if b["pareto_ok"] else "NO", "yes"),
        ]
    if "c" in results:
        c = results["c"]
        rows += [
            ("c. malformed configs", "configs / exit 2 / one error line",
             f"{c['configs']} / {c['exit_2']} / {c['one_line_error']}", "200 / 200 / 200"),
            ("", "tracebacks / silent acceptances",
             f"{c['tracebacks']} / {c['silent_acceptances']}", "0 / 0"),
            ("", "messages naming the field", c["naming_the_field"], "200"),
        ]
    if "d" in results:
        d = results["d"]
        per_node = ", ".join(f"{k} {v}" for k, v in sorted(d["per_node"].items()))
        rows += [
            ("d. 2-node loopback cluster", "trials per node", per_node, "both > 0"),
            ("", "COMPLETE / records / exit",
             f"{d['complete']} / {d['records']} / {d['exit_code']}", "8 / 8 / 0"),
        ]
    leftovers = sum(r.get("leftover_processes", 0) for r in results.values())
    rows.append(("clean-up", "Ray processes alive 10 s after their CLI process ended "
                 "(then killed)", leftovers, "0"))
    lines_ = ["| case | figure | measured | expected |", "| --- | --- | --- | --- |"]
    lines_ += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines_)


NOTES = """
Notes:

- a. "cut-off trials told FAILED to the strategy" counts trials asked before the last
  strategy checkpoint that were still running when the driver died; trials asked after
  it are not in the checkpoint, so this is a lower bound on the trials each kill cut
  off. Cut-off trials are never recorded; the budget is refilled with new asks.
- b. Kills are capped at `retries` per trial. A trial killed once more than that ends
  FAILED, with the reason Tune gives ("The actor is dead because its worker process has
  died ..."), as `FailureConfig(max_failures=retries)` says; it is recorded, not lost.
- clean-up: processes are found by session id (each CLI child starts a new session), so
  other Ray instances on the machine are never touched.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="a,b,c,d", help="cases to run, e.g. 'a,c'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results.md")))
    args = parser.parse_args(argv)
    cases = [c.strip() for c in args.only.split(",") if c.strip()]
    work = Path(tempfile.mkdtemp(prefix="nascompress-faults-"))
    rng = random.Random(args.seed)
    seeds = {case: rng.randrange(2**31) for case in "abcd"}
    runs = {"a": lambda: driver_kills(work, random.Random(seeds["a"])),
            "b": lambda: worker_kills(work, random.Random(seeds["b"])),
            "c": lambda: malformed_configs(work),
            "d": lambda: cluster_search(work, random.Random(seeds["d"]))}
    results: dict[str, dict[str, Any]] = {}
    started = time.time()
    for case in cases:
        log(f"case {case} ...")
        results[case] = runs[case]()
        log(f"case {case}: {json.dumps(results[case], default=str)[:2000]}")
    text = table(results)
    print(text)
    details = json.dumps(results, indent=2, default=str)
    header = (
        "# Fault-injection benchmark\n\n"
        f"`.venv/bin/python bench/faults/run.py --seed {args.seed}` (cases "
        f"{','.join(cases)}) on {time.strftime('%Y-%m-%d')}: {platform.machine()}, "
        f"{os.cpu_count()} cores shared with other work, Python "
        f"{platform.python_version()}; {round(time.time() - started)} s in all. What each "
        "case does: the docstring of `bench/faults/run.py`.\n\n"
    )
    raw = f"<details><summary>raw figures</summary>\n\n```json\n{details}\n```\n\n</details>\n"
    Path(args.out).write_text(f"{header}{text}\n{NOTES}\n{raw}")
    if args.keep:
        log(f"work folder kept: {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
