# silentauth's container image: two static binaries on an empty base,
# run as the unprivileged 65532:65532.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg COMMIT=$(git rev-parse HEAD) -t silentauth .
#
# Without a container engine, `make image` builds the same image with
# scripts/tools/image (an OCI layout in bin/image). test/image checks that
# this file's final stage and that builder agree: keep them in step.

# Build on the builder's own platform and cross-compile for the target
# (docker buildx --platform linux/amd64,linux/arm64 works without QEMU).
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
# Modules first, so source changes do not invalidate the download layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS=linux
ARG TARGETARCH
ARG VERSION=dev
ARG COMMIT=unknown
# Static (no libc), no file system paths or VCS stamps in the binaries,
# symbols and DWARF stripped, version and commit stamped
# (internal/buildinfo): the same flags as scripts/tools/image.
ENV CGO_ENABLED=0
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -buildvcs=false -ldflags="-s -w -X github.com/silentauth/silentauth/internal/buildinfo.version=$VERSION -X github.com/silentauth/silentauth/internal/buildinfo.commit=$COMMIT" -o /out/silentauth ./cmd/silentauth
# The kubectl plugin, for key rotation Jobs (`/kubectl-silentauth keys ...`).
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -buildvcs=false -ldflags="-s -w -X github.com/silentauth/silentauth/internal/buildinfo.version=$VERSION -X github.com/silentauth/silentauth/internal/buildinfo.commit=$COMMIT" -o /out/kubectl-silentauth ./cmd/kubectl-silentauth

# Nothing but the binaries: no shell, no package manager, no /tmp, no CA
# bundle (TLS peers are verified with the CA files the configuration names;
# the Kubernetes API's CA comes with the service account).
FROM scratch
ARG VERSION=dev
LABEL org.opencontainers.image.title="silentauth" \
      org.opencontainers.image.description="Silent authentication at the edge: an Envoy ext_authz service that verifies access tokens and renews them from rotating refresh-token cookies" \
      org.opencontainers.image.source="https://github.com/silentauth/silentauth" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="$VERSION"
COPY --from=build --chown=65532:65532 --chmod=0755 /out/silentauth /out/kubectl-silentauth /
# distroless "nonroot"; numeric, so no /etc/passwd is needed.
USER 65532:65532
# gRPC Check, public JWKS (and HTTP authorization mode), session API, admin.
EXPOSE 9001 9002 9003 9090
ENTRYPOINT ["/silentauth"]
# The configuration is mounted (ConfigMap) at /etc/silentauth/config.yaml.
CMD ["serve", "--config", "/etc/silentauth/config.yaml"]
