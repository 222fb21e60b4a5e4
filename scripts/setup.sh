#!/usr/bin/env bash
# Create .venv and install nascompress with its tested dependencies (idempotent).
#
#   NASCOMPRESS_TORCH_SPEC  torch requirement to install (default: the tested torch==2.13.0;
#                           an unpinned torch pulls several GB of CUDA packages)
#   NASCOMPRESS_EXTRAS      extras to install (default: test,report,mnist,dashboard,mlflow,tensorboard)
#   PYTHON                  interpreter used to create .venv (default: python3)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TORCH_SPEC="${NASCOMPRESS_TORCH_SPEC:-torch==2.13.0}"
EXTRAS="${NASCOMPRESS_EXTRAS:-test,report,mnist,dashboard,mlflow,tensorboard}"
PYTHON="${PYTHON:-python3}"
VENV=.venv

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV with $($PYTHON --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi

# Skip the installs when nothing that decides them changed since the last success.
stamp="$VENV/.nascompress-setup"
want="$(cat pyproject.toml; echo "$TORCH_SPEC $EXTRAS")"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

echo "setup: installing $TORCH_SPEC, then nascompress[$EXTRAS] (first run takes a minute or two)"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# torch first and pinned, so that nothing later resolves an unpinned (CUDA) build.
"$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC"
"$VENV/bin/python" -m pip install --quiet -e ".[$EXTRAS]" "$TORCH_SPEC"
printf '%s' "$want" > "$stamp"
echo "setup: done"
