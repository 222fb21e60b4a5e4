"""Command line: ``nascompress search``, ``resume``, ``pareto``, ``pick``, ``report``,
``dashboard``, ``spaces``.

``main(argv)`` returns the exit status: 0 on success, 2 for bad input (one message on
stderr naming the field, printed before any compute starts), 1 for other failures.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from nascompress import __version__

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class _OneLineErrors(argparse.ArgumentParser):
    """Usage errors (``--trials abc``) in the same one-line form as config errors."""

    def error(self, message: str):
        print(f"nascompress: error: {self.prog}: {message} (see '{self.prog} --help')",
              file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineErrors(
        prog="nascompress",
        description="Joint architecture + compression search for small, fast, accurate networks.",
    )
    parser.add_argument("--version", action="version", version=f"nascompress {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    search = sub.add_parser(
        "search", help="run a search (defaults: image-cnn space, digits, bayesian, local Ray)"
    )
    search.add_argument("--config", help="YAML experiment file; flags below override it")
    search.add_argument("--name", help="run name (folder under the output dir)")
    search.add_argument("--output-dir", help="output root (default: results)")
    search.add_argument("--trials", type=int, help="number of trials (budget)")
    search.add_argument("--max-concurrent", type=int, help="trials running at once")
    search.add_argument("--strategy", help="strategy name or 'module:Class'")
    search.add_argument("--seed", type=int, help="search seed")
    search.add_argument("--runner", choices=["ray", "local"],
                        help="ray (default) or local (in-process, one trial at a time)")
    search.add_argument("--address", help="join an existing Ray cluster at HOST:PORT")
    search.add_argument("--quiet", action="store_true", help="no per-trial progress lines")
    search.add_argument("--wide", action="store_true",
                        help="final front table with every parameter (default: fits 100 columns)")

    resume = sub.add_parser(
        "resume", help="continue an interrupted (or extend a finished) search to its budget"
    )
    resume.add_argument("run_dir", help="results/<run-name>")
    resume.add_argument("--trials", type=int, help="new total budget (extends the search)")
    resume.add_argument("--max-concurrent", type=int, help="trials running at once")
    resume.add_argument("--address", help="join an existing Ray cluster at HOST:PORT")
    resume.add_argument("--quiet", action="store_true", help="no per-trial progress lines")
    resume.add_argument("--wide", action="store_true",
                        help="final front table with every parameter (default: fits 100 columns)")

    pareto = sub.add_parser("pareto", help="print the Pareto front of a run from its records")
    pareto.add_argument("run_dir", help="results/<run-name>")
    pareto.add_argument("--format", choices=["table", "json", "csv"], default="table")
    pareto.add_argument("--wide", action="store_true",
                        help="table with every parameter and trial ids (default: the objectives "
                             "and the parameters that differ, within 100 columns)")

    pick = sub.add_parser(
        "pick", help="choose one Pareto point under constraints, optionally export it",
        description="Choose among the run's Pareto points (recomputed from trials.jsonl). "
                    "Default: the most accurate point meeting the constraints (ties: smaller "
                    "size, then lower latency). --knee: the point with the smallest normalized "
                    "Chebyshev distance to the ideal point. Exits 2 when nothing qualifies.",
    )
    pick.add_argument("run_dir", help="results/<run-name>")
    pick.add_argument("--max-latency-ms", type=float, metavar="X", help="latency_ms <= X")
    pick.add_argument("--max-size-bytes", type=float, metavar="Y", help="size_bytes <= Y")
    pick.add_argument("--min-accuracy", type=float, metavar="Z",
                      help="accuracy >= Z (a fraction in [0, 1])")
    pick.add_argument("--knee", action="store_true",
                      help="pick the knee point instead of the most accurate one")
    pick.add_argument("--export", choices=["onnx", "torchscript", "state_dict"],
                      help="export the chosen model (re-checked on the test split)")
    pick.add_argument("--out", help="file to export to (with --export); the manifest goes to "
                                    "<out>.manifest.json")

    report = sub.add_parser(
        "report", help="write a self-contained HTML report of a run (needs the 'report' extra)"
    )
    report.add_argument("run_dir", help="results/<run-name>")
    report.add_argument("--out", help="HTML file to write (default: <run_dir>/report.html)")

    dashboard = sub.add_parser(
        "dashboard", help="live view of a run in optuna-dashboard, on 127.0.0.1 only "
                          "(needs the 'dashboard' extra)",
        description="Serve optuna-dashboard (Pareto front, history, trial table) for the "
                    "run's optuna.journal, which the search writes as trials finish; it "
                    "listens on 127.0.0.1 only (it has no authentication: reach it from "
                    "elsewhere through an SSH tunnel). Ctrl-C stops it.",
    )
    dashboard.add_argument("run_dir", help="results/<run-name>")
    dashboard.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    dashboard.add_argument("--stop-after", type=float, metavar="SECONDS",
                           help="stop by itself after this many seconds")

    spaces = sub.add_parser("spaces", help="list the search spaces that can be named")
    spaces.add_argument("--format", choices=["table", "json"], default="table")
    return parser


def _search(args: argparse.Namespace) -> int:
    from nascompress.config import ConfigError, apply_overrides, load_yaml, parse_config

    try:
        data = load_yaml(args.config) if args.config else {}
        data = apply_overrides(data, {
            "name": args.name, "output_dir": args.output_dir, "trials": args.trials,
            "max_concurrent": args.max_concurrent, "strategy.name": args.strategy,
            "seed": args.seed, "runner": args.runner, "address": args.address,
        })
        config = parse_config(data)
        from nascompress.search.experiment import build_experiment

        experiment = build_experiment(config)
    except ConfigError as exc:
        return _error(str(exc))

    return _run(experiment, quiet=args.quiet, resume=False, wide=args.wide)


def _run(experiment, *, quiet: bool, resume: bool, wide: bool = False) -> int:
    from nascompress.config import ConfigError
    from nascompress.pareto import TrialState

    stream = None if quiet else sys.stdout
    try:
        if experiment.config.runner == "local":
            from nascompress.search.local import run_local

            session = run_local(experiment, stream=stream, resume=resume)
        else:
            from nascompress.search.controller import run_ray

            session = run_ray(experiment, stream=stream, resume=resume)
    except ConfigError as exc:  # settings only checkable once Ray is up (resources)
        return _error(str(exc))
    run_dir = experiment.run_dir.path
    complete = sum(1 for r in session.records if r["state"] == TrialState.COMPLETE)
    print(f"\n{len(session.records)} trials ({complete} complete) in {run_dir}")
    print(_render_front(run_dir, "table", wide=wide))
    return EXIT_OK if complete else EXIT_FAILURE


def _render_front(run_dir: Path, fmt: str, *, wide: bool = False) -> str:
    from nascompress.pareto import pareto_front
    from nascompress.search.records import RunDirectory, rows_to_csv
    from nascompress.tables import front_rows, front_table

    run = RunDirectory(run_dir)
    objectives = run.objectives()
    constraints = run.constraints()
    trials = run.load_trials()
    # Recomputed from trials.jsonl (the source of truth), not read from pareto.json.
    front = pareto_front(trials, objectives, constraints)
    if fmt == "table":
        header = f"Pareto front: {len(front)} of {len(trials)} trials"
        table = front_table(front, objectives, wide=wide)
        return f"{header}\n{table}" if table else f"{header} (empty)"
    rows = front_rows(front, objectives)
    if fmt == "json":
        return json.dumps(rows, indent=2)
    return rows_to_csv(rows).rstrip("\n")


def _resume(args: argparse.Namespace) -> int:
    from nascompress.config import ConfigError, apply_overrides, parse_config
    from nascompress.search.records import RunDirectory

    run_dir = RunDirectory(args.run_dir)
    try:
        if not run_dir.exists():
            raise ConfigError(f"run_dir: {args.run_dir!r} is not a run folder (no run.json)")
        recorded = run_dir.read_run().get("config")
        if not isinstance(recorded, dict):
            raise ConfigError(f"run_dir: {args.run_dir!r} has no recorded config in run.json")
        # The folder may have been moved since: it names the run, wherever it is now.
        data = apply_overrides(recorded, {
            "name": run_dir.path.resolve().name,
            "output_dir": str(run_dir.path.resolve().parent),
            "trials": args.trials, "max_concurrent": args.max_concurrent,
            "address": args.address,
        })
        config = parse_config(data)
        done = len(run_dir.load_trials())
        if args.trials is not None and args.trials < done:
            raise ConfigError(
                f"--trials: the run already has {done} recorded trials; give a budget >= {done}"
            )
        from nascompress.search.experiment import build_experiment

        experiment = build_experiment(config, allow_existing=True)
    except ConfigError as exc:
        return _error(str(exc))
    return _run(experiment, quiet=args.quiet, resume=True, wide=args.wide)


def _pareto(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    problem = _check_run_dir(run_dir)
    if problem:
        return _error(problem)
    print(_render_front(run_dir, args.format, wide=args.wide))
    return EXIT_OK


def _error(message: str, code: int = EXIT_USAGE) -> int:
    print(f"nascompress: error: {message}", file=sys.stderr)
    return code


def _check_run_dir(run_dir: Path) -> str | None:
    if not (run_dir / "run.json").exists():
        return f"run_dir: {str(run_dir)!r} is not a run folder (no run.json)"
    return None


def _pick_constraints(args: argparse.Namespace, known: set[str]):
    from nascompress.pareto import Constraint, is_finite_number

    flags = [("--max-latency-ms", args.max_latency_ms, "latency_ms", "<="),
             ("--max-size-bytes", args.max_size_bytes, "size_bytes", "<="),
             ("--min-accuracy", args.min_accuracy, "accuracy", ">=")]
    constraints = []
    for flag, value, metric, op in flags:
        if value is None:
            continue
        if not is_finite_number(value) or value < 0:
            raise ValueError(f"{flag} must be a finite number >= 0, but got {value!r}")
        if metric == "accuracy" and value > 1:
            raise ValueError(
                f"{flag} must be a fraction in [0, 1] (accuracy is recorded as a fraction), "
                f"but got {value!r}; for {value:g}% write {value / 100:g}"
            )
        if known and metric not in known:
            raise ValueError(
                f"{flag}: the run records no {metric!r}; its metrics are {sorted(known)}"
            )
        constraints.append(Constraint(metric, op, value))
    return constraints


def _pick(args: argparse.Namespace) -> int:
    from nascompress.picking import NoQualifyingPointError, known_metrics, pick
    from nascompress.search.records import RunDirectory

    run_dir = Path(args.run_dir)
    problem = _check_run_dir(run_dir)
    if problem:
        return _error(problem)
    if (args.export is None) != (args.out is None):
        return _error("--export and --out go together: give both (e.g. --export onnx "
                      "--out model.onnx) or neither")
    run = RunDirectory(run_dir)
    try:
        trials = run.load_trials()
        objectives = run.objectives()
        run_constraints = run.constraints()
        constraints = _pick_constraints(args, known_metrics(trials))
        result = pick(trials, objectives, constraints=constraints,
                      run_constraints=run_constraints, knee=args.knee)
    except NoQualifyingPointError as exc:
        print(exc.explanation)
        return EXIT_USAGE
    except (KeyError, TypeError, ValueError) as exc:
        return _error(str(exc))
    print(result.explanation)
    if args.export is None:
        return EXIT_OK

    from nascompress.export import ExportError, export_pick

    try:
        manifest = export_pick(run_dir, result.chosen, format=args.export, out=args.out)
    except ExportError as exc:
        return _error(str(exc))
    except OSError as exc:
        return _error(f"--out: cannot write {args.out!r}: {exc}")
    except ImportError as exc:
        return _error(str(exc), EXIT_FAILURE)
    exported = manifest.manifest_path.parent / manifest.file
    validation = result.chosen["objectives"].get("accuracy")
    print(f"\nExported {args.export}: {exported} ({manifest.size_bytes} bytes, "
          f"sha256 {manifest.sha256[:16]}...)")
    print(f"Test accuracy of the exported file: {manifest.test_accuracy:.4f} on "
          f"{manifest.test['examples']} held-out examples"
          + (f" (validation during the search: {validation:.4f})"
             if isinstance(validation, int | float) else ""))
    print(f"Manifest: {manifest.manifest_path}")
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    problem = _check_run_dir(run_dir)
    if problem:
        return _error(problem)
    from nascompress.report import ReportDependencyError, build_report

    try:
        path = build_report(run_dir, out=args.out)
    except ReportDependencyError as exc:
        return _error(str(exc), EXIT_FAILURE)
    except (OSError, ValueError) as exc:
        return _error(f"--out: cannot write the report: {exc}")
    print(f"Report: {path}")
    return EXIT_OK


def _dashboard(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    problem = _check_run_dir(run_dir)
    if problem:
        return _error(problem)
    if not 0 <= args.port < 65536:
        return _error(f"--port: expected 0-65535, but got {args.port}")
    from nascompress.search.journal import DashboardDependencyError, serve_dashboard

    def ready(url: str) -> None:
        print(f"optuna-dashboard for {run_dir} at {url} (Ctrl-C stops it)", flush=True)

    try:
        serve_dashboard(run_dir, port=args.port, stop_after_s=args.stop_after, ready=ready)
    except DashboardDependencyError as exc:
        return _error(str(exc), EXIT_FAILURE)
    except FileNotFoundError as exc:
        return _error(f"run_dir: {exc}; runs recorded before the journal existed have none")
    except OSError as exc:
        return _error(f"--port: cannot listen on 127.0.0.1:{args.port} ({exc})")
    return EXIT_OK


def _spaces(args: argparse.Namespace) -> int:
    from nascompress.spaces import SPACES

    rows = [{"name": name, "source": source}
            for name, source in sorted(SPACES.available().items())]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    from nascompress.tables import format_table

    print(format_table(rows, ["name", "source"]))
    print("\nAlso accepted: an import path 'package.module:ClassName' (runs that code: "
          "use trusted configs only).")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nascompress`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "search":
        return _search(args)
    if args.command == "resume":
        return _resume(args)
    if args.command == "pareto":
        return _pareto(args)
    if args.command == "pick":
        return _pick(args)
    if args.command == "report":
        return _report(args)
    if args.command == "spaces":
        return _spaces(args)
    if args.command == "dashboard":
        return _dashboard(args)
    return EXIT_USAGE  # pragma: no cover - argparse enforces a command


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
