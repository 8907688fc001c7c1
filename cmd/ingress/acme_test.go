package main

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/internal/testenv/knottest"
	"github.com/neo4j/private-ingress/internal/testenv/loopback"
	"github.com/neo4j/private-ingress/internal/testenv/pebbletest"
)

// TestServeObtainsItsCertificateFromACME: `ingress serve` with tls.acme and
// no certificate file gets the wildcard from a real ACME server (Pebble),
// which validates DNS-01 against the ingress's own DNS stub; then curl and
// TLS clients that trust Pebble's root reach a database through it.
func TestServeObtainsItsCertificateFromACME(t *testing.T) {
	curl := testenv.Command(t, "curl")
	bin := ingressBin.Path(t)
	dir := t.TempDir()
	// Pebble needs the DNS server's address when it starts, the ingress
	// Pebble's directory: Pebble asks a forwarder of this test's, which
	// learns the stub's address from the ingress's start-up line.
	stub := make(chan string, 1)
	pebble := pebbletest.Start(t, forwardTCP(t, stub))
	backend := e2eHTTPBackend(t, "a")
	writeRoutes(t, filepath.Join(dir, "routes.yaml"), fmt.Sprintf(`instances:
  - {dbid: abcd1234, orch: "0000", public: true, backends: {https: [%q]}}
`, backend))
	os.WriteFile(filepath.Join(dir, "ingress.yaml"), []byte(fmt.Sprintf(`orchestras: ["0000"]
listeners: [{service: https, address: "127.0.0.1:0", alpn: ["http/1.1"]}]
tls:
  acme: {directory: %q, email: ops@example.com, ca_root: %q}
dns: {address: "127.0.0.1:0", answer_ipv4: ["127.0.0.1"]}
admin: {address: "127.0.0.1:0"}
`, pebble.Directory, pebble.CAFile)), 0o644)

	_, logs, _ := runBinary(t, bin, "serve", "-config", filepath.Join(dir, "ingress.yaml"))
	addrs := startedAddrs(t, logs.String)
	httpsAddr := addrs["https"]
	stub <- addrs["dns"]
	roots := pebble.Roots(t)
	waitForACMELeaves(t, httpsAddr, roots)

	// As a user would: curl trusting the ACME server's root.
	host := "abcd1234.production-orch-0000.neo4j.io"
	_, port, _ := net.SplitHostPort(httpsAddr)
	rootFile := pebble.RootPEM(t, dir)
	out, err := exec.Command(curl, "-sS", "--cacert", rootFile, "--resolve", host+":"+port+":127.0.0.1",
		"https://"+host+":"+port+"/").CombinedOutput()
	if err != nil || string(out) != "instance a\n" {
		t.Errorf("curl with the ACME certificate: %v\n%s", err, out)
	}
	if !strings.Contains(logs.String(), "certificate obtained successfully") {
		t.Errorf("the log does not say the certificate was obtained")
	}
}

// TestServeObtainsItsCertificateFromACMEThroughRFC2136: with
// tls.acme.dns_provider rfc2136 and no DNS stub at all, `ingress serve`
// publishes the challenges by TSIG-signed RFC 2136 updates to a real
// authority (Knot), which Pebble asks, as a public CA asks the zone's
// public authority. Both certificates are served, and the challenge
// records are gone from Knot after validation.
func TestServeObtainsItsCertificateFromACMEThroughRFC2136(t *testing.T) {
	bin := ingressBin.Path(t)
	knot := knottest.Start(t, "neo4j.io.", "hmac-sha256")
	pebble := pebbletest.Start(t, knot.Addr)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tsig.secret"), []byte(knot.Key.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	backend := e2eHTTPBackend(t, "a")
	writeRoutes(t, filepath.Join(dir, "routes.yaml"), fmt.Sprintf(`instances:
  - {dbid: abcd1234, orch: "0000", public: true, backends: {https: [%q]}}
`, backend))
	os.WriteFile(filepath.Join(dir, "ingress.yaml"), []byte(fmt.Sprintf(`orchestras: ["0000"]
listeners: [{service: https, address: "127.0.0.1:0", alpn: ["http/1.1"]}]
tls:
  acme:
    directory: %q
    email: ops@example.com
    ca_root: %q
    dns_provider: rfc2136
    rfc2136: {server: %q, tsig_name: %s, tsig_secret_file: tsig.secret}
admin: {address: "127.0.0.1:0"}
log: {level: debug}  # certmagic's propagation checks, asserted below
`, pebble.Directory, pebble.CAFile, knot.Addr, strings.TrimSuffix(knot.Key.Name, "."))), 0o644)

	_, logs, _ := runBinary(t, bin, "serve", "-config", filepath.Join(dir, "ingress.yaml"))
	addrs := startedAddrs(t, logs.String)
	if addrs["dns"] != "" {
		t.Errorf("a DNS stub runs at %s; none is configured", addrs["dns"])
	}
	waitForACMELeaves(t, addrs["https"], pebble.Roots(t))

	// certmagic removes each challenge's record once the order is done:
	// the wildcard's name is left empty at the authority.
	const challenge = "_acme-challenge.production-orch-0000.neo4j.io."
	var left []string
	if !testenv.Poll(testenv.WaitTimeout, func() bool { left = knot.TXT(t, challenge); return len(left) == 0 }) {
		t.Errorf("the challenge records are still at Knot: %q", left)
	}
	// Two orders (RSA, ECDSA), each an add and a remove at least.
	if n := strings.Count(knot.Log(t), "DDNS, finished"); n < 4 {
		t.Errorf("Knot applied %d updates, want at least 4:\n%s", n, knot.Log(t))
	}
	if !strings.Contains(logs.String(), "certificate obtained successfully") {
		t.Errorf("the log does not say the certificate was obtained")
	}
	// The propagation check asked Knot, the server updated, not the NS
	// hosts of the zone (ns1.neo4j.io, port 53).
	checks := 0
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, `"msg":"checking DNS propagation"`) {
			checks++
			if !strings.Contains(l, `"resolvers":["`+knot.Addr+`"]`) {
				t.Errorf("a propagation check asked elsewhere than Knot (%s): %s", knot.Addr, l)
			}
		}
	}
	if checks == 0 {
		t.Errorf("no propagation check in the log")
	}
}

// waitForACMELeaves waits until the ingress at httpsAddr serves, from
// ACME, an ECDSA leaf to TLS 1.3 clients and an RSA leaf to a TLS 1.2
// client that offers only ECDHE_RSA suites.
func waitForACMELeaves(t *testing.T, httpsAddr string, roots *x509.CertPool) {
	t.Helper()
	leaf := func(mod func(*tls.Config)) (any, error) {
		cfg := &tls.Config{ServerName: "abcd1234.production-orch-0000.neo4j.io", RootCAs: roots}
		if mod != nil {
			mod(cfg)
		}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", httpsAddr, cfg)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].PublicKey, nil
	}
	rsaOnly := func(c *tls.Config) {
		c.MaxVersion = tls.VersionTLS12
		c.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384}
	}
	// Both leaves arrive in the background. Two orders with DNS-01
	// validation take longer than testenv.WaitTimeout on a busy machine
	// (certmagic's propagation checks alone start ~2 s after publishing
	// and retry after a minute): a wider failure bound.
	var key13, key12 any
	var err13, err12 error
	if !testenv.Poll(3*time.Minute, func() bool {
		key13, err13 = leaf(nil)
		key12, err12 = leaf(rsaOnly)
		_, ecdsaLeaf := key13.(*ecdsa.PublicKey)
		_, rsaLeaf := key12.(*rsa.PublicKey)
		return ecdsaLeaf && rsaLeaf
	}) {
		t.Fatalf("no ECDSA and RSA certificates from ACME in time: %T %v, %T %v", key13, err13, key12, err12)
	}
}

// forwardTCP listens on 127.0.0.1 and forwards each connection to the
// address that arrives on target, once it has: a stable address for a
// server whose own address is known only after it started.
func forwardTCP(t *testing.T, target <-chan string) string {
	t.Helper()
	known := make(chan struct{})
	var addr string
	go func() {
		select {
		case addr = <-target:
			close(known)
		case <-t.Context().Done():
		}
	}()
	return loopback.Serve(t, loopback.Listen(t), func(c net.Conn) {
		defer c.Close()
		select {
		case <-known:
		case <-t.Context().Done():
			return
		}
		b, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		defer b.Close()
		go func() {
			io.Copy(b, c)
			b.(*net.TCPConn).CloseWrite()
		}()
		io.Copy(c, b)
	})
}
