#!/usr/bin/env bash
# Set up (if needed) and run a search; with no arguments, the default experiment:
# image-cnn space on the embedded digits data, Bayesian strategy, local Ray.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/nascompress search "$@"
