#!/usr/bin/env bash
# What the HTTPS tests (tests/test_https.py) need from Debian:
#   pebble   Let's Encrypt's ACME test server: certbot/run.sh gets its certificate from it, offline
#   openssl  the bake's scripts/self_signed_cert.sh, and reading the certificates nginx serves
#   util-linux  `setpriv`, to read a key as nginx's uid 101 would
# certbot itself comes from PyPI, the release the bake's pinned image runs (the test caches it by version).
set -euo pipefail

source "$(dirname "$0")/../debian.sh"
need_debian 60-https "the HTTPS end-to-end tests" pebble:pebble openssl:openssl setpriv:util-linux
echo "pebble: $(command -v pebble)"
