#!/usr/bin/env bash
# Install everything this project needs on Debian/Ubuntu with Python >= 3.11:
#   the system libraries Qt and OpenCV load (when run as root, or with passwordless sudo),
#   and a virtual environment in ./.venv with the pinned Python packages.
# Usage: scripts/setup.sh           runtime only
#        scripts/setup.sh --tests   runtime + test and lint tools
set -euo pipefail
cd "$(dirname "$0")/.."

requirements=requirements.txt
if [ "${1:-}" = "--tests" ]; then requirements=requirements-dev.txt; fi

# Shared libraries of PyQt5's and OpenCV's wheels that a minimal Debian lacks, the xcb family that
# Qt's X11 platform plugin loads to open a window on a real display (src/deeplabstream/app/display/screen.py names them
# when one is missing), and libusb, which pyrealsense2 (RealSense cameras) loads.
debian_packages=(libgl1 libegl1 libx11-6 libx11-xcb1 libxext6 libxkbcommon0 libxkbcommon-x11-0
                 libfontconfig1 libfreetype6 libglib2.0-0 libdbus-1-3 libusb-1.0-0
                 libxcb1 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
                 libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xinerama0 libxcb-xkb1
                 libxcb-cursor0)
if [ "${1:-}" = "--tests" ]; then
  # The tests also build the stimulus firmware (avr-gcc), run it on an emulated microcontroller
  # (simavr) and talk to it over pseudo-terminals (socat).
  debian_packages+=(make gcc gcc-avr binutils-avr avr-libc simavr libsimavr-dev libelf-dev socat)
  # One test opens the real window on a virtual X display (xvfb-run) through Qt's xcb plugin.
  debian_packages+=(xvfb xauth)
fi

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for package in "${debian_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$package")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then sudo=(); elif sudo -n true 2>/dev/null; then sudo=(sudo -n); else sudo=none; fi
  if [ "${sudo[*]-}" = none ]; then
    echo "setup: please install these Debian packages (needs root): ${missing[*]}" >&2
  else
    echo "setup: installing Debian packages: ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: Python >= 3.11 is needed; found $("$python" --version 2>&1). Set PYTHON=..." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$python" --version)"
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
# The project itself, editable (src/deeplabstream): `import deeplabstream` works from any folder
# and the console scripts (deeplabstream, deeplabstream-app, ...) are in .venv/bin. Its pinned
# dependencies came from the requirements file above; the build tools too (no download here).
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
  --no-build-isolation -e .
echo "setup: ready (.venv, $requirements, deeplabstream installed editable)"
