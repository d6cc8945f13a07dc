# bosar-deploy as a small image: the stripped release binary, the shared libraries it links
# (glibc, libgcc_s, libm), CA certificates and a non-root user; nothing else (no shell).
#
# FROM scratch because no base image can be pulled where this is built (no registry): the
# context is a root filesystem that scripts/image.sh prepares from `cargo build --release`
# and the build machine's own libraries and certificates:
#
#   scripts/image.sh            # build, then smoke-test (`--version`, `verify`) with buildah
#
# docs/distribution.md has the sizes and a multi-stage variant for machines with a registry.
FROM scratch
COPY rootfs/ /
# Numeric, so no /etc/passwd lookup is needed to drop root (rootfs/etc/passwd names it too).
USER 65532:65532
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
WORKDIR /work
ENTRYPOINT ["/usr/local/bin/bosar-deploy"]
CMD ["--help"]
