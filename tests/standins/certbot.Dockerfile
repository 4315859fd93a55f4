# Stand-in for the official certbot/certbot:vX.Y.Z image, built without a registry: the same certbot
# release from PyPI, on Debian's python3, with the official image's interface (ENTRYPOINT certbot, the
# volumes /etc/letsencrypt and /var/lib/letsencrypt, runs as root, `sh` and `openssl` on PATH). This
# machine's CA bundle and pip settings let the build reach the package index. Nothing of the bake is changed.
FROM ROOTFS
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY pip.conf /etc/pip.conf
RUN rm -f /usr/lib/python3*/EXTERNALLY-MANAGED \
    && pip3 install --no-cache-dir --quiet certbot==CERTBOT_VERSION \
    && mkdir -p /etc/letsencrypt /var/lib/letsencrypt /opt/certbot
WORKDIR /opt/certbot
VOLUME /etc/letsencrypt /var/lib/letsencrypt
EXPOSE 80 443
ENTRYPOINT ["certbot"]
