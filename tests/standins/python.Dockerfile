# Stand-in for the official python:X.Y.Z-slim-bookworm image, built without a registry.
# Debian's own python3 (bookworm: 3.11, trixie: 3.13) with the official image's interface: `python`
# and `pip` on PATH, pip allowed to install system-wide, and this machine's CA bundle and pip settings
# so `pip install` inside a build reaches the package index. Nothing of the bake is changed.
FROM ROOTFS
RUN ln -sf /usr/bin/python3 /usr/local/bin/python \
    && ln -sf /usr/bin/pip3 /usr/local/bin/pip \
    && rm -f /usr/lib/python3*/EXTERNALLY-MANAGED
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY pip.conf /etc/pip.conf
ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8
CMD ["python3"]
