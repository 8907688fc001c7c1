package loopback_test

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/internal/testenv/loopback"
)

// TestRefused: the address refuses connections, and no listener can take
// its port while the test holds it.
func TestRefused(t *testing.T) {
	addr := loopback.Refused(t)
	c, err := net.DialTimeout("tcp", addr, testenv.WaitTimeout)
	if err == nil {
		c.Close()
		t.Fatalf("a connection to %s was accepted", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial %s: %v, want connection refused", addr, err)
	}
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Errorf("a listener took %s", addr)
	}
}

func TestEcho(t *testing.T) {
	c, err := net.DialTimeout("tcp", loopback.Echo(t), testenv.WaitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testenv.WaitTimeout))
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo: %q, %v", buf, err)
	}
}
