package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/tlsconfig"

	"github.com/neo4j/private-ingress/internal/loopback"
)

// e2eBinary builds the ingress once per test run.
// needCommand finds a command-line tool: a test without it skips, but fails
// in CI, where .ci/run installs it.
func needCommand(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed; .ci/run must install it", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return path
}

func e2eBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ingress")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// e2eFreeAddr returns a loopback address that was free a moment ago. The
// binary binds fixed addresses from its config, so the test picks them.
func e2eFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func e2eHTTPBackend(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "instance %s\n", name)
	}), Protocols: new(http.Protocols)}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func e2eEchoBackend(t *testing.T) string { return loopback.Echo(t) }

// runBinary starts bin with args, its output in logs, and kills it when
// the test ends, showing the output if the test failed. exited hears how
// it ended.
func runBinary(t *testing.T, bin string, args ...string) (cmd *exec.Cmd, logs *lockedBuffer, exited <-chan error) {
	t.Helper()
	logs = &lockedBuffer{}
	cmd = exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("ingress %s output:\n%s", args[0], logs)
		}
	})
	return cmd, logs, done
}

// lockedBuffer collects the process's log output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func writeRoutes(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil { // how config managers write
		t.Fatal(err)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServeEndToEnd(t *testing.T) {
	needCommand(t, "curl")
	bin := e2eBinary(t)
	dir := t.TempDir()
	files, err := tlsconfig.WriteDevCerts(dir, []string{"*.production-orch-0000.neo4j.io"})
	if err != nil {
		t.Fatal(err)
	}
	httpsAddr, boltAddr, adminAddr, dnsAddr := e2eFreeAddr(t), e2eFreeAddr(t), e2eFreeAddr(t), e2eFreeAddr(t)
	backendA, backendB, echo := e2eHTTPBackend(t, "a"), e2eHTTPBackend(t, "b"), e2eEchoBackend(t)

	// The README's sample config with loopback addresses.
	example, err := os.ReadFile("../../examples/ingress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer(
		`":443"`, fmt.Sprintf("%q", httpsAddr),
		`":7687"`, fmt.Sprintf("%q", boltAddr),
		`":7474"`, fmt.Sprintf("%q", e2eFreeAddr(t)),
		`":8491"`, fmt.Sprintf("%q", e2eFreeAddr(t)),
		`"127.0.0.1:9090"`, fmt.Sprintf("%q", adminAddr),
		`":53"`, fmt.Sprintf("%q", dnsAddr),
		`drain: 30s`, `drain: 10s`,
	).Replace(string(example))
	cfgPath := filepath.Join(dir, "ingress.yaml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	routesPath := filepath.Join(dir, "routes.yaml")
	routesA := fmt.Sprintf(`instances:
  - {dbid: abcd1234, orch: "0000", public: true, backends: {https: [%q], bolt: [%q]}}
`, backendA, echo)
	writeRoutes(t, routesPath, routesA)

	cmd, logs, exited := runBinary(t, bin, "serve", "-config", cfgPath)

	readyz := func() int {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	eventually(t, "/readyz 200", func() bool { return readyz() == 200 })

	// serve runs the DNS stub too: the wildcard answers the endpoint address.
	if dig, err := exec.LookPath("dig"); err == nil {
		host, p, _ := net.SplitHostPort(dnsAddr)
		out, err := exec.Command(dig, "@"+host, "-p", p, "+short", "abcd1234.production-orch-0000.neo4j.io").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "10.10.10.10" {
			t.Fatalf("dig through serve's DNS stub: %q, %v", out, err)
		}
	}

	_, port, _ := net.SplitHostPort(httpsAddr)
	curl := func(dbid string) (string, error) {
		host := dbid + ".production-orch-0000.neo4j.io"
		out, err := exec.Command("curl", "-sS", "--cacert", files.CA,
			"--resolve", host+":"+port+":127.0.0.1", "https://"+host+":"+port+"/").CombinedOutput()
		return string(out), err
	}
	if out, err := curl("abcd1234"); err != nil || out != "instance a\n" {
		t.Fatalf("curl abcd1234: %q, %v", out, err)
	}
	if out, err := curl("ef567890"); err != nil || !strings.Contains(out, `"error":"database ef567890 not found`) {
		t.Fatalf("curl to a dbid not yet routed: %q, %v; want the explained refusal", out, err)
	}

	// The watcher picks up a new routes file written by rename.
	writeRoutes(t, routesPath, routesA+fmt.Sprintf(`  - {dbid: ef567890, orch: "0000", public: true, backends: {https: [%q]}}
`, backendB))
	eventually(t, "the new dbid to be routed", func() bool {
		out, err := curl("ef567890")
		return err == nil && out == "instance b\n"
	})

	// A broken file keeps the last good table.
	writeRoutes(t, routesPath, "instances:\n  - {dbid: abcd1234, orch: \"0000\", backends: {bolt: [nope]}}\n")
	eventually(t, "the reload error in the log", func() bool {
		return strings.Contains(logs.String(), "routes reload failed")
	})
	if !strings.Contains(logs.String(), "routes.yaml:2: backend") {
		t.Errorf("reload error without file:line in the log")
	}
	if out, err := curl("ef567890"); err != nil || out != "instance b\n" {
		t.Fatalf("after a bad routes file: %q, %v", out, err)
	}

	// SIGHUP re-reads everything.
	writeRoutes(t, routesPath, routesA)
	eventually(t, "the good file back", func() bool {
		out, _ := curl("ef567890")
		return strings.Contains(out, `"error":"database ef567890 not found`)
	})
	// A setting only a restart applies is reported, and the reload counted.
	os.WriteFile(cfgPath, []byte(strings.Replace(cfg, "max_connections: 100000", "max_connections: 5000", 1)), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, "the SIGHUP reload", func() bool {
		return strings.Contains(logs.String(), `"msg":"changed settings take effect at the next restart","settings":["listeners, proxy_protocol, backend, timeouts, limits, refusals"]`)
	})
	metrics := func() string {
		resp, err := http.Get("http://" + adminAddr + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	eventually(t, "the reloads counted", func() bool {
		m := metrics()
		return strings.Contains(m, `ingress_config_reloads_total{result="ok"}`) && strings.Contains(m, `ingress_config_reloads_total{result="error"} 1`)
	})
	if resp, err := http.Get("http://" + adminAddr + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/healthz: %v, %v", resp, err)
	}

	// SIGTERM drains: readyz turns 503, new connections are refused, an
	// open connection lives until it is done, then the process exits 0.
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(files.CA)
	pool.AppendCertsFromPEM(caPEM)
	conn, err := tls.Dial("tcp", boltAddr, &tls.Config{ServerName: "abcd1234.production-orch-0000.neo4j.io", RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(conn)
	fmt.Fprintf(conn, "before\n")
	if line, _ := r.ReadString('\n'); line != "before\n" {
		t.Fatalf("echo before SIGTERM: %q", line)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	eventually(t, "/readyz 503", func() bool { return readyz() == 503 })
	if c, err := net.DialTimeout("tcp", httpsAddr, time.Second); err == nil {
		c.Close()
		t.Error("a new connection was accepted while draining")
	}
	fmt.Fprintf(conn, "during drain\n")
	if line, _ := r.ReadString('\n'); line != "during drain\n" {
		t.Fatalf("echo during drain: %q", line)
	}
	conn.Close()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("ingress exited with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("ingress did not exit after its last connection closed")
	}
	if !strings.Contains(logs.String(), `"msg":"ingress stopped"`) {
		t.Error("no 'ingress stopped' line in the JSON log")
	}
}

// TestExampleConfigChecks keeps examples/ valid: `ingress check` accepts
// them once certificates exist beside them.
func TestExampleConfigChecks(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"ingress.yaml", "routes.yaml"} {
		data, err := os.ReadFile(filepath.Join("../../examples", name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name), data, 0o644)
	}
	if _, err := tlsconfig.WriteDevCerts(dir, []string{"*.production-orch-0000.neo4j.io"}); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "-config", filepath.Join(dir, "ingress.yaml")}, &stdout, &stderr); code != 0 {
		t.Fatalf("check exited %d:\n%s", code, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("check warned:\n%s", stderr.String())
	}
}

// TestDNSCommand runs `ingress dns` alone, as a deployment that keeps the
// stub apart would: dig gets answers, known_only follows the routes file,
// and SIGHUP reloads instead of ending the process.
func TestDNSCommand(t *testing.T) {
	dig := needCommand(t, "dig")
	bin := e2eBinary(t)
	dir := t.TempDir()
	dnsAddr := e2eFreeAddr(t)
	routesPath := filepath.Join(dir, "routes.yaml")
	writeRoutes(t, routesPath, `instances:
  - {dbid: abcd1234, orch: "0000", public: true, backends: {bolt: ["127.0.0.1:1"]}}
`)
	cfgPath := filepath.Join(dir, "ingress.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`orchestras: ["0000"]
admin: {address: %q}
dns: {address: %q, answer_ipv4: ["10.10.10.10"], known_only: true}
`, e2eFreeAddr(t), dnsAddr)), 0o644)
	cmd, logs, exited := runBinary(t, bin, "dns", "-config", cfgPath)
	host, port, _ := net.SplitHostPort(dnsAddr)
	query := func(name string) string {
		out, _ := exec.Command(dig, "@"+host, "-p", port, "+tries=1", "+time=2", name).CombinedOutput()
		return string(out)
	}
	eventually(t, "the stub to answer", func() bool {
		return strings.Contains(query("abcd1234.production-orch-0000.neo4j.io"), "10.10.10.10")
	})
	if out := query("nosuchdb.production-orch-0000.neo4j.io"); !strings.Contains(out, "status: NXDOMAIN") {
		t.Errorf("known_only, unknown dbid:\n%s", out)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, "the SIGHUP reload", func() bool { return strings.Contains(logs.String(), "SIGHUP: reloading routes") })
	writeRoutes(t, routesPath, "instances: []\n")
	eventually(t, "the removed dbid to be NXDOMAIN", func() bool {
		return strings.Contains(query("abcd1234.production-orch-0000.neo4j.io"), "status: NXDOMAIN")
	})
	select {
	case err := <-exited:
		t.Fatalf("ingress dns exited after SIGHUP: %v", err)
	default:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("ingress dns did not stop on SIGTERM")
	}
}
