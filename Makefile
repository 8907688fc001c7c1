# Every target builds with the installed Go; a module needing a newer one fails loudly.
export GOTOOLCHAIN := local

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/neo4j/private-ingress/internal/buildinfo.version=$(VERSION)
# -buildvcs=auto: `ingress version` and ingress_build_info name the commit
# wherever git can read the checkout, even if GOFLAGS turns stamping off.
FUZZTIME ?= 20s
# The demo's Arrow Flight fake links arrow-go and gRPC: the demo and the
# tests have it, the production binary (make build) does not.
DEMOTAGS := -tags demoflight

.PHONY: build build-openssl run test test-short fuzz bench bench-compare lint clean

build: ## the static binary, bin/ingress
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto -ldflags '$(LDFLAGS)' -o bin/ingress ./cmd/ingress

build-openssl: ## bin/ingress signing RSA with OpenSSL's libcrypto (cgo, -tags openssl; needs libssl-dev)
	CGO_ENABLED=1 $(GO) build -trimpath -buildvcs=auto -tags openssl -ldflags '$(LDFLAGS)' -o bin/ingress ./cmd/ingress

run: ## the demo: dev CA, fake instances, loopback ports (see README)
	$(GO) run $(DEMOTAGS) ./cmd/ingress demo

test-short: lint ## the quick tier: unit, table, fuzz-seed and in-process loopback tests; no external tool (about a minute)
	$(GO) test $(DEMOTAGS) -short -count=1 ./...
	$(GO) test -short -count=1 ./internal/demo # the production build's stub for the Flight fake

test: lint ## everything CI runs: lint, every test under -race with the real clients and servers, a short fuzz pass
	$(GO) test $(DEMOTAGS) -race -count=1 ./...
	$(GO) test -race -count=1 ./internal/demo # the production build's stub for the Flight fake
	CGO_ENABLED=1 $(GO) test -race -count=1 -tags openssl ./internal/opensslsign ./internal/buildinfo ./tlsconfig
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

fuzz: ## every fuzz target for FUZZTIME each (make fuzz FUZZTIME=5m)
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

bench: ## micro and load benchmarks
	$(GO) test -run='^$$' -bench=. -benchmem ./...

bench-compare: ## the ingress against HAProxy and nginx, one core each (bench/compare/run.sh; LEAVES="rsa ecdsa")
	bench/compare/run.sh

lint: ## gofmt, go vet, and go.mod/go.sum exactly as go mod tidy leaves them
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet $(DEMOTAGS) ./internal/demo ./cmd/ingress
	$(GO) mod tidy -diff

clean:
	rm -rf bin demo
