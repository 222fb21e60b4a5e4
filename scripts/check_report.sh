#!/usr/bin/env bash
# Render a run's HTML report and take a headless Chromium screenshot of it, to check by eye
# (or in a test) that the page renders offline with its Pareto plots.
#
#   bash scripts/check_report.sh RUN_DIR [OUT_HTML]
#
# Writes OUT_HTML (default RUN_DIR/report.html), its PNGs, and OUT_HTML with .png instead
# of .html (the screenshot). Exits 0 when the screenshot exists and is not trivially small.
# Needs Chromium at $CHROMIUM (default /usr/bin/chromium); on Debian: apt-get install chromium.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 RUN_DIR [OUT_HTML]" >&2
    exit 2
fi
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
run_dir="$1"
out="${2:-$run_dir/report.html}"
python="${PYTHON:-$repo/.venv/bin/python}"
chromium="${CHROMIUM:-/usr/bin/chromium}"

if [ ! -f "$run_dir/run.json" ]; then
    echo "check_report.sh: RUN_DIR: '$run_dir' is not a run folder (no run.json)" >&2
    exit 2
fi
if [ ! -x "$chromium" ]; then
    echo "check_report.sh: no Chromium at '$chromium' (set CHROMIUM, or apt-get install chromium)" >&2
    exit 2
fi

"$python" -m nascompress.cli report "$run_dir" --out "$out"

html="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
shot="${html%.html}.png"
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
rm -f "$shot"
# No network at all: the report must not need it. The virtual time budget lets plotly
# finish drawing before the screenshot is taken.
"$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --hide-scrollbars --virtual-time-budget=10000 \
    --window-size=1400,1800 --screenshot="$shot" "file://$html" >/dev/null 2>&1 || true

if [ ! -s "$shot" ]; then
    echo "check_report.sh: Chromium wrote no screenshot to $shot" >&2
    exit 1
fi
size=$(wc -c <"$shot")
if [ "$size" -lt 20000 ]; then
    echo "check_report.sh: screenshot $shot is only $size bytes: the page looks blank" >&2
    exit 1
fi
echo "report: $html"
echo "screenshot: $shot ($size bytes)"
