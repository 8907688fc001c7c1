# Build: a static binary, no cgo.
FROM golang:1.26.8-bookworm AS build
ENV GOTOOLCHAIN=local CGO_ENABLED=0
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# .git is not copied (.dockerignore), so `ingress version` says "unknown"
# for the VCS revision and time: name the build in VERSION
# (docker build --build-arg VERSION=$(git describe --tags --always --dirty)).
RUN go build -trimpath -ldflags "-s -w -X github.com/neo4j/private-ingress/internal/buildinfo.version=${VERSION}" -o /out/ingress ./cmd/ingress

# Run: distroless static, as the nonroot user (65532). Ports below 1024 need
# net.ipv4.ip_unprivileged_port_start=0 (Docker sets it; on Kubernetes add it
# to the pod's securityContext.sysctls) — see the README.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ingress /usr/local/bin/ingress
USER nonroot:nonroot
EXPOSE 443 7687 7474 8491 9090
ENTRYPOINT ["/usr/local/bin/ingress"]
CMD ["serve", "-config", "/etc/ingress/ingress.yaml"]
