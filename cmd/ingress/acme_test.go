package main

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/internal/pebbletest"
)

// TestServeObtainsItsCertificateFromACME: `ingress serve` with tls.acme and
// no certificate file gets the wildcard from a real ACME server (Pebble),
// which validates DNS-01 against the ingress's own DNS stub; then curl and
// TLS clients that trust Pebble's root reach a database through it.
func TestServeObtainsItsCertificateFromACME(t *testing.T) {
	curl := needCommand(t, "curl")
	bin := e2eBinary(t)
	dir := t.TempDir()
	dnsAddr, httpsAddr, adminAddr := e2eFreeAddr(t), e2eFreeAddr(t), e2eFreeAddr(t)
	pebble := pebbletest.Start(t, dnsAddr)
	backend := e2eHTTPBackend(t, "a")
	writeRoutes(t, filepath.Join(dir, "routes.yaml"), fmt.Sprintf(`instances:
  - {dbid: abcd1234, orch: "0000", public: true, backends: {https: [%q]}}
`, backend))
	os.WriteFile(filepath.Join(dir, "ingress.yaml"), []byte(fmt.Sprintf(`orchestras: ["0000"]
listeners: [{service: https, address: %q, alpn: ["http/1.1"]}]
tls:
  acme: {directory: %q, email: ops@example.com, ca_root: %q}
dns: {address: %q, answer_ipv4: ["127.0.0.1"]}
admin: {address: %q}
`, httpsAddr, pebble.Directory, pebble.CAFile, dnsAddr, adminAddr)), 0o644)

	_, logs, _ := runBinary(t, bin, "serve", "-config", filepath.Join(dir, "ingress.yaml"))
	roots := pebble.Roots(t)
	host := "abcd1234.production-orch-0000.neo4j.io"
	leaf := func(mod func(*tls.Config)) (any, error) {
		cfg := &tls.Config{ServerName: host, RootCAs: roots}
		if mod != nil {
			mod(cfg)
		}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", httpsAddr, cfg)
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
	// RSA for a TLS 1.2 client that offers only ECDHE_RSA suites.
	deadline := time.Now().Add(60 * time.Second)
	for {
		key13, err13 := leaf(nil)
		key12, err12 := leaf(rsaOnly)
		_, ecdsaLeaf := key13.(*ecdsa.PublicKey)
		_, rsaLeaf := key12.(*rsa.PublicKey)
		if ecdsaLeaf && rsaLeaf {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ECDSA and RSA certificates from ACME in time: %T %v, %T %v", key13, err13, key12, err12)
		}
		time.Sleep(200 * time.Millisecond)
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
