package ingress_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBehindHAProxy puts a real HAProxy in front of the ingress, as the
// cloud's load balancer would be, sending PROXY v2. The ingress and the
// backend must see the client's address, not HAProxy's.
func TestBehindHAProxy(t *testing.T) {
	haproxy := needTool(t, "haproxy")
	backend := ppBackend(t, "b")
	e := startEnv(t, fmt.Sprintf(privateRoutes, backend), withProxy("required", "127.0.0.0/8"))

	front := closedAddr(t)
	cfg := fmt.Sprintf(`global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend privatelink
    bind %s
    default_backend ingress
backend ingress
    server ingress %s send-proxy-v2
`, front, e.addr("bolt"))
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	os.WriteFile(path, []byte(cfg), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, haproxy, "-f", path, "-db")
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	waitFor(t, "HAProxy to listen", func() bool {
		c, err := net.Dial("tcp", front)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	raw, err := net.DialTimeout("tcp", front, 5*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	c := tls.Client(raw, &tls.Config{ServerName: fqdn("public01"), RootCAs: e.ca})
	line, err := bufioLine(c)
	if err != nil {
		t.Fatalf("through HAProxy: %v\n%s", err, out)
	}
	me := raw.LocalAddr().String()
	if !strings.Contains(line, "from "+me+" ") {
		t.Errorf("backend saw %q, want the client's own address %s", line, me)
	}
	c.Close()
	waitFor(t, "the connection log line", func() bool {
		for _, entry := range e.logs.FilterMessage("connection").All() {
			if entry.ContextMap()["client"] == me {
				return true
			}
		}
		return false
	})
}

func bufioLine(c *tls.Conn) (string, error) {
	var b strings.Builder
	buf := make([]byte, 1)
	for {
		if _, err := c.Read(buf); err != nil {
			return b.String(), err
		}
		b.WriteByte(buf[0])
		if buf[0] == '\n' {
			return b.String(), nil
		}
	}
}
