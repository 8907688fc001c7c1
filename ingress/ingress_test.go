package ingress_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/routing"
	"github.com/neo4j/private-ingress/tlsconfig"
)

func twoInstances(a, b *backend) string {
	return fmt.Sprintf(`
instances:
  - dbid: abcd1234
    orch: "0000"
    public: true
    backends: {bolt: [%[1]q], https: [%[1]q], http: [%[1]q], arrow: [%[1]q]}
  - dbid: ef567890
    orch: "0000"
    public: true
    backends: {bolt: [%[2]q], https: [%[2]q], http: [%[2]q], arrow: [%[2]q]}
  - dbid: private1
    orch: "0000"
    public: false
    endpoints: [vpce-0a1b2c3d4e5f6a7b8]
    backends: {bolt: [%[2]q]}
`, a.addr(), b.addr())
}

func TestEachDBIDReachesItsOwnBackend(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	e := startEnv(t, twoInstances(a, b))
	for _, svc := range []string{"https", "bolt", "http", "arrow"} {
		for _, tc := range []struct{ sni, want string }{
			{fqdn("abcd1234"), "hello a"},
			{fqdn("ef567890"), "hello b"},
			{strings.ToUpper(fqdn("abcd1234")), "hello a"}, // names are case-insensitive
		} {
			t.Run(svc+"/"+tc.sni, func(t *testing.T) {
				c, r, got := e.mustGreet(svc, tc.sni)
				defer c.Close()
				if got != tc.want {
					t.Fatalf("greeting %q, want %q", got, tc.want)
				}
				fmt.Fprintf(c, "ping\n")
				if echo, _ := r.ReadString('\n'); echo != "ping\n" {
					t.Fatalf("echo %q", echo)
				}
			})
		}
	}
	c, _, _ := e.mustGreet("bolt", fqdn("abcd1234"))
	c.Close()
	e.waitCount("bolt", "ok", 4)
}

func TestRefusedInTheHandshakeWithoutDialling(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	e := startEnv(t, twoInstances(a, b), withAlerts)
	for _, tc := range []struct {
		name, sni, result string
	}{
		{"unknown dbid", fqdn("nosuchdb"), "unknown_dbid"},
		{"wrong orch", "abcd1234.production-orch-9999.neo4j.io", "unknown_host"},
		{"other domain", "abcd1234.production-orch-0000.example.com", "unknown_host"},
		{"extra label", "x.abcd1234.production-orch-0000.neo4j.io", "unknown_host"},
		{"no SNI", "", "no_sni"},
		{"private instance without endpoint", fqdn("private1"), "denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.count("bolt", tc.result)
			c, err := e.dial("bolt", tc.sni, func(c *tls.Config) {
				if tc.sni == "" {
					c.InsecureSkipVerify = true // a client without SNI cannot verify a name
				}
			})
			if err == nil {
				c.Close()
				t.Fatal("handshake succeeded, want a refusal")
			}
			// Go's server answers an unknown name with unrecognized_name
			// (112), which clients show as "unrecognized name".
			if !strings.Contains(err.Error(), "unrecognized name") {
				t.Errorf("error %q, want the unrecognized_name alert", err)
			}
			e.waitCount("bolt", tc.result, before+1)
		})
	}
	if n := a.accepted.Load() + b.accepted.Load(); n != 0 {
		t.Errorf("backends saw %d connections, want 0", n)
	}
	var reasons int
	for _, entry := range e.logs.FilterMessage("connection").All() {
		if r, ok := entry.ContextMap()["reason"].(string); ok && r != "" {
			reasons++
		}
	}
	if reasons < 6 {
		t.Errorf("%d refusal log lines carry a reason, want 6", reasons)
	}
}

func TestTLSPolicy(t *testing.T) {
	a := startBackend(t, "a")
	e := startEnv(t, twoInstances(a, a))
	sni := fqdn("abcd1234")
	accept := []struct {
		name  string
		mod   func(*tls.Config)
		suite uint16
	}{
		{"TLS 1.3", func(c *tls.Config) { c.MinVersion = tls.VersionTLS13 }, tls.TLS_AES_128_GCM_SHA256},
		{"ECDHE-RSA-AES128-GCM-SHA256", tls12(tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256), tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
		{"ECDHE-RSA-AES256-GCM-SHA384", tls12(tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384), tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384},
		{"ECDHE-RSA-CHACHA20-POLY1305", tls12(tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256), tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256},
	}
	for _, tc := range accept {
		t.Run("accepts "+tc.name, func(t *testing.T) {
			c, err := e.dial("bolt", sni, tc.mod)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := c.ConnectionState().CipherSuite; tc.name != "TLS 1.3" && got != tc.suite {
				t.Errorf("suite %s, want %s", tls.CipherSuiteName(got), tls.CipherSuiteName(tc.suite))
			}
		})
	}
	refuse := []struct {
		name string
		mod  func(*tls.Config)
	}{
		{"TLS 1.1", func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 }},
		{"ECDHE-RSA-AES128-SHA256 (CBC)", tls12(tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256)},
		{"ECDHE-RSA-AES128-SHA (CBC)", tls12(tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA)},
		{"AES128-GCM-SHA256 (no forward secrecy)", tls12(tls.TLS_RSA_WITH_AES_128_GCM_SHA256)},
		{"ECDHE-RSA-3DES", tls12(tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA)},
	}
	for _, tc := range refuse {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			c, err := e.dial("bolt", sni, tc.mod)
			if err == nil {
				c.Close()
				t.Fatalf("handshake succeeded with %s", tls.CipherSuiteName(c.ConnectionState().CipherSuite))
			}
		})
	}
}

func tls12(suite uint16) func(*tls.Config) {
	return func(c *tls.Config) {
		c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS12
		c.CipherSuites = []uint16{suite}
	}
}

func TestALPNPerService(t *testing.T) {
	a := startBackend(t, "a")
	e := startEnv(t, twoInstances(a, a))
	for _, tc := range []struct {
		service string
		offer   []string
		want    string
	}{
		{"arrow", []string{"h2"}, "h2"},             // gRPC offers h2 only and insists on it
		{"https", []string{"h2", "http/1.1"}, "h2"}, // curl's default offer
		{"https", []string{"http/1.1"}, "http/1.1"}, // an HTTP/1.1-only client
		{"bolt", []string{"h2", "http/1.1"}, ""},    // bolt answers no ALPN
		{"bolt", nil, ""},                           // drivers offer none
		{"http", []string{"acme-tls/1", "http/1.1"}, "http/1.1"},
	} {
		t.Run(tc.service+"/"+strings.Join(tc.offer, ","), func(t *testing.T) {
			c, err := e.dial(tc.service, fqdn("abcd1234"), func(c *tls.Config) { c.NextProtos = tc.offer })
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := c.ConnectionState().NegotiatedProtocol; got != tc.want {
				t.Errorf("negotiated %q, want %q", got, tc.want)
			}
		})
	}
}

func TestHalfCloseIsPropagated(t *testing.T) {
	a := startBackend(t, "a")
	e := startEnv(t, twoInstances(a, a))
	c, r, _ := e.mustGreet("bolt", fqdn("abcd1234"))
	defer c.Close()
	fmt.Fprintf(c, "last words\n")
	// The client is done sending: close_notify, then a TCP FIN.
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.NetConn().(*net.TCPConn).CloseWrite()
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading after half-close: %v", err)
	}
	if got, want := string(rest), "last words\nbye a\n"; got != want {
		t.Fatalf("after half-close read %q, want %q", got, want)
	}
	e.waitCount("bolt", "ok", 1)
}

func TestFailoverToTheNextBackend(t *testing.T) {
	live := startBackend(t, "live")
	dead := closedAddr(t)
	e := startEnv(t, fmt.Sprintf(`
instances:
  - {dbid: abcd1234, orch: "0000", public: true, backends: {bolt: [%q, %q]}}
`, dead, live.addr()))
	for i := range 4 {
		c, _, got := e.mustGreet("bolt", fqdn("abcd1234"))
		c.Close()
		if got != "hello live" {
			t.Fatalf("connection %d: greeting %q", i, got)
		}
	}
	// The dead backend failed once, then cooled down: later connections
	// went straight to the live one.
	if n := counterValue(t, e.reg, "ingress_backend_dial_errors_total", nil); n != 1 {
		t.Errorf("dial errors %v, want 1 (the dead backend is skipped while cooling down)", n)
	}
	e.waitCount("bolt", "ok", 4)
}

// TestAllBackendsDown: with refusals alerted, a connection whose instance
// does not answer is closed (explained, it hears why: explain_test.go).
func TestAllBackendsDown(t *testing.T) {
	e := startEnv(t, fmt.Sprintf(`
instances:
  - {dbid: abcd1234, orch: "0000", public: true, backends: {bolt: [%q]}}
`, closedAddr(t)), withAlerts)
	c, err := e.dial("bolt", fqdn("abcd1234"))
	if err != nil {
		t.Fatal(err) // the handshake succeeds; the backend is dialled after it
	}
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from a connection with no backend", n)
	}
	c.Close()
	e.waitCount("bolt", "backend_unavailable", 1)
	// No backend for this service at all.
	c, err = e.dial("https", fqdn("abcd1234"))
	if err != nil {
		t.Fatal(err)
	}
	c.Read(make([]byte, 1))
	c.Close()
	e.waitCount("https", "backend_unavailable", 1)
}

func TestReloadDoesNotCutOpenConnections(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	e := startEnv(t, twoInstances(a, b), withAlerts)
	c, r, _ := e.mustGreet("bolt", fqdn("abcd1234"))
	defer c.Close()

	// A new table without abcd1234 replaces the old one.
	table, err := routing.Parse("routes.yaml", []byte(fmt.Sprintf(`
instances:
  - {dbid: ef567890, orch: "0000", public: true, backends: {bolt: [%q]}}
`, b.addr())), ns, e.routes.Load())
	if err != nil {
		t.Fatal(err)
	}
	e.routes.Store(table)

	fmt.Fprintf(c, "still there?\n")
	if line, err := r.ReadString('\n'); err != nil || line != "still there?\n" {
		t.Fatalf("open connection after reload: %q, %v", line, err)
	}
	if _, err := e.dial("bolt", fqdn("abcd1234")); err == nil {
		t.Fatal("a new connection to the removed dbid was accepted")
	}
	c2, _, got := e.mustGreet("bolt", fqdn("ef567890"))
	c2.Close()
	if got != "hello b" {
		t.Fatalf("greeting %q", got)
	}
}

func TestDrainWaitsForOpenConnections(t *testing.T) {
	a := startBackend(t, "a")
	e := startEnv(t, twoInstances(a, a))
	c, r, _ := e.mustGreet("bolt", fqdn("abcd1234"))
	addr := e.addr("bolt")

	shut := make(chan error, 1)
	go func() { shut <- e.shutdown(testenv.WaitTimeout) }()
	testenv.WaitFor(t, "not ready", func() bool { return !e.srv.Ready() })
	// New connections are refused at once...
	testenv.WaitFor(t, "listener closed", func() bool {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			nc.Close()
		}
		return err != nil
	})
	// ...while the open one keeps working until its client is done.
	fmt.Fprintf(c, "during drain\n")
	if line, err := r.ReadString('\n'); err != nil || line != "during drain\n" {
		t.Fatalf("open connection during drain: %q, %v", line, err)
	}
	// Shutdown is still waiting: the echo above came back through a
	// connection it drains.
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a connection open", err)
	default:
	}
	c.Close()
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestDrainTimeoutClosesWhatIsLeft(t *testing.T) {
	a := startBackend(t, "a")
	e := startEnv(t, twoInstances(a, a), func(c *envSetup) { c.Timeouts.Handshake = time.Hour })
	c, r, _ := e.mustGreet("bolt", fqdn("abcd1234"))
	defer c.Close()
	// And one in its handshake, which has sent nothing yet.
	silent, err := net.Dial("tcp", e.addr("bolt"))
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	testenv.WaitFor(t, "both connections to be accepted", func() bool { return e.srv.Active() == 2 })
	err = e.shutdown(200 * time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want the drain deadline", err)
	}
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("connection still open after the drain timeout")
	}
	silent.SetReadDeadline(time.Now().Add(testenv.WaitTimeout))
	if _, err := silent.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection in its handshake after the drain timeout: %v, want it closed", err)
	}
	if n := e.srv.Active(); n != 0 {
		t.Fatalf("%d connections still active", n)
	}
}

func TestMaxConnections(t *testing.T) {
	a := startBackend(t, "a")
	e := startEnv(t, twoInstances(a, a), func(c *envSetup) { c.Limits.MaxConnections = 1 })
	c, _, _ := e.mustGreet("bolt", fqdn("abcd1234"))
	if _, err := e.dial("bolt", fqdn("abcd1234")); err == nil {
		t.Fatal("second connection accepted over max_connections=1")
	}
	e.waitCount("bolt", "limit", 1)
	c.Close()
	testenv.WaitFor(t, "the first connection to finish", func() bool { return e.srv.Active() == 0 })
	c, _, _ = e.mustGreet("bolt", fqdn("abcd1234"))
	c.Close()
}

func TestIdleTimeout(t *testing.T) {
	a := startBackend(t, "a")
	const idle = time.Second
	e := startEnv(t, twoInstances(a, a), func(c *envSetup) { c.Timeouts.Idle = idle })
	c, r, _ := e.mustGreet("bolt", fqdn("abcd1234"))
	defer c.Close()
	// Traffic keeps it open past the timeout: echoes back to back, each
	// well within it, for half as long again.
	start := time.Now()
	for time.Since(start) < idle*3/2 {
		fmt.Fprintf(c, "tick\n")
		if line, err := r.ReadString('\n'); err != nil || line != "tick\n" {
			t.Fatalf("active connection after %v: %q, %v", time.Since(start).Round(time.Millisecond), line, err)
		}
	}
	// ...silence closes it (well before the connection's own deadline).
	if _, err := r.ReadString('\n'); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("idle connection not closed by the ingress: %v", err)
	}
}

func TestBareConnectIsNotAWarning(t *testing.T) {
	a := startBackend(t, "a")
	e := startEnv(t, twoInstances(a, a))
	// What `nc -vz host port` does: connect, then close.
	nc, err := net.Dial("tcp", e.addr("bolt"))
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	e.waitCount("bolt", "probe", 1)
	for _, entry := range e.logs.FilterMessage("connection").All() {
		if entry.Level > zapcore.DebugLevel {
			t.Errorf("bare connect logged at %s: %v", entry.Level, entry.ContextMap())
		}
	}
}

func TestConcurrentConnections(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	e := startEnv(t, twoInstances(a, b))
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			db, want := "abcd1234", "hello a"
			if i%2 == 1 {
				db, want = "ef567890", "hello b"
			}
			c, err := e.dial("bolt", fqdn(db))
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			buf := make([]byte, len(want)+1)
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != want+"\n" {
				t.Errorf("%s: %q, %v", db, buf, err)
			}
			payload := strings.Repeat("x", 100_000) + "\n"
			go fmt.Fprint(c, payload)
			got := make([]byte, len(payload))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != payload {
				t.Errorf("%s: echo of 100 kB broken: %v", db, err)
			}
		})
	}
	wg.Wait()
	e.waitCount("bolt", "ok", 50)
	if got := counterValue(t, e.reg, "ingress_bytes_total", map[string]string{"service": "bolt", "direction": "in"}); got != 50*100_001 {
		t.Errorf("bytes in %v, want %v", got, 50*100_001)
	}
}

// TestSessionResumption: with managed ticket keys, a second connection
// resumes its TLS session, and is still routed by its server name.
func TestSessionResumption(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	keys, err := tlsconfig.NewTicketKeys(tlsconfig.SessionTickets{})
	if err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, twoInstances(a, b), func(s *envSetup) { s.tickets = keys })
	cache := tls.NewLRUClientSessionCache(8)
	for i, want := range []struct {
		resumed  bool
		greeting string
	}{{false, "hello a"}, {true, "hello a"}} {
		c, err := e.dial("bolt", fqdn("abcd1234"), func(c *tls.Config) { c.ClientSessionCache = cache })
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n') // also takes in the TLS 1.3 ticket
		c.Close()
		if err != nil || strings.TrimSpace(line) != want.greeting || c.ConnectionState().DidResume != want.resumed {
			t.Errorf("connection %d: greeting %q (%v), resumed %v; want %q, resumed %v",
				i+1, line, err, c.ConnectionState().DidResume, want.greeting, want.resumed)
		}
	}
}

// TestPanicEndsOnlyItsConnection: a panic in a connection's goroutine (here
// a dial function that panics for one backend) is recovered, logged and
// counted; other connections are served as before.
func TestPanicEndsOnlyItsConnection(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	var d net.Dialer
	e := startEnv(t, twoInstances(a, b), func(s *envSetup) {
		s.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == a.addr() {
				panic("injected dial panic")
			}
			return d.DialContext(ctx, network, addr)
		}
	})
	c, err := e.dial("bolt", fqdn("abcd1234"))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := io.Copy(io.Discard, c); n != 0 {
		t.Errorf("read %d bytes from a connection whose handler panicked", n)
	}
	c.Close()
	testenv.WaitFor(t, "ingress_panics_total to reach 1", func() bool {
		return counterValue(t, e.reg, "ingress_panics_total", nil) == 1
	})
	if len(e.logs.FilterMessage("panic in connection handler").All()) != 1 {
		t.Error("the panic was not logged")
	}
	c2, _, got := e.mustGreet("bolt", fqdn("ef567890"))
	c2.Close()
	if got != "hello b" {
		t.Errorf("after the panic: %q", got)
	}
}
