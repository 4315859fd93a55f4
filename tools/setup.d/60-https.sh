#!/usr/bin/env bash
# What the HTTPS tests (tests/test_https.py) need from Debian:
#   pebble   Let's Encrypt's ACME test server: certbot/run.sh gets its certificate from it, offline
#   openssl  the bake's scripts/self_signed_cert.sh, and reading the certificates nginx serves
#   util-linux  `setpriv`, to read a key as nginx's uid 101 would
# certbot itself comes from PyPI, the release the bake's pinned image runs (the test caches it by version).
set -euo pipefail

need=()
command -v pebble >/dev/null 2>&1 || need+=(pebble)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "60-https: not root, cannot install ${need[*]}; the HTTPS end-to-end tests will skip" >&2
    exit 0
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "pebble: $(command -v pebble)"
