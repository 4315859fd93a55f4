# shellcheck shell=bash
# Sourced by tools/setup.d/*.sh. Usage: need_debian STEP WHAT_SKIPS COMMAND:PACKAGE ...
# Installs, from Debian, the package of each command that is missing. Without root it only warns: the
# tests that need them skip (and say why) rather than fail.
need_debian() {
  local step=$1 skips=$2 need=() pair
  shift 2
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
  done
  [ "${#need[@]}" -gt 0 ] || return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "$step: not root, cannot install ${need[*]}; $skips will skip" >&2
    return 0
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}
