# The Regatta image: one static binary on an empty base, nothing else but the CA bundle.
#
# Build it with `scripts/image`, which compiles the static binary and prepares the build
# context this file expects (a directory, not the repository):
#
#   regatta                  the static, stripped release binary
#   ca-certificates.crt      the CA bundle, for S3, GCS and Azure over TLS
#   data/objects/            empty; becomes /data (and /data/objects) owned by the node's user
#
# docs/containers.md describes the image: user, volume, ports, labels, signals.
FROM scratch

ARG VERSION=unknown
ARG REVISION=unknown
ARG SOURCE=""

LABEL org.opencontainers.image.title="regatta" \
      org.opencontainers.image.description="Regatta: a log-centric, hub-and-spoke key-value store" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY regatta /regatta
# The data directory, with the default local object store inside it, owned by the node's
# user: a volume mounted here (or at /data/objects) starts with this ownership.
COPY --chown=65532:65532 data /data

# Inside a container every port listens on all interfaces; a flag or variable still wins.
# `regatta dev` puts its core, edge and object store under /data too.
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    REGATTA_API_ADDRESS=http://0.0.0.0:8443 \
    REGATTA_REPLICATION_ADDRESS=http://0.0.0.0:8444 \
    REGATTA_RAFT_LISTEN_ADDRESS=http://0.0.0.0:5012 \
    REGATTA_REST_ADDRESS=http://0.0.0.0:8079 \
    REGATTA_EDGE_API_ADDRESS=http://0.0.0.0:9443 \
    REGATTA_EDGE_REPLICATION_ADDRESS=http://0.0.0.0:9444 \
    REGATTA_EDGE_REST_ADDRESS=http://0.0.0.0:9079 \
    REGATTA_DATA_DIR=/data \
    REGATTA_DEV_DIR=/data

USER 65532:65532
VOLUME ["/data"]
# public gRPC API, log tail (edges), Raft (core), HTTP (/healthz /readyz /metrics)
EXPOSE 8443 8444 5012 8079

ENTRYPOINT ["/regatta"]
