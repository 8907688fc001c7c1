package ingress_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"go.uber.org/zap/zapcore"

	"github.com/neo4j/private-ingress/ingress"
	"github.com/neo4j/private-ingress/internal/testenv"
)

func withLimits(f func(*ingress.Limits)) envOption {
	return func(s *envSetup) { f(&s.Limits) }
}

// hold opens a raw connection to service, writes prefix (a PROXY header,
// or nothing) and leaves it open until the test ends.
func (e *env) hold(service string, prefix []byte) net.Conn {
	e.t.Helper()
	c, err := net.DialTimeout("tcp", e.addr(service), testenv.WaitTimeout)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	if _, err := c.Write(prefix); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// from is a PROXY v2 header naming ip as the client, with tlvs.
func from(t *testing.T, ip string, tlvs ...proxyproto.TLV) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000}, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 7687})
	if err := h.SetTLVs(tlvs); err != nil {
		t.Fatal(err)
	}
	return mustFormat(t, h)
}

// closedBeforeTLS checks that a client's handshake ended because the
// ingress closed the connection, not with a TLS alert or a certificate.
func closedBeforeTLS(t *testing.T, err error) {
	t.Helper()
	switch {
	case err == nil:
		t.Fatal("the handshake succeeded, want the connection closed before TLS")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
	default:
		t.Fatalf("the handshake failed with %v, want the connection closed (EOF or reset) before TLS", err)
	}
}

// limitLines returns the log lines of connections refused by a limit.
func (e *env) limitLines() []map[string]any {
	var lines []map[string]any
	for _, entry := range e.logs.FilterMessage("connection").All() {
		if m := entry.ContextMap(); m["result"] == "limit" {
			if entry.Level != zapcore.WarnLevel {
				e.t.Errorf("limit line at %s, want warn: %v", entry.Level, m)
			}
			lines = append(lines, m)
		}
	}
	return lines
}

func TestMaxConnectionsPerSource(t *testing.T) {
	t.Run("TCP peer", func(t *testing.T) {
		a := startBackend(t, "a")
		e := startEnv(t, twoInstances(a, a), withLimits(func(l *ingress.Limits) { l.MaxConnectionsPerSource = 5 }))
		var held []net.Conn
		for range 5 {
			held = append(held, e.hold("bolt", nil)) // silent: they sit in the handshake
		}
		testenv.WaitFor(t, "the 5 silent connections to be counted", func() bool {
			return ingress.HeldBySource(e.srv, "127.0.0.1") == 5
		})
		// The 6th from the same address is closed before any TLS, on any
		// listener, however fast they come; the log says so once a second.
		start := time.Now()
		for i := range 10 {
			service := []string{"bolt", "https"}[i%2]
			_, err := e.dial(service, fqdn("abcd1234"))
			closedBeforeTLS(t, err)
		}
		e.waitCount("bolt", "limit", 5)
		e.waitCount("https", "limit", 5)
		elapsed := time.Since(start)
		lines := e.limitLines()
		if len(lines) == 0 || len(lines) > 1+int(elapsed/time.Second) {
			t.Errorf("%d limit log lines for 10 refusals in %v, want 1 a second at most", len(lines), elapsed)
		}
		if len(lines) > 0 && lines[0]["reason"] != "limits.max_connections_per_source (5) reached for 127.0.0.1" {
			t.Errorf("limit line %v", lines[0])
		}
		if n := ingress.HeldBySource(e.srv, "127.0.0.1"); n != 5 {
			t.Errorf("%d connections counted after the refusals, want the 5 held", n)
		}
		// One of the five goes: a new one is served.
		held[0].Close()
		e.waitCount("bolt", "probe", 1)
		c, _, greeting := e.mustGreet("bolt", fqdn("abcd1234"))
		c.Close()
		if greeting != "hello a" {
			t.Errorf("greeting %q", greeting)
		}
	})

	t.Run("PROXY header source", func(t *testing.T) {
		backend := ppBackend(t, "b")
		e := startEnv(t, fmt.Sprintf(privateRoutes, backend), withProxy("optional", "127.0.0.0/8"),
			withLimits(func(l *ingress.Limits) { l.MaxConnectionsPerSource = 5 }))
		var held []net.Conn
		for range 5 {
			held = append(held, e.hold("bolt", from(t, "192.0.2.44")))
		}
		testenv.WaitFor(t, "the 5 connections from 192.0.2.44 to be counted", func() bool {
			return ingress.HeldBySource(e.srv, "192.0.2.44") == 5
		})
		_, _, err := e.dialVia("bolt", fqdn("public01"), from(t, "192.0.2.44"))
		closedBeforeTLS(t, err)
		e.waitCount("bolt", "limit", 1)
		// Another client behind the same load balancer, and the load
		// balancer's own address, are not capped by it.
		for _, tc := range []struct {
			prefix []byte
			client string
		}{{from(t, "198.51.100.7"), "198.51.100.7:"}, {nil, "127.0.0.1:"}} {
			c, r, err := e.dialVia("bolt", fqdn("public01"), tc.prefix)
			if err != nil {
				t.Fatalf("client %s: %v", tc.client, err)
			}
			if line, _ := r.ReadString('\n'); !strings.Contains(line, "from "+tc.client) {
				t.Errorf("greeting %q, want it from %s", line, tc.client)
			}
			c.Close()
		}
		held[0].Close() // a header, then nothing: a probe
		e.waitCount("bolt", "probe", 1)
		c, r, err := e.dialVia("bolt", fqdn("public01"), from(t, "192.0.2.44"))
		if err != nil {
			t.Fatalf("after one of the five closed: %v", err)
		}
		r.ReadString('\n')
		c.Close()
	})
}

// endpointRoutes has an instance behind two AWS endpoints and a public one.
const endpointRoutes = `
instances:
  - {dbid: awsdb001, orch: "0000", public: false, endpoints: [vpce-0a1b2c3d4e5f6a7b8, vpce-0ffffffffffffffff], backends: {bolt: [%[1]q]}}
  - {dbid: public01, orch: "0000", public: true, backends: {bolt: [%[1]q]}}
`

func TestMaxConnectionsPerEndpoint(t *testing.T) {
	const capped, other = "vpce-0a1b2c3d4e5f6a7b8", "vpce-0ffffffffffffffff"
	backend := ppBackend(t, "b")
	e := startEnv(t, fmt.Sprintf(endpointRoutes, backend), withProxy("required", "127.0.0.0/8"),
		withLimits(func(l *ingress.Limits) { l.MaxConnectionsPerEndpoint = 2 }))
	var held []net.Conn
	for range 2 {
		held = append(held, e.hold("bolt", mustFormat(t, header(t, awsTLV(capped)))))
	}
	testenv.WaitFor(t, "the 2 connections through "+capped+" to be counted", func() bool {
		return ingress.HeldByEndpoint(e.srv, capped) == 2
	})
	_, _, err := e.dialVia("bolt", fqdn("awsdb001"), mustFormat(t, header(t, awsTLV(capped))))
	closedBeforeTLS(t, err)
	e.waitCount("bolt", "limit", 1)
	if lines := e.limitLines(); len(lines) != 1 || lines[0]["reason"] != "limits.max_connections_per_endpoint (2) reached for "+capped {
		t.Errorf("limit lines %v", lines)
	}

	// Another endpoint is served, and so is public traffic (a header
	// without an endpoint), however many connections it holds.
	for range 3 {
		e.hold("bolt", mustFormat(t, header(t)))
	}
	for _, tc := range []struct {
		dbid     string
		prefix   []byte
		endpoint string
	}{
		{"awsdb001", mustFormat(t, header(t, awsTLV(other))), other},
		{"public01", mustFormat(t, header(t)), ""},
	} {
		c, r, err := e.dialVia("bolt", fqdn(tc.dbid), tc.prefix)
		if err != nil {
			t.Fatalf("%s through %q: %v", tc.dbid, tc.endpoint, err)
		}
		if line, _ := r.ReadString('\n'); !strings.Contains(line, fmt.Sprintf("endpoint %q", tc.endpoint)) {
			t.Errorf("greeting %q, want it through %q", line, tc.endpoint)
		}
		c.Close()
	}

	held[0].Close()
	e.waitCount("bolt", "probe", 1)
	c, r, err := e.dialVia("bolt", fqdn("awsdb001"), mustFormat(t, header(t, awsTLV(capped))))
	if err != nil {
		t.Fatalf("after one of the two closed: %v", err)
	}
	r.ReadString('\n')
	c.Close()
}

// TestMaxExplainedPerSecond runs the listeners' explanation budgets on a
// clock the test moves: the burst, then the alert, per listener.
func TestMaxExplainedPerSecond(t *testing.T) {
	b := startBackend(t, "b")
	e := startEnv(t, explainRoutesFor(t, b.addr()), withLimits(func(l *ingress.Limits) { l.MaxExplainedPerSecond = 2 }))
	var now atomic.Int64
	now.Store(time.Unix(1_700_000_000, 0).UnixNano())
	ingress.SetExplainClock(e.srv, func() time.Time { return time.Unix(0, now.Load()) })
	explained := func(service string) bool {
		t.Helper()
		c, err := e.dial(service, fqdn("nosuchdb"))
		if err == nil {
			c.Close()
			return true
		}
		if !strings.Contains(err.Error(), "unrecognized name") {
			t.Fatalf("handshake: %v, want success or the unrecognized_name alert", err)
		}
		return false
	}
	var got []bool
	for range 3 {
		got = append(got, explained("https"))
	}
	got = append(got, explained("bolt"))   // another listener, its own budget
	now.Add(int64(500 * time.Millisecond)) // one token back at 2/s
	got = append(got, explained("https"), explained("https"))
	if fmt.Sprint(got) != "[true true false true true false]" {
		t.Errorf("explained: %v, want [true true false true true false]", got)
	}
	e.waitCount("https", "unknown_dbid", 5)
	var alerted int
	for _, entry := range e.logs.FilterMessage("connection").All() {
		if reason, _ := entry.ContextMap()["reason"].(string); strings.Contains(reason, "limits.max_explained_per_second reached") {
			alerted++
		}
	}
	if alerted != 2 {
		t.Errorf("%d log lines say the explanation budget was spent, want 2", alerted)
	}

	t.Run("never", func(t *testing.T) {
		e := startEnv(t, explainRoutesFor(t, b.addr()), withLimits(func(l *ingress.Limits) { l.MaxExplainedPerSecond = ingress.ExplainNever }))
		c, err := e.dial("https", fqdn("nosuchdb"))
		if err == nil {
			c.Close()
			t.Fatal("explained with max_explained_per_second 0")
		}
		if !strings.Contains(err.Error(), "unrecognized name") {
			t.Errorf("handshake: %v, want the unrecognized_name alert", err)
		}
	})
}
