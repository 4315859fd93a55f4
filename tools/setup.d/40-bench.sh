#!/usr/bin/env bash
# The benchmark (bench/run.py, tests/test_bench.py): wrk drives the load, matplotlib draws the chart,
# iptables spreads wrk's connections over several client addresses inside the stack row's namespace.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v wrk >/dev/null 2>&1 || ! command -v iptables >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk iptables >/dev/null
fi
wrk --version 2>&1 | head -1 || true  # wrk prints its version and exits 1

.venv/bin/python -m pip install --quiet -r bench/requirements.txt
