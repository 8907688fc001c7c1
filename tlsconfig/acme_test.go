package tlsconfig_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/neo4j/private-ingress/dnsstub"
	"github.com/neo4j/private-ingress/internal/pebbletest"
	"github.com/neo4j/private-ingress/routing"
	"github.com/neo4j/private-ingress/tlsconfig"

	"github.com/neo4j/private-ingress/internal/loopback"
)

const wildcard = "*.production-orch-0000.neo4j.io"

// startStub serves the zone whose _acme-challenge records the store
// publishes, as `ingress serve` does.
func startStub(t *testing.T) *dnsstub.Server {
	t.Helper()
	s := dnsstub.New(dnsstub.Options{
		Config:    dnsstub.Config{Address: "127.0.0.1:0", AnswerIPv4: []string{"127.0.0.1"}, TTL: 60},
		Namespace: routing.Namespace{Domain: "neo4j.io", Orchestras: []string{"0000"}},
	})
	if err := s.Listen(context.Background()); err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s
}

// echoTLS serves cfg on loopback and echoes lines.
func echoTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	return loopback.EchoOn(t, tls.NewListener(loopback.Listen(t), cfg))
}

func dialLeaf(addr string, roots *x509.CertPool, mod func(*tls.Config)) (*tls.Conn, *x509.Certificate, error) {
	cfg := &tls.Config{ServerName: "abcd1234.production-orch-0000.neo4j.io", RootCAs: roots}
	if mod != nil {
		mod(cfg)
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, nil, err
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c, c.ConnectionState().PeerCertificates[0], nil
}

func rsaOnlyTLS12(c *tls.Config) {
	c.MaxVersion = tls.VersionTLS12
	c.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
}

// TestACMEWithPebble: a store with no certificate obtains the wildcard in
// both key types from a real ACME server over DNS-01 answered by the stub,
// serves each to the clients that support it, and renews without cutting
// an open connection.
func TestACMEWithPebble(t *testing.T) {
	stub := startStub(t)
	pebble := pebbletest.Start(t, stub.Addr())
	reg := prometheus.NewRegistry()
	store := tlsconfig.NewStore(zaptest.NewLogger(t), tlsconfig.NewMetrics(reg))
	t.Cleanup(store.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	err := store.ManageACME(ctx, tlsconfig.ACME{Directory: pebble.Directory, Email: "ops@example.com", CARoot: pebble.CAFile, Storage: t.TempDir()},
		tlsconfig.ACMEOptions{Names: []string{wildcard}, Publisher: stub.TXT(), Resolver: stub.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	addr := echoTLS(t, store.ServerConfig(nil))
	roots := pebble.Roots(t)

	// Both leaves arrive in the background.
	deadline := time.Now().Add(90 * time.Second)
	for {
		c13, leaf13, err13 := dialLeaf(addr, roots, nil)
		c12, leaf12, err12 := dialLeaf(addr, roots, rsaOnlyTLS12)
		if err13 == nil {
			c13.Close()
		}
		if err12 == nil {
			c12.Close()
		}
		if err13 == nil && err12 == nil {
			if _, ok := leaf13.PublicKey.(*ecdsa.PublicKey); ok {
				if _, ok := leaf12.PublicKey.(*rsa.PublicKey); !ok {
					t.Fatalf("an RSA-only TLS 1.2 client got a %T leaf", leaf12.PublicKey)
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ECDSA and RSA leaves from Pebble: TLS 1.3: %v, TLS 1.2: %v", err13, err12)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// An open connection survives a forced renewal; new handshakes get the
	// new certificate.
	open, before, err := dialLeaf(addr, roots, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if err := store.RenewACME(ctx); err != nil {
		t.Fatalf("RenewACME: %v", err)
	}
	c, after, err := dialLeaf(addr, roots, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if after.SerialNumber.Cmp(before.SerialNumber) == 0 {
		t.Errorf("the same certificate (serial %x) after a forced renewal", after.SerialNumber)
	}
	_, rsaAfter, err := dialLeaf(addr, roots, rsaOnlyTLS12)
	if err != nil {
		t.Fatalf("RSA after the renewal: %v", err)
	}
	if _, ok := rsaAfter.PublicKey.(*rsa.PublicKey); !ok {
		t.Errorf("the RSA leaf is gone after the renewal: %T", rsaAfter.PublicKey)
	}
	fmt.Fprintf(open, "still here\n")
	if line, err := bufio.NewReader(open).ReadString('\n'); err != nil || line != "still here\n" {
		t.Errorf("the connection opened before the renewal: %q, %v", line, err)
	}

	// The metrics say when each certificate expires, and count issuance.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch mf.GetName() {
			case "ingress_certificate_renewals_total":
				if n := m.GetCounter().GetValue(); labels["result"] == "ok" && n < 4 {
					t.Errorf("ingress_certificate_renewals_total{result=ok} = %v, want at least 4 (2 obtained, 2 renewed)", n)
				}
			case "ingress_certificate_expiry_timestamp_seconds":
				keys[labels["key"]] = labels["name"] == wildcard
				if exp := time.Unix(int64(m.GetGauge().GetValue()), 0); exp.Before(time.Now()) {
					t.Errorf("expiry %v is in the past", exp)
				}
			}
		}
	}
	if !keys["RSA-2048"] || !keys["ECDSA-P-256"] {
		t.Errorf("expiry series for %s by key %v, want RSA-2048 and ECDSA-P-256", wildcard, keys)
	}
}
