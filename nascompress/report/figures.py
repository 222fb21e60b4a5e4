"""Plotly (interactive) and matplotlib (static PNG) figures for the report.

Both libraries come with the ``report`` extra and are imported by the functions that use
them, so that importing :mod:`nascompress.report` never fails on a plain install.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nascompress.objectives import Objective
from nascompress.report.data import ReportData, format_value, param_names

FRONT_COLOR = "#d62728"
OTHER_COLOR = "#8c8c8c"
INFEASIBLE_COLOR = "#c7c7c7"
LINE_COLOR = "#1f77b4"


def axis_title(objective: Objective) -> str:
    direction = "higher is better" if objective.mode == "max" else "lower is better"
    unit = f" [{objective.unit}]" if objective.unit else ""
    return f"{objective.name}{unit} ({direction})"


def use_log_axis(values: Sequence[float]) -> bool:
    """Log scale when all values are positive and span at least a factor of 20 (sizes)."""
    positive = [v for v in values if v > 0]
    return bool(values) and len(positive) == len(values) and max(values) / min(values) >= 20


def slug(text: str) -> str:
    """A file- and id-safe version of ``text`` (objective names may hold '/')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def pair_id(x: Objective, y: Objective) -> str:
    return f"pair-{slug(x.name)}-vs-{slug(y.name)}"


def _groups(data: ReportData) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """(label, trials) for: the front, other feasible points, points breaking constraints."""
    from nascompress.pareto import is_feasible

    front = data.front_numbers
    others, infeasible = [], []
    for trial in data.complete:
        if trial.get("number") in front:
            continue
        (others if is_feasible(trial, data.constraints) else infeasible).append(trial)
    groups = [("Pareto front", list(data.front)), ("other COMPLETE trials", others)]
    if infeasible:
        groups.append(("violates the run's constraints", infeasible))
    return groups


def hover_text(trial: Mapping[str, Any], objectives: Sequence[Objective], params: list[str]) -> str:
    import html

    values = trial.get("objectives") or {}
    lines = [f"<b>trial #{trial.get('number')}</b> {html.escape(str(trial.get('trial_id')))}"]
    lines += [f"{html.escape(o.name)} = {format_value(values.get(o.name))}" for o in objectives]
    lines += [f"{html.escape(k)} = {html.escape(format_value((trial.get('params') or {}).get(k)))}"
              for k in params]
    return "<br>".join(lines)


def plotly_pair(data: ReportData, x: Objective, y: Objective):
    """Interactive scatter of every COMPLETE trial on ``x`` vs ``y``, the front highlighted."""
    import plotly.graph_objects as go

    params = param_names(data.trials)
    styles = {
        "Pareto front": {"color": FRONT_COLOR, "size": 11, "symbol": "circle",
                         "line": {"color": "black", "width": 1}},
        "other COMPLETE trials": {"color": OTHER_COLOR, "size": 7, "symbol": "circle",
                                  "opacity": 0.7},
        "violates the run's constraints": {"color": INFEASIBLE_COLOR, "size": 7,
                                           "symbol": "x"},
    }
    fig = go.Figure()
    # Drawn back to front, so that the highlighted front sits on top of the rest.
    for label, trials in reversed(_groups(data)):
        marker = dict(styles[label])
        opacity = marker.pop("opacity", 1.0)
        fig.add_trace(go.Scatter(
            x=[t["objectives"][x.name] for t in trials],
            y=[t["objectives"][y.name] for t in trials],
            mode="markers", name=f"{label} ({len(trials)})", marker=marker, opacity=opacity,
            text=[hover_text(t, data.objectives, params) for t in trials],
            hovertemplate="%{text}<extra></extra>",
        ))
    all_x = [t["objectives"][x.name] for t in data.complete]
    all_y = [t["objectives"][y.name] for t in data.complete]
    fig.update_layout(
        title={"text": f"{y.name} vs {x.name}"}, template="plotly_white", height=430,
        margin={"l": 60, "r": 20, "t": 50, "b": 50}, hovermode="closest",
        legend={"orientation": "h", "y": -0.2},
    )
    fig.update_xaxes(title_text=axis_title(x), type="log" if use_log_axis(all_x) else "linear")
    fig.update_yaxes(title_text=axis_title(y), type="log" if use_log_axis(all_y) else "linear")
    return fig


def plotly_hypervolume(data: ReportData):
    """Hypervolume of the front after each trial, at the fixed reference point."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(
        x=[n for n, _ in data.history], y=[v for _, v in data.history],
        mode="lines+markers", line={"shape": "hv", "color": LINE_COLOR},
        hovertemplate="after trial #%{x}<br>hypervolume %{y:.6g}<extra></extra>",
        name="hypervolume",
    ))
    fig.update_layout(
        title={"text": "Hypervolume over trials"}, template="plotly_white", height=380,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        xaxis_title="trial number", yaxis_title="hypervolume",
    )
    return fig


#: plotly.js's "basic" bundle (scatter, bar, pie; MIT, see vendor/plotly-LICENSE.txt), the
#: version plotly.py writes figures for, gzipped: about 0.4 MB against plotly.py's own
#: 4.8 MB bundle of every trace type.
PLOTLY_BUNDLE = Path(__file__).with_name("vendor") / "plotly-basic.min.js.gz"

#: Unpacks the inline bundle in the browser (``DecompressionStream``, no network) and runs
#: it; ``nascPlot(id)`` draws the figure whose JSON sits in ``<script id="{id}-json">``.
_LOADER = """<script type="application/octet-stream" id="plotly-js-gz">%s</script>
<script>
window.nascPlotly = (async () => {
  const bin = atob(document.getElementById("plotly-js-gz").textContent.trim());
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  const code = document.createElement("script");
  code.textContent = await new Response(stream).text();
  document.head.appendChild(code);
  return window.Plotly;
})();
window.nascPlot = (id) => window.nascPlotly.then((Plotly) => {
  const fig = JSON.parse(document.getElementById(id + "-json").textContent);
  return Plotly.newPlot(id, fig.data, fig.layout, fig.config);
}).catch((err) => {
  document.getElementById(id).textContent = "plot unavailable: " + err;
});
</script>"""


def plotly_loader_html() -> str:
    """The inline plotly.js bundle and the script that draws every figure (once a page)."""
    import base64

    data = base64.b64encode(PLOTLY_BUNDLE.read_bytes()).decode("ascii")
    return _LOADER % data


def figure_html(fig, *, div_id: str, height_px: int = 430) -> str:
    """The figure as an HTML fragment drawn by :func:`plotly_loader_html`'s script."""
    import json

    import plotly.io

    spec = json.loads(plotly.io.to_json(fig, validate=False))
    spec["config"] = {"displaylogo": False, "responsive": True}
    # Nothing in the JSON may close its <script> element.
    text = (json.dumps(spec, separators=(",", ":"))
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("/", "\\u002f"))
    return (f'<div id="{div_id}" class="plotly-graph-div" '
            f'style="height:{height_px}px; width:100%;"></div>\n'
            f'<script type="application/json" id="{div_id}-json">{text}</script>\n'
            f'<script>nascPlot("{div_id}");</script>')


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def png_pair(data: ReportData, x: Objective, y: Objective) -> bytes:
    """The same scatter as :func:`plotly_pair`, as PNG bytes (matplotlib, no pyplot state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.6))
    ax = fig.add_subplot()
    styles = {
        "Pareto front": {"c": FRONT_COLOR, "s": 55, "marker": "o", "edgecolors": "black",
                         "zorder": 3},
        "other COMPLETE trials": {"c": OTHER_COLOR, "s": 22, "marker": "o", "alpha": 0.7,
                                  "zorder": 2},
        "violates the run's constraints": {"c": INFEASIBLE_COLOR, "s": 22, "marker": "x",
                                           "zorder": 1},
    }
    for label, trials in _groups(data):
        if not trials:
            continue
        ax.scatter([t["objectives"][x.name] for t in trials],
                   [t["objectives"][y.name] for t in trials],
                   label=f"{label} ({len(trials)})", **styles[label])
        if label == "Pareto front":
            for t in trials:
                ax.annotate(str(t.get("number")),
                            (t["objectives"][x.name], t["objectives"][y.name]),
                            textcoords="offset points", xytext=(4, 4), fontsize=7)
    all_x = [t["objectives"][x.name] for t in data.complete]
    all_y = [t["objectives"][y.name] for t in data.complete]
    if use_log_axis(all_x):
        ax.set_xscale("log")
    if use_log_axis(all_y):
        ax.set_yscale("log")
    ax.set_xlabel(axis_title(x))
    ax.set_ylabel(axis_title(y))
    ax.set_title(f"{y.name} vs {x.name}")
    ax.grid(True, alpha=0.3)
    if data.complete:
        ax.legend(fontsize=8)
    return _png(fig)


def png_hypervolume(data: ReportData) -> bytes:
    """The hypervolume history as PNG bytes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    if data.history:
        ax.step([n for n, _ in data.history], [v for _, v in data.history], where="post",
                color=LINE_COLOR, marker="o", markersize=3)
    ax.set_xlabel("trial number")
    ax.set_ylabel("hypervolume")
    ax.set_title("Hypervolume over trials")
    ax.grid(True, alpha=0.3)
    return _png(fig)
