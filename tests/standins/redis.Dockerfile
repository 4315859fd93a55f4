# Stand-in for the official redis:X.Y.Z-alpine image, built without a registry: Debian's redis-server
# (bookworm: 7.0, from the debootstrap root) with the official image's interface: `redis-server` and
# `redis-cli` on PATH, the redis user as uid 999 (group 1000), /data owned by it as the working folder,
# port 6379, `redis-server` as the default command. Nothing of the bake is changed.
FROM ROOTFS
RUN mkdir -p /data && chown 999:1000 /data \
    && echo 'redis-image:x:999:1000:redis:/data:/sbin/nologin' >> /etc/passwd \
    && echo 'redis-image:x:1000:' >> /etc/group
WORKDIR /data
VOLUME /data
EXPOSE 6379
CMD ["redis-server"]
