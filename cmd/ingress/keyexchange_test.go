package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/tlsconfig"
)

// TestKeyExchangeSetting runs the binary with tls.key_exchange without the
// post-quantum hybrids: a default Go client, which offers X25519MLKEM768
// first, gets X25519, and the connection reaches its backend.
func TestKeyExchangeSetting(t *testing.T) {
	testenv.External(t)
	bin := ingressBin.Path(t)
	dir := t.TempDir()
	files, err := tlsconfig.WriteDevCerts(dir, []string{"*.production-orch-0000.neo4j.io"})
	if err != nil {
		t.Fatal(err)
	}
	routes := filepath.Join(dir, "routes.yaml")
	writeRoutes(t, routes, chaosRoutes(e2eEchoBackend(t), 0))
	cfg := filepath.Join(dir, "ingress.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`orchestras: ["0000"]
listeners: [{service: bolt, address: "127.0.0.1:0"}]
tls:
  certificates: [{cert: %q, key: %q}]
  key_exchange: [X25519, P-256]
routes: {file: %q}
admin: {address: "127.0.0.1:0"}
`, files.Cert, files.Key, routes)), 0o644)
	_, logs, _ := runBinary(t, bin, "serve", "-config", cfg)
	addrs := startedAddrs(t, logs.String)
	bolt, admin := addrs["bolt"], addrs["admin"]
	testenv.WaitFor(t, "/readyz 200", func() bool {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	caPEM, _ := os.ReadFile(files.CA)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	conn, err := tls.Dial("tcp", bolt, &tls.Config{ServerName: "abcd1234.production-orch-0000.neo4j.io", RootCAs: roots})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := conn.ConnectionState().CurveID; got != tls.X25519 {
		t.Errorf("negotiated %v, want X25519", got)
	}
	fmt.Fprintf(conn, "ping\n")
	buf := make([]byte, 5)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping\n" {
		t.Errorf("echo: %q, %v", buf, err)
	}
}
