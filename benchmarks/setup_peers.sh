#!/usr/bin/env bash
# Creates benchmarks/.venv-peers: the PyTorch peers of benchmarks/peers.py.
#
# Kept apart from fewshot's own dependencies. CPU torch, and learn2learn built
# from its sdist: on Python 3.11 its released .c files do not compile, so the
# .pyx sources are re-cythonised with cython<3 and built without build
# isolation. learn2learn's __init__ imports its vision, gym and text modules
# (torchvision, gym), which we do not install; peers.py imports only
# `learn2learn.algorithms.maml` (see peers.import_learn2learn_core).
#
#   bash benchmarks/setup_peers.sh            # CPU torch (default)
#   TORCH_SPEC="torch" bash benchmarks/setup_peers.sh   # a CUDA build on a GPU machine
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="${PEERS_VENV:-$HERE/.venv-peers}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
L2L_VERSION="${L2L_VERSION:-0.2.0}"

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install --quiet --upgrade pip
$PIP install --quiet "$TORCH_SPEC" numpy "cython<3" setuptools wheel
if ! "$VENV/bin/python" -c "import learn2learn.algorithms.maml" 2>/dev/null \
    && ! "$VENV/bin/python" -c "import importlib.util as u; assert u.find_spec('learn2learn')" 2>/dev/null; then
    WORK="$(mktemp -d)"
    trap 'rm -rf "$WORK"' EXIT
    # Only learn2learn itself from source; its build needs the cython<3 installed above.
    $PIP download --quiet --no-deps --no-build-isolation --no-binary learn2learn \
        "learn2learn==$L2L_VERSION" -d "$WORK"
    tar -xzf "$WORK"/learn2learn-*.tar.gz -C "$WORK"
    SRC="$(ls -d "$WORK"/learn2learn-*/)"
    # Regenerate every C file from its .pyx with the installed cython<3.
    rm -rf "$SRC/.eggs"
    find "$SRC/learn2learn" -name '*.pyx' | while read -r pyx; do
        "$VENV/bin/cython" -3 "$pyx" -o "${pyx%.pyx}.c"
    done
    # Its requirements pull torchvision and gym, which peers.py does not use.
    $PIP install --quiet --no-build-isolation --no-deps "$SRC"
fi
cd "$HERE" && "$VENV/bin/python" - <<'PY'
import torch, peers
peers.import_learn2learn_core()
from learn2learn.algorithms.maml import MAML
print("peers venv ready: torch", torch.__version__, "learn2learn", MAML.__module__)
PY
