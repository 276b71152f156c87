# Local stand-in for ghcr.io/shopify/toxiproxy, used when it cannot be pulled.
# Same layout as the official image: static binaries /toxiproxy and /toxiproxy-cli.
FROM scratch
COPY rootfs/ /
ENTRYPOINT ["/toxiproxy"]
CMD ["-host=0.0.0.0"]
