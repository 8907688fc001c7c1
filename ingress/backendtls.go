package ingress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
)

// backendSessions is how many backend TLS sessions are kept for
// resumption: a resumed handshake to an instance costs a fraction of a
// full one, which matters most in the storm of reconnections after an
// instance restarts.
const backendSessions = 4096

// backendTLS is the client side of the TLS leg to the backends: one
// config per ALPN protocol the listeners can negotiate, made once, so that
// the backend is offered exactly what the client negotiated (h2 → h2,
// http/1.1 → http/1.1, none → none). An h2 or gRPC client spliced to a
// backend that picked HTTP/1.1 would otherwise fail mid-stream.
type backendTLS struct {
	byALPN map[string]*tls.Config
}

// newBackendTLS derives the per-protocol configs from base for the
// protocols listeners offer.
func newBackendTLS(base *tls.Config, listeners []ListenerConfig) *backendTLS {
	base = base.Clone()
	if base.ClientSessionCache == nil {
		base.ClientSessionCache = tls.NewLRUClientSessionCache(backendSessions)
	}
	b := &backendTLS{byALPN: map[string]*tls.Config{"": base}}
	base.NextProtos = nil
	for _, l := range listeners {
		for _, proto := range l.ALPN {
			if _, ok := b.byALPN[proto]; !ok {
				cfg := base.Clone() // shares the session cache
				cfg.NextProtos = []string{proto}
				b.byALPN[proto] = cfg
			}
		}
	}
	return b
}

// handshake runs the backend leg's TLS handshake on conn, offering alpn.
// A certificate that does not verify fails it: the dial failed, and the
// next backend is tried.
func (b *backendTLS) handshake(ctx context.Context, conn net.Conn, addr, alpn string) (*tls.Conn, error) {
	cfg, ok := b.byALPN[alpn]
	if !ok {
		return nil, fmt.Errorf("tls handshake: no backend config for ALPN %q", alpn)
	}
	if cfg.ServerName == "" {
		host, _, _ := net.SplitHostPort(addr)
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("tls handshake: %w", explainBackendAlert(err))
	}
	return tc, nil
}

// explainBackendAlert names the cause of the alerts a backend sends about
// the ingress's client certificate (bad, expired, unknown CA, required...):
// the operator reading the log has to know which side's configuration to
// look at. TLS 1.2 backends send it during the handshake, a failed dial;
// TLS 1.3 ones after it, so the copy's first read from the backend gets
// it, before any backend byte reached the client (and the backend's TLS
// layer discarded what the client sent).
func explainBackendAlert(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" && strings.Contains(op.Err.Error(), "certificate") {
		return fmt.Errorf("the backend refused the ingress's client certificate (backend.tls.client_cert): %w", err)
	}
	return err
}
