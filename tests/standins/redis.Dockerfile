# Stand-in for the official redis:X.Y.Z-alpine image, built without a registry: Debian's redis-server
# (bookworm: 7.0, from the debootstrap root) with the official image's interface: `redis-server` and
# `redis-cli` on PATH, protected mode off unless a configuration says otherwise (the official build
# turns it off: the container's network is the boundary), the redis user as uid 999 (group 1000), /data
# owned by it as the working folder, port 6379, `redis-server` as the default command. Nothing of the
# bake is changed.
FROM ROOTFS
RUN printf '#!/bin/sh\ncase "$1" in\n  ""|-*) exec /usr/bin/redis-server --protected-mode no "$@" ;;\n  *) exec /usr/bin/redis-server "$@" ;;\nesac\n' > /usr/local/bin/redis-server \
    && chmod 755 /usr/local/bin/redis-server \
    && mkdir -p /data && chown 999:1000 /data \
    && echo 'redis-image:x:999:1000:redis:/data:/sbin/nologin' >> /etc/passwd \
    && echo 'redis-image:x:1000:' >> /etc/group
ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /data
VOLUME /data
EXPOSE 6379
CMD ["redis-server"]
