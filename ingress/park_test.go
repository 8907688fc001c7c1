package ingress_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/ingress"
	"github.com/neo4j/private-ingress/internal/testenv"
)

// parkedNow returns ingress_parked_connections for service.
func (e *env) parkedNow(service string) float64 {
	return counterValue(e.t, e.reg, "ingress_parked_connections", map[string]string{"service": service})
}

// waitParked waits until want connections of service hold no goroutine.
func (e *env) waitParked(service string, want float64) {
	e.t.Helper()
	var got float64
	if !testenv.Poll(testenv.WaitTimeout, func() bool { got = e.parkedNow(service); return got == want }) {
		e.t.Fatalf("ingress_parked_connections{service=%q} = %v, want %v", service, got, want)
	}
}

// echo sends a line and reads it back.
func echo(t *testing.T, c io.Writer, r *bufio.Reader, line string) {
	t.Helper()
	fmt.Fprintf(c, "%s\n", line)
	if got, err := r.ReadString('\n'); err != nil || got != line+"\n" {
		t.Fatalf("echo of %q: %q, %v", line, got, err)
	}
}

// parkedConn runs an ingress to a test backend and returns a connection
// through it that has parked: its greeting read, both directions quiet.
func parkedConn(t *testing.T, opts ...envOption) (*env, *backend, *tls.Conn, *bufio.Reader) {
	t.Helper()
	a := startBackend(t, "a")
	e := startEnv(t, twoInstances(a, a), opts...)
	c, r, _ := e.mustGreet("bolt", fqdn("abcd1234"))
	t.Cleanup(func() { c.Close() })
	e.waitParked("bolt", 1)
	return e, a, c, r
}

// TestParkedConnectionsWake: a connection quiet for timeouts.park holds
// no goroutine, and carries data again at once, from either side, as many
// times as it goes quiet, over a plain or a TLS backend leg. Every other
// round trip spans several TLS records, after which parking gives the
// tls.Conns' grown read buffers back.
func TestParkedConnectionsWake(t *testing.T) {
	a := startBackend(t, "a")
	tlsBackend, withBackendTLS := startTLSBackend(t, "backend.test")
	for _, tc := range []struct {
		name string
		b    *backend
		opts []envOption
	}{
		{"plain backend", a, nil},
		{"TLS backend", tlsBackend, []envOption{withBackendTLS}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, twoInstances(tc.b, tc.b), tc.opts...)
			c, r, _ := e.mustGreet("bolt", fqdn("abcd1234"))
			defer c.Close()
			long := strings.Repeat("x", 40<<10)
			for i := range 6 {
				e.waitParked("bolt", 1)
				ping := fmt.Sprintf("ping %d", i)
				if i%2 == 1 {
					ping += long
				}
				echo(t, c, r, ping)
			}
			e.waitParked("bolt", 1)
			c.Close()
			e.waitCount("bolt", "ok", 1)
			e.waitParked("bolt", 0)
		})
	}
}

// TestParkedConnectionsHoldNoGoroutine: many parked connections cost no
// goroutine each.
func TestParkedConnectionsHoldNoGoroutine(t *testing.T) {
	a := startBackend(t, "a")
	e := startEnv(t, twoInstances(a, a))
	const n = 50
	var conns []io.Closer
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	before := runtime.NumGoroutine()
	for range n {
		c, _, _ := e.mustGreet("bolt", fqdn("abcd1234"))
		conns = append(conns, c)
	}
	e.waitParked("bolt", n)
	// Each connection still has the backend's goroutine (in this test
	// process) and nothing of the ingress's: n, not 3n. The workers
	// waiting for a task are as many whatever n is.
	if grew := runtime.NumGoroutine() - before; grew > n+ingress.MaxIdleWorkers(e.srv)+5 {
		t.Errorf("%d parked connections added %d goroutines, want about %d (the test backends')", n, grew, n)
	}
	stacks := make([]byte, 4<<20)
	stacks = stacks[:runtime.Stack(stacks, true)]
	for _, copying := range []string{"ingress.(*Server).copyUp", "ingress.(*Server).copyDown", "ingress.(*conn).serve"} {
		if k := strings.Count(string(stacks), copying); k > 0 {
			t.Errorf("%d goroutines in %s with every connection parked", k, copying)
		}
	}
}

// TestParkedConnectionsWakeTogether: more connections than one epoll_wait
// returns (128) wake at once, and each one carries its data. With one P,
// the writes to all of them usually land before the parker runs.
func TestParkedConnectionsWakeTogether(t *testing.T) {
	a := startBackend(t, "a")
	e := startEnv(t, twoInstances(a, a))
	const n = 200
	type client struct {
		c *tls.Conn
		r *bufio.Reader
	}
	clients := make([]client, n)
	for i := range clients {
		c, r, _ := e.mustGreet("bolt", fqdn("abcd1234"))
		defer c.Close()
		clients[i] = client{c, r}
	}
	e.waitParked("bolt", n)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for i, cl := range clients {
		fmt.Fprintf(cl.c, "ping %d\n", i)
	}
	for i, cl := range clients {
		cl.c.SetReadDeadline(time.Now().Add(testenv.WaitTimeout)) // a connection left parked fails, not hangs
		if got, err := cl.r.ReadString('\n'); err != nil || got != fmt.Sprintf("ping %d\n", i) {
			t.Fatalf("connection %d: %q, %v", i, got, err)
		}
	}
}

// TestParkedConnectionHalfCloses: a client's FIN wakes the parked
// direction, which passes it on; the backend's answer and FIN come back.
func TestParkedConnectionHalfCloses(t *testing.T) {
	e, _, c, r := parkedConn(t)
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if line, err := r.ReadString('\n'); err != nil || line != "bye a\n" {
		t.Fatalf("after the half-close: %q, %v; want the backend's bye", line, err)
	}
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("after the bye: %v, want EOF", err)
	}
	e.waitCount("bolt", "ok", 1)
}

// TestParkedConnectionTimesOut: timeouts.idle closes a connection whose
// directions are both parked, with no goroutine left to notice.
func TestParkedConnectionTimesOut(t *testing.T) {
	a := startBackend(t, "a")
	e := startEnv(t, twoInstances(a, a), func(s *envSetup) { s.Timeouts.Idle = 300 * time.Millisecond })
	c, r, _ := e.mustGreet("bolt", fqdn("abcd1234"))
	defer c.Close()
	if _, err := r.ReadString('\n'); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("idle parked connection: %v, want it closed by the ingress", err)
	}
	e.waitCount("bolt", "ok", 1)
	e.waitParked("bolt", 0)
}

// TestParkedConnectionsAreDrained: at the drain's end a parked connection
// is closed and counted like a busy one, and Shutdown returns.
func TestParkedConnectionsAreDrained(t *testing.T) {
	e, _, _, r := parkedConn(t)
	if err := e.shutdown(200 * time.Millisecond); err == nil {
		t.Error("Shutdown with a parked connection open: no error, want the drain's timeout")
	}
	if _, err := r.ReadString('\n'); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("parked connection after the drain: %v, want it closed", err)
	}
	e.waitCount("bolt", "ok", 1)
}

// TestParkedConnectionIsRevoked: a reload that takes access away closes a
// parked connection too.
func TestParkedConnectionIsRevoked(t *testing.T) {
	e, a, _, r := parkedConn(t, withRevokeAfter(ingress.RevokeAtOnce))
	e.reload(fmt.Sprintf("instances:\n  - {dbid: abcd1234, orch: \"0000\", public: false, backends: {bolt: [%q]}}\n", a.addr()))
	if _, err := r.ReadString('\n'); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("parked connection after revocation: %v, want it closed", err)
	}
	e.waitCount("bolt", "revoked", 1)
}

// TestParkedConnectionSeesTheBackendGo: a backend that closes wakes the
// parked direction and the client sees the end.
func TestParkedConnectionSeesTheBackendGo(t *testing.T) {
	e, a, c, r := parkedConn(t)
	a.ln.Close()
	a.closeAll()
	if _, err := r.ReadString('\n'); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("after the backend closed: %v, want the end of the connection", err)
	}
	// The client's direction stays open (parked) until the client closes.
	e.waitParked("bolt", 1)
	c.Close()
	e.waitCount("bolt", "ok", 1)
	e.waitParked("bolt", 0)
}
