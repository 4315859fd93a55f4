#!/bin/sh
# The certbot service (compose.yaml runs this in the official certbot image).
#
# 1. If nginx has no certificate yet, gives it a temporary self-signed one, so nginx can start and serve
#    the ACME challenge on port 80 (without a certificate nginx would not start: a deadlock).
# 2. Waits until nginx serves the challenge folder (nginx starts only once the backend is healthy): a
#    validation the CA tried before that would fail and count against Let's Encrypt's limits.
# 3. Asks ACME_DIRECTORY (Let's Encrypt unless you change it) for a certificate for DOMAIN, proving
#    control of the name through nginx (HTTP-01, webroot), and hands nginx a copy it can read. nginx
#    reloads itself when the copy changes (nginx/start.sh).
# 4. Checks again every RENEW_CHECK_SECONDS (12 h): certbot renews when 30 days or less are left.
#    A failed attempt is tried again after RETRY_SECONDS (10 min): Let's Encrypt allows only 5 failed
#    validations per host name an hour.
set -u

: "${DOMAIN:?DOMAIN is not set}"
ACME_DIRECTORY=${ACME_DIRECTORY:-https://acme-v02.api.letsencrypt.org/directory}
config_dir=${LETSENCRYPT_DIR:-/etc/letsencrypt}  # certbot's account, keys and certificates (a volume)
work_dir=${CERTBOT_WORK_DIR:-/var/lib/letsencrypt}
logs_dir=${CERTBOT_LOGS_DIR:-/var/log/letsencrypt}
webroot=${ACME_WEBROOT:-/var/www/acme}  # shared with nginx, which serves /.well-known/acme-challenge/
out=${TLS_DIR:-/tls}  # shared with nginx (read-only there): the pair it serves
nginx_url=${NGINX_URL:-http://nginx:8080}  # nginx's plain-HTTP server, inside the stack's network
uid=101  # nginx's user (compose.yaml): the key it reads must be its own; certbot's keys are root's only
here=$(dirname "$0")

# Copies the certificate and key of DOMAIN's lineage to $out when they differ from what is there.
# Each file is written beside its target and renamed, so nginx never reads half a file.
install_certificate() {
  live="$config_dir/live/$DOMAIN"
  for name in fullchain.pem privkey.pem; do
    if ! cmp -s "$live/$name" "$out/$name"; then
      # chmod while the copy is still root's: once it is nginx's, only CAP_FOWNER could change it.
      cp "$live/$name" "$out/.$name.new" &&
        chmod 600 "$out/.$name.new" &&
        chown "$uid:$uid" "$out/.$name.new" &&
        mv "$out/.$name.new" "$out/$name" &&
        echo "certbot/run.sh: installed $name for $DOMAIN" >&2
    fi
  done
}

if [ "${1:-}" = "install" ]; then  # certbot's --deploy-hook: after every issuance and renewal
  install_certificate
  exit
fi

mkdir -p "$webroot" "$out"
if [ -e "$config_dir/live/$DOMAIN/fullchain.pem" ]; then
  install_certificate  # e.g. the nginx volume was recreated
elif [ ! -e "$out/fullchain.pem" ]; then
  sh "$here/self_signed_cert.sh" "$DOMAIN" "$out" 1  # as root, it gives the pair to uid 101
fi

# The same path the CA will fetch, through nginx, from inside the network.
probe="$webroot/.well-known/acme-challenge/ready-$$"
mkdir -p "$(dirname "$probe")" && echo ready >"$probe"
until python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' \
  "$nginx_url/.well-known/acme-challenge/ready-$$" 2>/dev/null; do
  sleep 2
done
rm -f "$probe"

if [ -n "${ACME_EMAIL:-}" ]; then
  contact="--email $ACME_EMAIL"
else
  contact="--register-unsafely-without-email"
fi

while :; do
  # shellcheck disable=SC2086 # $contact is two words on purpose
  if certbot certonly --non-interactive --agree-tos $contact \
    --server "$ACME_DIRECTORY" --config-dir "$config_dir" --work-dir "$work_dir" --logs-dir "$logs_dir" \
    --webroot --webroot-path "$webroot" --cert-name "$DOMAIN" --domain "$DOMAIN" \
    --keep-until-expiring --deploy-hook "sh $here/run.sh install"; then
    install_certificate  # also when nothing was due: the copy may be missing or stale
    delay=${RENEW_CHECK_SECONDS:-43200}
  else
    echo "certbot/run.sh: no certificate for $DOMAIN this time; trying again in ${RETRY_SECONDS:-600} s" >&2
    delay=${RETRY_SECONDS:-600}
  fi
  sleep "$delay"
done
