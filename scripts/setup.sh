#!/usr/bin/env bash
# Create .venv (if missing) and install actmax with its test, GAN/LPIPS, cluster and docs extras.
# Torch: the pinned build that this machine kind serves from its local disk, else the newest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# quiet pip, minus the notes some machines' pip configuration prints about absent local index folders
pipq() { "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }; return "${PIPESTATUS[0]}"; }
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
  pipq .venv/bin/pip install -q "torch==2.14.1" "torchvision==0.29.1" \
    || pipq .venv/bin/pip install -q "torch>=2.1" "torchvision>=0.16"
fi
pipq .venv/bin/pip install -q -e ".[test,gan,similarity,cluster,docs]"
.venv/bin/python -c "import torch, actmax; print('actmax', actmax.__version__, 'with torch', torch.__version__, 'ready in .venv')"
