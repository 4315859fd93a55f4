#!/usr/bin/env bash
# Installs everything the template's tests need, on a fresh Debian machine. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r tests/requirements.txt

# Each area of the suite adds what it needs (Debian packages, npm packages) in tools/setup.d/.
for step in tools/setup.d/*.sh; do
  [ -e "$step" ] || continue
  echo "== setup: $step"
  bash "$step"
done
