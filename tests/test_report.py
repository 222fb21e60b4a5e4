"""The HTML report: self-contained, one plot per objective pair, the table, the settings."""

import base64
import gzip
import re
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import pytest

from nascompress import cli
from nascompress.objectives import Objective
from nascompress.pareto import front_hypervolume, pareto_front, reference_point
from nascompress.report import ReportDependencyError, build_report
from nascompress.report.data import hypervolume_history
from nascompress.search.records import RunDirectory

REPO = Path(__file__).resolve().parents[1]
OBJECTIVES = [Objective("accuracy", "max"), Objective("size_bytes", "min")]


def record(number, accuracy, size, state="COMPLETE"):
    return {"number": number, "trial_id": f"t{number}", "state": state, "params": {},
            "objectives": {"accuracy": accuracy, "size_bytes": size}, "metrics": {}}


def test_hypervolume_history_is_monotone_and_ends_at_the_front_volume():
    trials = [record(0, 0.5, 100.0), record(1, 0.4, 200.0), record(2, 0.9, 150.0),
              record(3, 0.0, 0.0, state="FAILED"), record(4, 0.6, 50.0)]
    reference = reference_point(trials, OBJECTIVES)
    history = hypervolume_history(trials, OBJECTIVES, [], reference)
    assert [n for n, _ in history] == [0, 1, 2, 3, 4]
    values = [v for _, v in history]
    assert values == sorted(values)
    assert values[1] == values[0]  # #1 is dominated by #0
    front = pareto_front(trials, OBJECTIVES)
    assert values[-1] == pytest.approx(front_hypervolume(front, OBJECTIVES, reference))


def test_hypervolume_history_without_reference_is_empty():
    assert hypervolume_history([], OBJECTIVES, [], {}) == []


# --------------------------------------------------------------------------- real run

@pytest.fixture(scope="module")
def run_dir(request):
    pytest.importorskip("plotly")
    pytest.importorskip("matplotlib")
    return request.getfixturevalue("tiny_run_dir")  # trained only once these are there


@pytest.fixture(scope="module")
def report(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    assert build_report(run_dir, out=out) == out
    return out


def test_report_is_self_contained(report):
    text = report.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\ssrc\s*=", text, re.IGNORECASE)
    assert not re.search(r"<link[^>]*\shref\s*=\s*[\"']?https?:", text, re.IGNORECASE)
    assert not re.search(r"<img[^>]*\ssrc\s*=\s*[\"']?https?:", text, re.IGNORECASE)
    assert "Plotly.newPlot" in text
    # plotly.js itself is inline (gzipped, base64), not a reference: it unpacks to the
    # bundle plotly.py writes its figures for.
    packed = re.search(r'<script type="application/octet-stream" id="plotly-js-gz">'
                       r'([A-Za-z0-9+/=]+)</script>', text)
    bundle = gzip.decompress(base64.b64decode(packed.group(1))).decode("utf-8")
    assert "window.Plotly = Plotly" in bundle
    import plotly.offline

    assert f"plotly.js (basic - minified) v{plotly.offline.get_plotlyjs_version()}" in bundle
    assert len(bundle) > 1_000_000  # the whole library, not a stub
    assert report.stat().st_size < 1_000_000  # and still a light page for a small run


def test_report_has_a_plot_per_objective_pair(run_dir, report):
    text = report.read_text(encoding="utf-8")
    objectives = RunDirectory(run_dir).objectives()
    pairs = list(combinations(objectives, 2))
    assert len(pairs) == 3
    for x, y in pairs:
        assert f'id="pair-{x.name}-vs-{y.name}"' in text
        png = report.parent / "report_files" / f"pair-{x.name}-vs-{y.name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    embedded = re.findall(r'<img class="png"[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"',
                          text)
    assert len(embedded) == len(pairs) + 1  # + hypervolume
    assert all(base64.b64decode(data)[:4] == b"\x89PNG" for data in embedded)
    assert 'id="hypervolume"' in text


def test_hover_shows_trial_number_and_params(run_dir, report):
    # plotly writes its JSON with "/" escaped as \u002f
    text = report.read_text(encoding="utf-8").replace("\\u002f", "/")
    for trial in RunDirectory(run_dir).load_trials():
        if trial["state"] == "COMPLETE":
            assert f"trial #{trial['number']}" in text
    assert "arch/width = " in text and "quant/bits = " in text


def test_report_has_the_sortable_trial_table_and_settings(run_dir, report):
    text = report.read_text(encoding="utf-8")
    table = text[text.index('id="trials-table"'):text.index("</table>",
                                                            text.index('id="trials-table"'))]
    trials = RunDirectory(run_dir).load_trials()
    assert table.count("<tr") == len(trials) + 1
    assert table.count('class="front"') == len(pareto_front(
        trials, RunDirectory(run_dir).objectives()))
    assert "table.sortable" in text and "addEventListener(\"click\"" in text
    for heading in ("Versions", "Latency measurement", "Teacher", "Resolved config"):
        assert f"<h3>{heading}</h3>" in text


def test_missing_plotly_names_the_report_extra(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "plotly", None)  # makes "import plotly" fail
    with pytest.raises(ReportDependencyError, match=r"nascompress\[report\]"):
        build_report(run_dir, out=tmp_path / "r.html")
    assert cli.main(["report", str(run_dir), "--out", str(tmp_path / "r.html")]) == 1
    err = capsys.readouterr().err
    assert "plotly" in err and "'report' extra" in err
    assert not (tmp_path / "r.html").exists()


def test_cli_report_default_path(run_dir, tiny_run_copy, capsys):
    # The report goes into the run folder: into a copy, so the shared run stays as it is
    # (run_dir is asked for its skip without the 'report' extra).
    assert cli.main(["report", str(tiny_run_copy)]) == 0
    assert (tiny_run_copy / "report.html").is_file()
    assert str(tiny_run_copy / "report.html") in capsys.readouterr().out


def test_cli_report_not_a_run_folder(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "run_dir:" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs /usr/bin/chromium")
def test_check_report_script_screenshot_shows_the_front(run_dir, tmp_path):
    out = tmp_path / "shot" / "report.html"
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "check_report.sh"), str(run_dir), str(out)],
        capture_output=True, text=True, timeout=180,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    shot = out.with_suffix(".png")
    from matplotlib.image import imread

    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (1800, 1400)
    # The front markers are drawn in #d62728: they must be on screen.
    red = (abs(pixels[..., 0] - 214 / 255) < 0.05) & (abs(pixels[..., 1] - 39 / 255) < 0.05) \
        & (abs(pixels[..., 2] - 40 / 255) < 0.05)
    assert red.sum() > 200
