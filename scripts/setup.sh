#!/usr/bin/env bash
# Install everything this project needs on Debian/Ubuntu (or macOS) with Python >= 3.11:
#   the system libraries Qt and OpenCV load (when run as root, or with passwordless sudo),
#   and a virtual environment in ./.venv with the pinned Python packages.
# Usage: scripts/setup.sh           runtime only (ONNX Runtime's CPU build)
#        scripts/setup.sh --tests   runtime + test and lint tools
#        scripts/setup.sh --gpu     ONNX Runtime's GPU build instead (NVIDIA; also with --tests)
# The work is done by scripts/setup.py, the same set-up on Windows, macOS and Linux
# (docs/install.md); this wrapper picks the Python (PYTHON=..., else python3) and checks its version.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: Python >= 3.11 is needed; found $("$python" --version 2>&1). Set PYTHON=..." >&2
  exit 1
fi
exec "$python" scripts/setup.py "$@"
