package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/neo4j/private-ingress/internal/testenv"
)

// TestMetricsPassPromtool: what /metrics serves, after an ok connection
// and a probe, passes Prometheus's own linter, and every result the
// README lists is there from the start.
func TestMetricsPassPromtool(t *testing.T) {
	promtool := testenv.Command(t, "promtool")
	c := startChaosIngress(t, chaosRoutes(e2eEchoBackend(t), 0), "dns: {address: \"127.0.0.1:0\", answer_ipv4: [10.10.10.10]}\n")
	if err := c.ping(); err != nil {
		t.Fatal(err)
	}
	if conn, err := net.Dial("tcp", c.bolt); err == nil { // nc -vz
		conn.Close()
	}
	testenv.WaitFor(t, "the probe to be counted", func() bool {
		return c.metric(`ingress_connections_total{result="probe",service="bolt"}`) == 1
	})
	resp, err := http.Get("http://" + c.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	for _, want := range []string{
		`result="probe"`, `result="revoked"`, `result="limit"`, `result="handshake_error"`,
		"ingress_connections_revoked_total", "dnsstub_tcp_refused_total", "ingress_build_info{",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
}

// TestBuildInfoMetric: /metrics says which build serves, with the labels
// `ingress version` prints: the same version, revision and Go version,
// and the flavour.
func TestBuildInfoMetric(t *testing.T) {
	c := startChaosIngress(t, chaosRoutes(e2eEchoBackend(t), 0), "")
	out, err := exec.Command(ingressBin.Path(t), "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	v := strings.Fields(string(out)) // ingress <version> <revision> <vcs time> <go version> <flavour>
	if len(v) != 6 {
		t.Fatalf("ingress version: %q", out)
	}
	want := fmt.Sprintf(`ingress_build_info{flavour=%q,goversion=%q,revision=%q,version=%q} 1`, v[5], v[4], v[2], v[1])
	if v[5] != "pure-go" || v[4] != runtime.Version() {
		t.Errorf("ingress version: %q, want the flavour pure-go and %s", out, runtime.Version())
	}
	_, body, err := probe(c.admin, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, "\n"+want+"\n") || !strings.Contains(body, "# TYPE ingress_build_info gauge\n") {
		t.Errorf("/metrics has no\n%s\nbut:\n%s", want, grepLines(body, "ingress_build_info"))
	}
}

// grepLines returns the lines of text that contain s.
func grepLines(text, s string) string {
	var b strings.Builder
	for line := range strings.Lines(text) {
		if strings.Contains(line, s) {
			b.WriteString(line)
		}
	}
	return b.String()
}
