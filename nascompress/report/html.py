"""The self-contained HTML report of a run.

One file with everything inline (plotly.js's basic bundle, gzipped, unpacked by the
browser; styles; the table-sorting script; the PNGs as base64), so it opens offline and
can be mailed or archived as is. Sections, top to bottom:

1. a summary (trials, front size, hypervolume and its reference point);
2. one interactive scatter per pair of objectives: every COMPLETE trial, the Pareto front
   highlighted, hover shows the trial number, id, objectives and params;
3. the hypervolume after each trial at one fixed reference point (the run's final one);
4. the same pair plots as static PNGs (matplotlib), also written to ``<report>_files/``;
5. every trial in a table that sorts by any column (click its header);
6. the run's settings from ``run.json``: config, versions, latency set-up, teacher, ...
"""

from __future__ import annotations

import base64
import html
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nascompress.pareto import TrialState
from nascompress.report.data import ReportData, format_value, load_report_data, param_names

REPORT_EXTRA_HINT = "pip install 'nascompress[report]'"


class ReportDependencyError(ImportError):
    """plotly or matplotlib (the ``report`` extra) is not installed."""


def require_report_dependencies() -> None:
    """Raise :class:`ReportDependencyError` naming the ``report`` extra when plotly or
    matplotlib is missing."""
    missing = []
    for module in ("plotly", "matplotlib"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ReportDependencyError(
            f"the HTML report needs {' and '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed; install the 'report' "
            f"extra: {REPORT_EXTRA_HINT}"
        )


# The grid uses auto-fill, not auto-fit: plotly sizes each plot when its script runs,
# before the later plots exist; with auto-fit the first plot would take the full row then
# and keep that width.
_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1360px; padding: 16px 24px; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 4px; }
h2 { margin-top: 32px; border-bottom: 1px solid #ddd; }
.muted { color: #666; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(600px, 1fr)); gap: 12px; }
.plot { border: 1px solid #e4e4e4; border-radius: 4px; padding: 4px; min-height: 440px; }
.summary td { padding: 2px 12px 2px 0; }
table.trials { border-collapse: collapse; font-size: 0.85em; width: 100%; }
table.trials th, table.trials td { border: 1px solid #ddd; padding: 3px 6px; text-align: right; }
table.trials td.text, table.trials th.text { text-align: left; }
table.trials th { background: #f4f4f4; cursor: pointer; position: sticky; top: 0;
                  user-select: none; white-space: nowrap; }
table.trials th[data-dir="asc"]::after { content: " \\25B2"; }
table.trials th[data-dir="desc"]::after { content: " \\25BC"; }
table.trials tr.front td { background: #fdecea; font-weight: 600; }
table.trials tr.failed td { color: #999; }
.tablewrap { max-height: 640px; overflow: auto; }
table.kv { border-collapse: collapse; font-size: 0.9em; margin-bottom: 12px; }
table.kv td { border-top: 1px solid #eee; padding: 3px 12px 3px 0; vertical-align: top; }
table.kv td:first-child { font-weight: 600; white-space: nowrap; }
pre { background: #f7f7f7; padding: 8px; overflow: auto; font-size: 0.85em; }
img.png { max-width: 100%; border: 1px solid #e4e4e4; }
"""

# Plain JS, no library: a click on a header sorts the table by that column, numbers as
# numbers, text as text, blanks last; a second click reverses the order.
_SORT_SCRIPT = """
(function () {
  function cellValue(row, index) {
    var cell = row.cells[index];
    return cell ? (cell.getAttribute("data-sort") || cell.textContent).trim() : "";
  }
  function compare(a, b) {
    if (a === "" && b === "") return 0;
    if (a === "") return 1;
    if (b === "") return -1;
    var x = parseFloat(a), y = parseFloat(b);
    if (!isNaN(x) && !isNaN(y) && isFinite(a) && isFinite(b)) return x - y;
    return a.localeCompare(b);
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (th, index) {
      th.addEventListener("click", function () {
        var dir = th.getAttribute("data-dir") === "asc" ? "desc" : "asc";
        Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("data-dir"); });
        th.setAttribute("data-dir", dir);
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r1, r2) {
          var a = cellValue(r1, index), b = cellValue(r2, index);
          if (a === "" || b === "") return compare(a, b);  // blanks stay last both ways
          var c = compare(a, b);
          return dir === "asc" ? c : -c;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
  var toggle = document.getElementById("front-only");
  if (toggle) {
    toggle.addEventListener("change", function () {
      document.querySelectorAll("table.trials tbody tr").forEach(function (row) {
        row.style.display = toggle.checked && !row.classList.contains("front") ? "none" : "";
      });
    });
  }
})();
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _kv_table(items: Mapping[str, Any]) -> str:
    rows = []
    for key, value in items.items():
        if isinstance(value, Mapping | list):
            shown = f"<code>{_e(json.dumps(value, sort_keys=False))}</code>"
        else:
            shown = _e(format_value(value))
        rows.append(f"<tr><td>{_e(key)}</td><td>{shown}</td></tr>")
    return f'<table class="kv">{"".join(rows)}</table>' if rows else '<p class="muted">none</p>'


def _summary(data: ReportData) -> str:
    from nascompress.pareto import front_hypervolume

    run = data.run
    states: dict[str, int] = {}
    for trial in data.trials:
        states[trial.get("state", "?")] = states.get(trial.get("state", "?"), 0) + 1
    volume = (front_hypervolume(data.front, data.objectives, data.reference)
              if data.front and data.reference else 0.0)
    objectives = ", ".join(f"{o.name} ({o.mode}{', ' + o.unit if o.unit else ''})"
                           for o in data.objectives)
    items = {
        "run folder": str(data.path),
        "status": run.get("status", "unknown"),
        "trials": f"{len(data.trials)} ("
                  + ", ".join(f"{n} {s}" for s, n in sorted(states.items())) + ")",
        "objectives": objectives,
        "constraints": ", ".join(str(c) for c in data.constraints) or "none",
        "Pareto front": f"{len(data.front)} point(s): "
                        + ", ".join(f"#{t.get('number')}" for t in data.front)
                        + _front_source(data.front),
        "hypervolume": f"{volume:.6g}",
        "reference point": ", ".join(f"{k}={format_value(v)}" for k, v in data.reference.items())
                           + f" ({data.reference_rule})",
    }
    return _kv_table(items)


def _front_source(front) -> str:
    """What the front's scores are, when the trials say (weight sharing)."""
    from nascompress.pareto import score_source

    sources = sorted({score_source(t) for t in front} - {None})
    if not sources:
        return ""
    if sources == ["fine-tuned"]:
        return (" (the finalists: extracted from the supernet, fine-tuned and measured "
                "again; their scores are trained ones)")
    return (f" (scores {' and '.join(sources)}; an inherited score comes from weights "
            "shared with the supernet, not from training that model)")


def _trial_table(data: ReportData) -> str:
    from nascompress.pareto import score_source

    objectives = [o.name for o in data.objectives]
    params = param_names(data.trials)
    front = data.front_numbers
    # Weight sharing: which trials are finalists, and whose score is inherited.
    staged = any(score_source(t) for t in data.trials)
    extra = ["stage", "score_source"] if staged else []
    columns = (["number", "trial_id", "state", "front", *extra] + objectives + params
               + ["duration_s", "error"])
    text_columns = {"trial_id", "state", "front", "error", *extra}
    head = "".join(
        f'<th class="{"text" if c in text_columns else "num"}" title="click to sort">{_e(c)}</th>'
        for c in columns
    )
    body = []
    for trial in data.trials:
        on_front = trial.get("number") in front
        values = trial.get("objectives") or {}
        cells: list[tuple[str, Any]] = [
            ("number", trial.get("number")), ("trial_id", trial.get("trial_id")),
            ("state", trial.get("state")), ("front", "yes" if on_front else ""),
            *((("stage", trial.get("stage", "search")),
               ("score_source", score_source(trial))) if staged else ()),
            *((name, values.get(name)) for name in objectives),
            *((name, (trial.get("params") or {}).get(name)) for name in params),
            ("duration_s", trial.get("duration_s")), ("error", trial.get("error")),
        ]
        tds = []
        for name, value in cells:
            cls = "text" if name in text_columns else "num"
            sort = (f' data-sort="{value!r}"' if isinstance(value, float)
                    and not isinstance(value, bool) else "")
            tds.append(f'<td class="{cls}"{sort}>{_e(format_value(value))}</td>')
        row_class = "front" if on_front else ("failed" if trial.get("state") != TrialState.COMPLETE
                                              else "")
        body.append(f'<tr class="{row_class}">{"".join(tds)}</tr>')
    return (
        '<label><input type="checkbox" id="front-only"> show the Pareto front only</label>'
        '<div class="tablewrap"><table class="trials sortable" id="trials-table">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _settings(data: ReportData) -> str:
    run = data.run
    sections = [
        ("Versions", run.get("versions") or {}),
        ("Latency measurement", run.get("latency") or {}),
        ("Teacher", run.get("teacher") or {}),
        ("Dataset", run.get("dataset") or {}),
        ("Strategy", run.get("strategy") or {}),
        ("Evaluator", run.get("evaluator") or {}),
        ("Search space", run.get("space") or {}),
        ("Host", run.get("host") or {}),
        ("Run", {k: run.get(k) for k in ("name", "schema_version", "seed", "status",
                                          "created_at", "finished_at", "elapsed_s")
                 if k in run}),
    ]
    parts = [f"<h3>{_e(title)}</h3>{_kv_table(items)}" for title, items in sections]
    config = json.dumps(run.get("config") or {}, indent=2)
    parts.append(f"<h3>Resolved config</h3><pre>{_e(config)}</pre>")
    return "".join(parts)


def _png_section(pngs: list[tuple[str, str, bytes]]) -> str:
    figures = []
    for title, filename, data in pngs:
        encoded = base64.b64encode(data).decode("ascii")
        figures.append(
            f'<figure><img class="png" alt="{_e(title)}" src="data:image/png;base64,{encoded}">'
            f"<figcaption class=\"muted\">{_e(title)} (also saved as {_e(filename)})"
            "</figcaption></figure>"
        )
    return f'<div class="grid">{"".join(figures)}</div>'


def default_report_path(run_dir: str | Path) -> Path:
    """``<run>/report.html``."""
    return Path(run_dir) / "report.html"


def assets_dir_for(out: str | Path) -> Path:
    """The folder of the PNGs next to the report: ``report.html`` -> ``report_files/``."""
    out = Path(out)
    return out.with_name(f"{out.stem}_files")


def build_report(run_dir: str | Path, *, out: str | Path | None = None) -> Path:
    """Write the HTML report of a run and the PNGs next to it.

    Args:
        run_dir: the run folder (``results/<run>``).
        out: the HTML file to write; default ``<run_dir>/report.html``. The PNGs go to
            ``<out stem>_files/`` next to it (they are also embedded in the HTML).

    Returns:
        The path of the HTML file.

    Raises:
        ReportDependencyError: plotly or matplotlib is missing (the ``report`` extra).
        FileNotFoundError: ``run_dir`` has no ``run.json``.
    """
    require_report_dependencies()
    from nascompress.report import figures
    from nascompress.search.records import write_atomic

    data = load_report_data(run_dir)
    out = Path(out) if out is not None else default_report_path(run_dir)
    assets = assets_dir_for(out)
    assets.mkdir(parents=True, exist_ok=True)

    plots, pngs = [], []
    for x, y in data.pairs():
        div_id = figures.pair_id(x, y)
        fragment = figures.figure_html(figures.plotly_pair(data, x, y), div_id=div_id)
        plots.append(f'<div class="plot" data-pair="{_e(x.name)}|{_e(y.name)}">{fragment}</div>')
        png = figures.png_pair(data, x, y)
        filename = f"{div_id}.png"
        (assets / filename).write_bytes(png)
        pngs.append((f"{y.name} vs {x.name}", f"{assets.name}/{filename}", png))
    hv_fragment = figures.figure_html(figures.plotly_hypervolume(data), div_id="hypervolume",
                                      height_px=380)
    hv_png = figures.png_hypervolume(data)
    (assets / "hypervolume.png").write_bytes(hv_png)
    pngs.append(("Hypervolume over trials", f"{assets.name}/hypervolume.png", hv_png))

    name = data.run.get("name") or data.path.name
    if not data.complete:
        notice = '<p class="muted">No COMPLETE trials yet: the plots are empty.</p>'
    elif not plots:
        notice = '<p class="muted">The run has a single objective: there is no pair to plot.</p>'
    else:
        notice = ""
    reference = ", ".join(f"{k}={format_value(v)}" for k, v in data.reference.items())
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>nascompress report: {_e(name)}</title>
<style>{_STYLE}</style>
{figures.plotly_loader_html()}
</head>
<body>
<h1>nascompress report: {_e(name)}</h1>
<p class="muted">Generated {_e(time.strftime("%Y-%m-%d %H:%M:%S"))} from
{_e(data.path / "trials.jsonl")}; the front is recomputed from the trial log.</p>
{_summary(data)}
<h2 id="pareto">Pareto front: objective pairs</h2>
<p class="muted">Every COMPLETE trial; the Pareto front (over all objectives) in red.
Hover a point for its trial number and params; drag to zoom, double-click to reset.</p>
{notice}
<div class="grid">{"".join(plots)}</div>
<h2 id="hypervolume-history">Hypervolume over trials</h2>
<p class="muted">Hypervolume of the front after each trial, at the fixed reference point
{_e(reference) or "(none: no COMPLETE trial)"} ({_e(data.reference_rule)}).</p>
<div class="plot">{hv_fragment}</div>
<h2 id="static">Static images</h2>
<details><summary>PNG versions of the plots (matplotlib)</summary>{_png_section(pngs)}</details>
<h2 id="trials">Trials</h2>
<p class="muted">Click a column header to sort; Pareto points are highlighted.</p>
{_trial_table(data)}
<h2 id="settings">Run settings</h2>
{_settings(data)}
<script>{_SORT_SCRIPT}</script>
</body>
</html>
"""
    write_atomic(out, page)
    # The temporary file behind write_atomic is private (0600); a report is for sharing.
    out.chmod(0o644)
    return out
