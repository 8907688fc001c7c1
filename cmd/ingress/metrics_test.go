package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os/exec"
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
		"ingress_connections_revoked_total", "dnsstub_tcp_refused_total",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
}
