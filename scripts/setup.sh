#!/usr/bin/env bash
# Sets up everything fmnist-tfx needs on a fresh Debian machine, idempotently:
# the Fashion-MNIST dataset (Debian package) and a Python 3.10 virtual
# environment (.venv) with the pinned TFX 1.16 stack and this package.
set -euo pipefail
cd "$(dirname "$0")/.."

DATASET_DIR=/usr/share/datasets/fashion-mnist
VENV=${VENV:-.venv}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ! -f "$DATASET_DIR/train-images-idx3-ubyte.gz" ]; then
  echo "== installing the dataset (Debian package dataset-fashion-mnist)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist
fi

find_python310() {
  local candidate
  if command -v pyenv >/dev/null 2>&1; then
    for candidate in "$(pyenv root)"/versions/3.10.*/bin/python; do
      [ -x "$candidate" ] && { echo "$candidate"; return; }
    done
  fi
  for candidate in python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do
    command -v "$candidate" >/dev/null 2>&1 && { command -v "$candidate"; return; }
  done
  echo "error: Python 3.10 not found (TFX 1.16 needs it): install it, e.g. with pyenv" >&2
  exit 2
}

if ! command -v uv >/dev/null 2>&1; then
  echo "== installing uv"
  python3 -m pip install -q uv
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV with $(find_python310)"
  uv venv -q -p "$(find_python310)" "$VENV"
fi

# A stamp of the install inputs (this script's flags among them), so a second
# `make` does not reinstall.
stamp="$VENV/.fmnist-installed"
inputs=$(cat setup.py constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$inputs" ]; then
  echo "== installing the pinned TFX 1.16 stack and fmnist-tfx into $VENV"
  # --compile-bytecode: uv, unlike pip, installs no .pyc files, and where
  # PYTHONDONTWRITEBYTECODE is set (as on this project's CI machines) Python
  # never caches them either: every process then compiles TensorFlow and TFX
  # from source on import, ~3x the CPU of a compiled import (README "Tests").
  # Each task of `fmnist pipeline dry-run` is such a process.
  uv pip install -q --compile-bytecode -p "$VENV/bin/python" \
    -c constraints.txt -e '.[all]'
  echo "$inputs" > "$stamp"
fi
echo "== ready: $VENV/bin/fmnist"
