#!/usr/bin/env bash
# The template's whole test suite: set up this machine, then bake the template and test every bake.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
exec .venv/bin/python -m pytest tests "$@"
