// Package pebbletest runs Pebble, Let's Encrypt's ACME test server, for
// tests on loopback: its directory, the CA its HTTPS listener uses, and
// the root its certificates chain to. .ci/run installs the binary into
// .cache/bin.
package pebbletest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/internal/testenv"
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
	t.Helper()
	if p, err := exec.LookPath("pebble"); err == nil {
		return p
	}
	p := filepath.Join(testenv.CacheDir(), "bin", "pebble")
	if _, err := os.Stat(p); err != nil {
		testenv.Missing(t, "pebble", "GOBIN=$PWD/.cache/bin go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.1")
	}
	return p
}

// pickPort picks the ports Pebble listens on; tests replace it.
var pickPort = freePort

// freePort picks a free loopback port. Another process may take it before
// Pebble binds it: Start then retries on others.
func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startTries bounds the starts on fresh ports after one failed on a taken port.
const startTries = 5

// errPortTaken marks a start that failed because a port was taken between
// picking and binding it.
var errPortTaken = errors.New("a port pebble was to listen on was taken")

// Start runs Pebble until the test ends. It validates DNS-01 challenges
// by asking the DNS server at dnsAddr (over TCP, several at once). It is
// an external test's: the quick tier (-short) skips the test.
func Start(t testing.TB, dnsAddr string) *Pebble {
	t.Helper()
	testenv.External(t)
	bin := binary(t)
	dir := t.TempDir()
	// Its HTTPS listener's certificate, for "localhost", from a dev CA.
	files, err := tlsconfig.WriteDevCerts(dir, []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(files.CA)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for try := 1; ; try++ {
		p := &Pebble{CAFile: files.CA, client: client}
		err := p.launch(t, bin, dir, try, files, dnsAddr)
		if err == nil {
			return p
		}
		if !errors.Is(err, errPortTaken) || try == startTries {
			t.Fatalf("pebble did not start: %v", err)
		}
		t.Logf("pebble did not start (%v); again on other ports", err)
	}
}

// launch runs Pebble on fresh ports and waits until its directory answers,
// or it exits: errPortTaken if its log says a port was in use.
func (p *Pebble) launch(t testing.TB, bin, dir string, try int, files tlsconfig.DevFiles, dnsAddr string) error {
	port, mgmt := pickPort(t), pickPort(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           fmt.Sprintf("127.0.0.1:%d", port),
		"managementListenAddress": fmt.Sprintf("127.0.0.1:%d", mgmt),
		"certificate":             files.Cert,
		"privateKey":              files.Key,
		// Where it would connect for HTTP-01 and TLS-ALPN-01, which it
		// never does here (DNS-01 only); nothing binds them.
		"httpPort":                       5002,
		"tlsPort":                        5001,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
	}}
	cfgPath := filepath.Join(dir, fmt.Sprintf("pebble%d.json", try))
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		return err
	}
	cmd := exec.Command(bin, "-config", cfgPath, "-dnsserver", dnsAddr)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	logs, err := os.Create(filepath.Join(dir, fmt.Sprintf("pebble%d.log", try)))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		logs.Close()
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logs.Close(); close(exited) }()
	stop := func() {
		cmd.Process.Kill()
		<-exited
	}
	p.Directory = fmt.Sprintf("https://localhost:%d/dir", port)
	p.mgmt = fmt.Sprintf("https://localhost:%d", mgmt)
	ready := testenv.WaitServing(exited, func() error {
		resp, err := p.client.Get(p.Directory)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("GET %s: %s", p.Directory, resp.Status)
		}
		return nil
	})
	if errors.Is(ready, testenv.ErrExited) {
		out, _ := os.ReadFile(logs.Name())
		if line := testenv.AddrInUse(string(out)); line != "" {
			return fmt.Errorf("%w: %s", errPortTaken, line)
		}
		return fmt.Errorf("pebble exited: %v\n%s", cmd.ProcessState, out)
	}
	if ready != nil {
		stop()
		return ready
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			out, _ := os.ReadFile(logs.Name())
			t.Logf("pebble log:\n%s", out)
		}
	})
	return nil
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
