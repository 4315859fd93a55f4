#!/usr/bin/env bash
# What the spend guard's tests need from Debian (every bake with spend_guard=yes runs them in its own suite,
# tests/test_generation.py INNER_SUITES):
#   redis-server  a real Redis: the tests start private instances (`redis-server --port P --dir D
#                 --appendonly yes --daemonize no`) and stop them by PID; the package's service is not used
# Quick when it is already there.
set -euo pipefail

source "$(dirname "$0")/../debian.sh"
need_debian 15-redis "the spend guard's tests" redis-server:redis-server
redis-server --version
