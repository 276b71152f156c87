# Local stand-in for the official `redis` image, used when it cannot be pulled.
# The build context is assembled by topologies/images.py from this machine's
# Debian packages: redis-server (multi-call binary: also Sentinel), redis-cli,
# the shared libraries `ldd` lists, and busybox-static as /bin/sh (+ applets).
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin:/bin
WORKDIR /data
CMD ["redis-server"]
