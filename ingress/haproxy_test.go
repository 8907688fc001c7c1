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

	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/internal/testenv/loopback"
)

// TestBehindHAProxy puts a real HAProxy in front of the ingress, as the
// cloud's load balancer would be, sending PROXY v2. The ingress and the
// backend must see the client's address, not HAProxy's.
func TestBehindHAProxy(t *testing.T) {
	haproxy := testenv.Command(t, "haproxy")
	backend := ppBackend(t, "b")
	e := startEnv(t, fmt.Sprintf(privateRoutes, backend), withProxy("required", "127.0.0.0/8"))

	// HAProxy's frontend socket is bound here, on port 0, and handed to it
	// (bind fd@3): no port picked now can be taken before it binds it.
	// Connections wait in its backlog until HAProxy accepts them.
	ln := loopback.Listen(t)
	front := ln.Addr().String()
	socket, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close() // the socket lives on in the file, then in HAProxy only
	cfg := fmt.Sprintf(`global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend privatelink
    bind fd@3
    default_backend ingress
backend ingress
    server ingress %s send-proxy-v2
`, e.addr("bolt"))
	dir := t.TempDir()
	path := filepath.Join(dir, "haproxy.cfg")
	os.WriteFile(path, []byte(cfg), 0o644)
	logs, err := os.Create(filepath.Join(dir, "haproxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	out := func() string { b, _ := os.ReadFile(logs.Name()); return string(b) }
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, haproxy, "-f", path, "-db")
	cmd.ExtraFiles = []*os.File{socket}
	cmd.Stdout, cmd.Stderr = logs, logs
	err = cmd.Start()
	socket.Close()
	logs.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })

	raw, err := net.DialTimeout("tcp", front, testenv.WaitTimeout)
	if err != nil {
		t.Fatalf("%v\n%s", err, out())
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(testenv.WaitTimeout))
	c := tls.Client(raw, &tls.Config{ServerName: fqdn("public01"), RootCAs: e.ca})
	line, err := bufioLine(c)
	if err != nil {
		t.Fatalf("through HAProxy: %v\n%s", err, out())
	}
	me := raw.LocalAddr().String()
	if !strings.Contains(line, "from "+me+" ") {
		t.Errorf("backend saw %q, want the client's own address %s", line, me)
	}
	c.Close()
	testenv.WaitFor(t, "the connection log line", func() bool {
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
