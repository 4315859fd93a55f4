#!/bin/sh
# Makes a self-signed certificate and key for a host name, as fullchain.pem and privkey.pem in a folder.
#
#   sh scripts/self_signed_cert.sh {{ cookiecutter.domain }} certs        # to try HTTPS locally
#   sh scripts/self_signed_cert.sh NAME FOLDER DAYS                # DAYS: 30 unless given
#
# Browsers warn about it (no CA vouches for it); `curl --cacert certs/fullchain.pem` trusts it.
# {% if cookiecutter.https == "letsencrypt" %}The certbot service also uses it for the temporary certificate nginx starts with.{% else %}For production, put the certificate chain your CA gave you in certs/fullchain.pem instead.{% endif %}
# Needs only `openssl`. ECDSA P-256: what Mozilla's TLS guidelines recommend for new certificates.
set -eu

name=${1:?usage: self_signed_cert.sh NAME FOLDER [DAYS]}
folder=${2:?usage: self_signed_cert.sh NAME FOLDER [DAYS]}
days=${3:-30}

mkdir -p "$folder"
umask 077  # the key is readable by its owner only
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days "$days" \
  -subj "/CN=$name" -addext "subjectAltName=DNS:$name" \
  -keyout "$folder/.privkey.pem.new" -out "$folder/.fullchain.pem.new" 2>/dev/null
chmod 644 "$folder/.fullchain.pem.new"
mv "$folder/.privkey.pem.new" "$folder/privkey.pem"
mv "$folder/.fullchain.pem.new" "$folder/fullchain.pem"
echo "self_signed_cert.sh: $folder/fullchain.pem and $folder/privkey.pem for $name, valid $days days" >&2
# nginx runs as uid 101 (compose.yaml) and must be able to read the key.
if [ "$(id -u)" = 0 ]; then
  chown 101:101 "$folder/privkey.pem" "$folder/fullchain.pem"
else
  echo "self_signed_cert.sh: now give nginx (uid 101) the key: sudo chown 101:101 $folder/privkey.pem" >&2
fi
