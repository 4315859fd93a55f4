# Not a stand-in: a test tool. Pebble, Let's Encrypt's ACME test server, is this machine's Debian package
# (tools/setup.d/60-https.sh), copied onto a Debian root of the same release. The test mounts its config.
FROM ROOTFS
COPY pebble /usr/bin/pebble
RUN chmod 755 /usr/bin/pebble
CMD ["pebble", "-config", "/pebble/config.json", "-dnsserver", "127.0.0.11:53"]
