#!/bin/sh
# nginx with HTTPS (compose.yaml runs this instead of plain `nginx`).
#
# 1. Waits up to TLS_WAIT_SECONDS for the certificate and its key, then stops with a message naming the
#    file that is missing or unreadable (nginx alone would only print an OpenSSL error).
# 2. Starts nginx, and every TLS_CHECK_SECONDS compares the two files with what nginx loaded. When they
#    changed (a renewal, or your new certificate), it checks the configuration and reloads nginx: new
#    connections get the new certificate, open ones finish on the old, and no request is dropped.
#    This needs no Docker socket and works in a read-only container.
set -eu

dir=${TLS_DIR:-/etc/nginx/certs}  # compose.yaml mounts the certificates here; nginx.conf reads certs/
wait_seconds=${TLS_WAIT_SECONDS:-0}
check_seconds=${TLS_CHECK_SECONDS:-60}

for name in fullchain.pem privkey.pem; do
  waited=0
  until [ -r "$dir/$name" ] && [ -s "$dir/$name" ]; do
    if [ "$waited" -ge "$wait_seconds" ]; then
      echo "nginx/start.sh: cannot read $dir/$name (certs/$name): it is missing, empty or not readable by uid $(id -u). ${TLS_HINT:-}" >&2
      exit 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
done

fingerprint() {
  cat "$dir/fullchain.pem" "$dir/privkey.pem" | cksum
}

loaded=$(fingerprint)
(
  while sleep "$check_seconds"; do
    current=$(fingerprint 2>/dev/null) || continue
    [ "$current" = "$loaded" ] && continue
    # A certificate and a key that do not match yet (one file copied, not the other) fail the
    # check; nginx keeps serving the old pair and the next round tries again.
    if nginx -t -q 2>/dev/null && nginx -s reload; then
      echo "nginx/start.sh: certificate changed, nginx reloaded" >&2
      loaded=$current
    fi
  done
) &

exec nginx -g 'daemon off;'
