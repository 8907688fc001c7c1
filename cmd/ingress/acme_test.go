package main

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
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
	host := "abcd1234.production-orch-0000.neo4j.io"
	leaf := func(mod func(*tls.Config)) (any, error) {
		cfg := &tls.Config{ServerName: host, RootCAs: roots}
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
	// Both leaves arrive in the background: ECDSA for TLS 1.3 clients,
	// RSA for a TLS 1.2 client that offers only ECDHE_RSA suites. Two
	// orders with DNS-01 validation take longer than testenv.WaitTimeout
	// on a busy machine (certmagic's propagation checks alone start ~2 s
	// after publishing and retry after a minute): a wider failure bound.
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

	// As a user would: curl trusting the ACME server's root.
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
