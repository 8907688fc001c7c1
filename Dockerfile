# The container ships the OpenSSL flavour: RSA-2048 handshakes sign through
# libcrypto (-tags openssl, cgo), which costs about half the CPU of Go's
# RSA and is what a connection storm after an instance restart pays
# (README, "Which build"). `make build` stays the static pure-Go binary.

# Build: cgo against Debian 12's libssl3 (the runtime image's).
FROM golang:1.26.8-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev && rm -rf /var/lib/apt/lists/*
ENV GOTOOLCHAIN=local CGO_ENABLED=1
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# .git is not copied (.dockerignore), so `ingress version` says "unknown"
# for the VCS revision and time: name the build in VERSION
# (docker build --build-arg VERSION=$(git describe --tags --always --dirty)).
RUN go build -trimpath -tags openssl -ldflags "-s -w -X github.com/neo4j/private-ingress/internal/buildinfo.version=${VERSION}" -o /out/ingress ./cmd/ingress \
 && /out/ingress version | grep -q ' openssl$'

# Run: distroless base (glibc and libssl3, nothing else: no shell, no
# package manager), as the nonroot user (65532). Ports below 1024 need
# net.ipv4.ip_unprivileged_port_start=0 (Docker sets it; on Kubernetes add it
# to the pod's securityContext.sysctls) — see the README.
FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /out/ingress /usr/local/bin/ingress
USER nonroot:nonroot
EXPOSE 443 7687 7474 8491 9090
ENTRYPOINT ["/usr/local/bin/ingress"]
CMD ["serve", "-config", "/etc/ingress/ingress.yaml"]
