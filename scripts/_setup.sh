#!/usr/bin/env bash
# Shared set-up for ./scripts/demo and ./scripts/test: a virtual environment in .venv with
# renshu installed (editable) plus the extras named in $RENSHU_EXTRAS.
#
# torch is installed first, pinned to the CPU build (torch==2.13.0), unless the venv already has
# a torch: a plain `pip install torch` on Linux can pull a multi-GB CUDA build. To use another
# build (e.g. CUDA), install it into .venv yourself first; set-up keeps it.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for candidate in python3.11 python3.12 python3.10 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PY=$candidate; break; fi
  done
fi
[ -n "$PY" ] || { echo "set-up: no python3 found (renshu needs Python >= 3.10)" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "set-up: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
PIP="$VPY -m pip --disable-pip-version-check -q"

if ! $VPY -c "import torch" >/dev/null 2>&1; then
  echo "set-up: installing torch==${RENSHU_TORCH_VERSION:-2.13.0} (CPU build)"
  $PIP install "torch==${RENSHU_TORCH_VERSION:-2.13.0}" numpy 2>&1 | grep -v "^WARNING: Location" || true
  $VPY -c "import torch" || { echo "set-up: torch failed to install" >&2; exit 1; }
fi

extras=${RENSHU_EXTRAS:-}
stamp=".venv/.renshu-setup-$(cat pyproject.toml scripts/_setup.sh | sha1sum | cut -c1-12)-${extras//,/_}"
if [ ! -f "$stamp" ]; then
  spec="."
  [ -n "$extras" ] && spec=".[$extras]"
  echo "set-up: installing renshu${extras:+[$extras]} and its dependencies"
  $PIP install -e "$spec" 2>&1 | grep -v "^WARNING: Location" || true
  $VPY -c "import renshu" || { echo "set-up: renshu failed to install" >&2; exit 1; }
  touch "$stamp"
fi
