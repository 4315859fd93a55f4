#!/usr/bin/env bash
# Reliability and security tests (tests/test_reliability.py): schemathesis and its dependencies, pinned in
# tests/requirements-reliability.txt, installed into the tooling venv. Quick when already there.
set -euo pipefail
cd "$(dirname "$0")/../.."

want=$(sed -n 's/^schemathesis==//p' tests/requirements-reliability.txt)
have=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null || true)
if [ "$have" != "$want" ]; then
  .venv/bin/python -m pip install --quiet -r tests/requirements-reliability.txt
fi
.venv/bin/st --version
