#!/usr/bin/env bash
# Set up (if needed) and run the test suite without the slow tests.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -m slow` for the long checks).
#
#   NASCOMPRESS_TEST_WORKERS  pytest-xdist workers for the default run (default: 2; 0 runs
#                             the suite in this one process). Much of the suite waits on
#                             Ray and on child processes, so two workers finish it sooner
#                             even on 2 cores; tests/conftest.py keeps the tests that share
#                             a local Ray or a module fixture on one worker.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
export RAY_USAGE_STATS_ENABLED=0
args=("$@")
if [ ${#args[@]} -eq 0 ]; then
    args=(-m "not slow" -n "${NASCOMPRESS_TEST_WORKERS:-2}" --dist loadgroup)
fi
set +e
.venv/bin/python -m pytest "${args[@]}"
status=$?
set -e
# pytest exits 5 when it collected nothing: that must fail, never pass silently.
if [ "$status" -eq 5 ]; then
    echo "test.sh: no tests ran" >&2
    exit 1
fi
exit "$status"
