package main

import (
	"bufio"
	"bytes"
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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/tlsconfig"

	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/internal/testenv/loopback"
)

// ingressBin is the binary the end-to-end tests run, built once for the
// package on the first test that asks for it.
var ingressBin = testenv.NewBinary(".")

// TestMain removes the binary after the tests. m.Run parses the flags
// (-update, -chaos.scale), as the default test main would.
func TestMain(m *testing.M) {
	code := m.Run()
	ingressBin.Remove()
	os.Exit(code)
}

// startedAddrs waits for the start-up line a process of the binary logs
// once it serves ("ingress started" from serve, "dns stub started" from
// dns) and returns its string fields: "admin", "dns" and one per listener
// service ("bolt", "https", ...), each the address actually bound. The
// tests configure every address as 127.0.0.1:0 and learn the port here,
// instead of picking a free one and hoping it stays free. The first such
// line counts: a process started by a hand-over logs its own later.
func startedAddrs(t *testing.T, logs func() string) map[string]string {
	t.Helper()
	var addrs map[string]string
	testenv.WaitFor(t, "the start-up line in the log", func() bool {
		addrs = parseStarted(logs())
		return addrs != nil
	})
	return addrs
}

func parseStarted(logs string) map[string]string {
	for line := range strings.Lines(logs) {
		var fields map[string]any
		if json.Unmarshal([]byte(line), &fields) != nil {
			continue // not JSON, or not all written yet
		}
		if msg := fields["msg"]; msg != "ingress started" && msg != "dns stub started" {
			continue
		}
		addrs := map[string]string{}
		for k, v := range fields {
			if s, ok := v.(string); ok {
				addrs[k] = s
			}
		}
		return addrs
	}
	return nil
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
	testenv.External(t)
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

func TestServeEndToEnd(t *testing.T) {
	testenv.Command(t, "curl")
	dig := testenv.Command(t, "dig")
	s := startServeE2E(t)

	// serve runs the DNS stub too: the wildcard answers the endpoint address.
	host, p, _ := net.SplitHostPort(s.dnsAddr)
	out, err := exec.Command(dig, "@"+host, "-p", p, "+short", "abcd1234.production-orch-0000.neo4j.io").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "10.10.10.10" {
		t.Fatalf("dig through serve's DNS stub: %q, %v", out, err)
	}

	if out, err := s.curl("abcd1234"); err != nil || out != "instance a\n" {
		t.Fatalf("curl abcd1234: %q, %v", out, err)
	}
	if out, err := s.curl("ef567890"); err != nil || !strings.Contains(out, `"error":"database ef567890 not found`) {
		t.Fatalf("curl to a dbid not yet routed: %q, %v; want the explained refusal", out, err)
	}

	s.checkRoutesReloads()
	s.checkSIGHUPReload()
	s.checkSIGTERMDrains()
}

// e2eServe is the `ingress serve` process of TestServeEndToEnd, and what
// the test needs to know of its configuration.
type e2eServe struct {
	t      *testing.T
	cmd    *exec.Cmd
	logs   *lockedBuffer
	exited <-chan error
	files  tlsconfig.DevFiles

	cfg, cfgPath        string // the config as first written, and its file
	routesPath, routesA string // the routes file, and its first content
	backendB            string // the HTTP backend of instance b, not yet routed

	httpsAddr, boltAddr, adminAddr, dnsAddr string
	httpsPort                               string
}

// startServeE2E runs `ingress serve` with the README's sample config, one
// instance routed, and waits until it is ready.
func startServeE2E(t *testing.T) *e2eServe {
	t.Helper()
	bin := ingressBin.Path(t)
	dir := t.TempDir()
	files, err := tlsconfig.WriteDevCerts(dir, []string{"*.production-orch-0000.neo4j.io"})
	if err != nil {
		t.Fatal(err)
	}
	backendA, backendB, echo := e2eHTTPBackend(t, "a"), e2eHTTPBackend(t, "b"), e2eEchoBackend(t)

	// The README's sample config with loopback addresses, each port chosen
	// by the kernel and read back from the log.
	example, err := os.ReadFile("../../examples/ingress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const anyPort = `"127.0.0.1:0"`
	cfg := strings.NewReplacer(
		`":443"`, anyPort,
		`":7687"`, anyPort,
		`":7474"`, anyPort,
		`":8491"`, anyPort,
		`"127.0.0.1:9090"`, anyPort,
		`":53"`, anyPort,
		`drain: 30s`, `drain: 2m`, // a failure bound: the exit below waits for the open connection, not for this
		`tls: {enabled: true, ca: instances-ca.pem,`, `tls: {enabled: false, ca: "",`, // plaintext test backends; backendtls_test.go has TLS ones

	).Replace(string(example))
	cfgPath := filepath.Join(dir, "ingress.yaml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	routesPath := filepath.Join(dir, "routes.yaml")
	routesA := fmt.Sprintf(`instances:
  - {dbid: abcd1234, orch: "0000", public: true, backends: {https: [%q], bolt: [%q]}}
`, backendA, echo)
	writeRoutes(t, routesPath, routesA)

	cmd, logs, exited := runBinary(t, bin, "serve", "-config", cfgPath)
	addrs := startedAddrs(t, logs.String)
	for _, name := range []string{"https", "bolt", "http", "arrow", "admin", "dns"} {
		if addrs[name] == "" {
			t.Fatalf("no %s address in the start-up line: %v", name, addrs)
		}
	}
	s := &e2eServe{
		t: t, cmd: cmd, logs: logs, exited: exited, files: files,
		cfg: cfg, cfgPath: cfgPath, routesPath: routesPath, routesA: routesA, backendB: backendB,
		httpsAddr: addrs["https"], boltAddr: addrs["bolt"], adminAddr: addrs["admin"], dnsAddr: addrs["dns"],
	}
	_, s.httpsPort, _ = net.SplitHostPort(s.httpsAddr)
	testenv.WaitFor(t, "/readyz 200", func() bool { return s.readyz() == 200 })
	return s
}

// readyz returns the status of the admin /readyz, 0 if it is unreachable.
func (s *e2eServe) readyz() int {
	resp, err := http.Get("http://" + s.adminAddr + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// curl fetches / from instance dbid through the https listener.
func (s *e2eServe) curl(dbid string) (string, error) {
	host := dbid + ".production-orch-0000.neo4j.io"
	port := s.httpsPort
	out, err := exec.Command("curl", "-sS", "--cacert", s.files.CA,
		"--resolve", host+":"+port+":127.0.0.1", "https://"+host+":"+port+"/").CombinedOutput()
	return string(out), err
}

// metrics returns the admin /metrics page, "" if it is unreachable.
func (s *e2eServe) metrics() string {
	resp, err := http.Get("http://" + s.adminAddr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// checkRoutesReloads: the watcher picks up a new routes file written by
// rename, and a broken file keeps the last good table.
func (s *e2eServe) checkRoutesReloads() {
	t := s.t
	// The watcher picks up a new routes file written by rename.
	writeRoutes(t, s.routesPath, s.routesA+fmt.Sprintf(`  - {dbid: ef567890, orch: "0000", public: true, backends: {https: [%q]}}
`, s.backendB))
	testenv.WaitFor(t, "the new dbid to be routed", func() bool {
		out, err := s.curl("ef567890")
		return err == nil && out == "instance b\n"
	})

	// A broken file keeps the last good table.
	writeRoutes(t, s.routesPath, "instances:\n  - {dbid: abcd1234, orch: \"0000\", backends: {bolt: [nope]}}\n")
	testenv.WaitFor(t, "the reload error in the log", func() bool {
		return strings.Contains(s.logs.String(), "routes reload failed")
	})
	if !strings.Contains(s.logs.String(), "routes.yaml:2: backend") {
		t.Errorf("reload error without file:line in the log")
	}
	if out, err := s.curl("ef567890"); err != nil || out != "instance b\n" {
		t.Fatalf("after a bad routes file: %q, %v", out, err)
	}
}

// checkSIGHUPReload: SIGHUP re-reads everything, once the first routes
// file is back.
func (s *e2eServe) checkSIGHUPReload() {
	t := s.t
	writeRoutes(t, s.routesPath, s.routesA)
	testenv.WaitFor(t, "the good file back", func() bool {
		out, _ := s.curl("ef567890")
		return strings.Contains(out, `"error":"database ef567890 not found`)
	})
	// A setting only a restart applies is reported, and the reload counted.
	os.WriteFile(s.cfgPath, []byte(strings.Replace(s.cfg, "max_connections: 100000", "max_connections: 5000", 1)), 0o644)
	s.cmd.Process.Signal(syscall.SIGHUP)
	testenv.WaitFor(t, "the SIGHUP reload", func() bool {
		return strings.Contains(s.logs.String(), `"msg":"changed settings take effect at the next restart","settings":["listeners, proxy_protocol, backend, timeouts, limits, refusals"]`)
	})
	testenv.WaitFor(t, "the reloads counted", func() bool {
		m := s.metrics()
		return strings.Contains(m, `ingress_config_reloads_total{result="ok"}`) && strings.Contains(m, `ingress_config_reloads_total{result="error"} 1`)
	})
	if resp, err := http.Get("http://" + s.adminAddr + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/healthz: %v, %v", resp, err)
	}
}

// checkSIGTERMDrains: SIGTERM drains: readyz turns 503, new connections
// are refused, an open connection lives until it is done, then the
// process exits 0.
func (s *e2eServe) checkSIGTERMDrains() {
	t := s.t
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(s.files.CA)
	pool.AppendCertsFromPEM(caPEM)
	conn, err := tls.Dial("tcp", s.boltAddr, &tls.Config{ServerName: "abcd1234.production-orch-0000.neo4j.io", RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * testenv.WaitTimeout)) // a failure bound
	r := bufio.NewReader(conn)
	fmt.Fprintf(conn, "before\n")
	if line, _ := r.ReadString('\n'); line != "before\n" {
		t.Fatalf("echo before SIGTERM: %q", line)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	testenv.WaitFor(t, "/readyz 503", func() bool { return s.readyz() == 503 })
	if c, err := net.DialTimeout("tcp", s.httpsAddr, time.Second); err == nil {
		c.Close()
		t.Error("a new connection was accepted while draining")
	}
	fmt.Fprintf(conn, "during drain\n")
	if line, _ := r.ReadString('\n'); line != "during drain\n" {
		t.Fatalf("echo during drain: %q", line)
	}
	conn.Close()
	select {
	case err := <-s.exited:
		if err != nil {
			t.Fatalf("ingress exited with %v", err)
		}
	case <-time.After(testenv.WaitTimeout): // a failure bound: it exits as soon as the connection closed
		t.Fatal("ingress did not exit after its last connection closed")
	}
	if !strings.Contains(s.logs.String(), `"msg":"ingress stopped"`) {
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
	files, err := tlsconfig.WriteDevCerts(dir, []string{"*.production-orch-0000.neo4j.io"})
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, files.CA, filepath.Join(dir, "instances-ca.pem")) // backend.tls.ca
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
	dig := testenv.Command(t, "dig")
	bin := ingressBin.Path(t)
	dir := t.TempDir()
	routesPath := filepath.Join(dir, "routes.yaml")
	writeRoutes(t, routesPath, `instances:
  - {dbid: abcd1234, orch: "0000", public: true, backends: {bolt: ["127.0.0.1:1"]}}
`)
	cfgPath := filepath.Join(dir, "ingress.yaml")
	os.WriteFile(cfgPath, []byte(`orchestras: ["0000"]
admin: {address: "127.0.0.1:0"}
dns: {address: "127.0.0.1:0", answer_ipv4: ["10.10.10.10"], known_only: true}
`), 0o644)
	cmd, logs, exited := runBinary(t, bin, "dns", "-config", cfgPath)
	dnsAddr := startedAddrs(t, logs.String)["dns"]
	host, port, _ := net.SplitHostPort(dnsAddr)
	query := func(name string) string {
		out, _ := exec.Command(dig, "@"+host, "-p", port, "+tries=1", "+time=2", name).CombinedOutput()
		return string(out)
	}
	testenv.WaitFor(t, "the stub to answer", func() bool {
		return strings.Contains(query("abcd1234.production-orch-0000.neo4j.io"), "10.10.10.10")
	})
	if out := query("nosuchdb.production-orch-0000.neo4j.io"); !strings.Contains(out, "status: NXDOMAIN") {
		t.Errorf("known_only, unknown dbid:\n%s", out)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	testenv.WaitFor(t, "the SIGHUP reload", func() bool { return strings.Contains(logs.String(), "SIGHUP: reloading config") })
	writeRoutes(t, routesPath, "instances: []\n")
	testenv.WaitFor(t, "the removed dbid to be NXDOMAIN", func() bool {
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
	case <-time.After(testenv.WaitTimeout): // a failure bound
		t.Error("ingress dns did not stop on SIGTERM")
	}
}
