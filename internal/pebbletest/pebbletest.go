// Package pebbletest runs Pebble, Let's Encrypt's ACME test server, for
// tests on loopback: its directory, the CA its HTTPS listener uses, and
// the root its certificates chain to. .ci/run installs the binary into
// .cache/bin.
package pebbletest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/tlsconfig"
)

// Pebble is a running ACME test server.
type Pebble struct {
	Directory string // the ACME directory URL
	CAFile    string // PEM of the CA of Pebble's own HTTPS listener: tls.acme.ca_root
	mgmt      string
	client    *http.Client
}

// binary finds pebble on the PATH or in the repository's .cache/bin.
func binary(t testing.TB) string {
	if p, err := exec.LookPath("pebble"); err == nil {
		return p
	}
	_, here, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(here), "..", "..", ".cache", "bin", "pebble")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("pebble is missing; .ci/run installs it into .cache/bin")
	}
	t.Skip("pebble is missing (GOBIN=$PWD/.cache/bin go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.1)")
	return ""
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Start runs Pebble until the test ends. It validates DNS-01 challenges
// by asking the DNS server at dnsAddr (over TCP, several at once).
func Start(t testing.TB, dnsAddr string) *Pebble {
	t.Helper()
	bin := binary(t)
	dir := t.TempDir()
	// Its HTTPS listener's certificate, for "localhost", from a dev CA.
	files, err := tlsconfig.WriteDevCerts(dir, []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	port, mgmt := freePort(t), freePort(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  fmt.Sprintf("127.0.0.1:%d", port),
		"managementListenAddress":        fmt.Sprintf("127.0.0.1:%d", mgmt),
		"certificate":                    files.Cert,
		"privateKey":                     files.Key,
		"httpPort":                       freePort(t), // unused: DNS-01 only
		"tlsPort":                        freePort(t),
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
	}}
	cfgPath := filepath.Join(dir, "pebble.json")
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", cfgPath, "-dnsserver", dnsAddr)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	logs, err := os.Create(filepath.Join(dir, "pebble.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			out, _ := os.ReadFile(logs.Name())
			t.Logf("pebble log:\n%s", out)
		}
	})
	caPEM, _ := os.ReadFile(files.CA)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	p := &Pebble{
		Directory: fmt.Sprintf("https://localhost:%d/dir", port),
		CAFile:    files.CA,
		mgmt:      fmt.Sprintf("https://localhost:%d", mgmt),
		client:    &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := p.client.Get(p.Directory)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Roots returns the root Pebble's certificates chain to (a new one at
// every start).
func (p *Pebble) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if pem := p.rootPEM(t); !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("pebble's root is not PEM: %q", pem)
	}
	return pool
}

// RootPEM writes Pebble's root to a file in dir and returns its path.
func (p *Pebble) RootPEM(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "pebble-root.pem")
	if err := os.WriteFile(path, p.rootPEM(t), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func (p *Pebble) rootPEM(t testing.TB) []byte {
	t.Helper()
	resp, err := p.client.Get(p.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
