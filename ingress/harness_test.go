package ingress_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/neo4j/private-ingress/ingress"
	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/internal/testenv/loopback"
	"github.com/neo4j/private-ingress/routing"
	"github.com/neo4j/private-ingress/tlsconfig"
)

var ns = routing.Namespace{Domain: "neo4j.io", Orchestras: []string{"0000"}}

// fqdn names a database in the served orch.
func fqdn(dbid string) string { return dbid + ".production-orch-0000.neo4j.io" }

// backend is a TCP server on loopback that greets with its name, then
// echoes; when the client half-closes it writes "bye <name>" and closes.
type backend struct {
	name     string
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
}

func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	return serveBackend(t, name, loopback.Listen(t))
}

// startTLSBackend is a backend behind TLS, with a dev certificate for
// name; option is what makes the ingress trust it.
func startTLSBackend(t *testing.T, name string) (*backend, envOption) {
	t.Helper()
	files, err := tlsconfig.WriteDevCerts(t.TempDir(), []string{name})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(files.CA)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	b := serveBackend(t, name, tls.NewListener(loopback.Listen(t), &tls.Config{Certificates: []tls.Certificate{cert}}))
	return b, func(s *envSetup) { s.backendTLS = &tls.Config{ServerName: name, RootCAs: roots} }
}

// serveBackend runs the backend's greeting and echo on ln.
func serveBackend(t *testing.T, name string, ln net.Listener) *backend {
	b := &backend{name: name, ln: ln}
	loopback.Serve(t, b.ln, func(c net.Conn) {
		b.accepted.Add(1)
		b.mu.Lock()
		b.conns = append(b.conns, c)
		b.mu.Unlock()
		defer c.Close()
		fmt.Fprintf(c, "hello %s\n", name)
		io.Copy(c, c)
		fmt.Fprintf(c, "bye %s\n", name)
	})
	return b
}

func (b *backend) addr() string { return b.ln.Addr().String() }

// closeAll closes the backend's connections, as an instance that stops.
func (b *backend) closeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		c.Close()
	}
}

// closedAddr returns a loopback address that refuses connections until
// the test ends.
func closedAddr(t *testing.T) string { return loopback.Refused(t) }

// env is a running ingress with its certificates, routes and observers.
type env struct {
	t       *testing.T
	srv     *ingress.Server
	routes  *routing.Holder
	reg     *prometheus.Registry
	logs    *observer.ObservedLogs
	ca      *x509.CertPool
	caFile  string
	done    chan error
	stopped bool
}

// envSetup is what options may change before the ingress starts.
type envSetup struct {
	ingress.Config
	certNames  []string // the dev leaf's names
	tickets    ingress.TicketKeySource
	dial       ingress.DialFunc
	backendTLS *tls.Config // the backend leg's TLS; nil: plain TCP
}

type envOption func(*envSetup)

// testPark is the harness's timeouts.park: a direction quiet for this
// long gives up its goroutine, so every test here has connections parked
// and woken, half-closed, timed out, revoked and drained while parked.
const testPark = 20 * time.Millisecond

// withAlerts ends refusals with a TLS alert instead of explaining them.
func withAlerts(s *envSetup) { s.Refusals = ingress.RefusalsAlert }

// startEnv runs an ingress on 127.0.0.1:0 for every service, with routesYAML.
func startEnv(t *testing.T, routesYAML string, opts ...envOption) *env {
	t.Helper()
	setup := envSetup{certNames: []string{"*.production-orch-0000.neo4j.io"}}
	for _, o := range opts {
		o(&setup)
	}
	dir := t.TempDir()
	files, err := tlsconfig.WriteDevCerts(dir, setup.certNames)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(files.CA)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)

	table, err := routing.Parse(filepath.Join(dir, "routes.yaml"), []byte(routesYAML), ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	var holder routing.Holder
	holder.Store(table)

	core, logs := observer.New(zap.DebugLevel)
	logger := zap.New(core)
	certs := tlsconfig.NewStore(logger, nil)
	t.Cleanup(certs.Close)
	if err := certs.SetFiles(context.Background(), []tlsconfig.CertFiles{{Cert: files.Cert, Key: files.Key}}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg := ingress.Config{
		Listeners: []ingress.ListenerConfig{
			{Service: "https", Address: "127.0.0.1:0", ALPN: []string{"h2", "http/1.1"}},
			{Service: "bolt", Address: "127.0.0.1:0"},
			{Service: "http", Address: "127.0.0.1:0", ALPN: []string{"h2", "http/1.1"}},
			{Service: "arrow", Address: "127.0.0.1:0", ALPN: []string{"h2"}},
		},
		// Failure bounds, far from anything a test waits for: tests of the
		// timeouts set their own.
		Timeouts: ingress.Timeouts{Handshake: testenv.WaitTimeout, Drain: 5 * time.Second, Park: testPark},
		Limits:   ingress.Limits{MaxConnections: 1000},
		Backend:  ingress.BackendConfig{DialTimeout: testenv.WaitTimeout},
	}
	setup.Config = cfg
	for _, o := range opts {
		o(&setup)
	}
	cfg = setup.Config
	srv, err := ingress.New(cfg, ingress.Options{
		Routes: &holder, Certs: certs, Logger: logger, Metrics: ingress.NewMetrics(reg),
		SessionTickets: setup.tickets, Dial: setup.dial, BackendTLS: setup.backendTLS,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(context.Background()); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, routes: &holder, reg: reg, logs: logs, ca: pool, caFile: files.CA, done: make(chan error, 1)}
	go func() { e.done <- srv.Serve() }()
	t.Cleanup(func() {
		if !e.stopped {
			e.shutdown(5 * time.Second)
		}
	})
	return e
}

func (e *env) shutdown(timeout time.Duration) error {
	e.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := e.srv.Shutdown(ctx)
	select {
	case <-e.done:
	case <-time.After(testenv.WaitTimeout):
		e.t.Error("Serve did not return after Shutdown")
	}
	return err
}

func (e *env) addr(service string) string { return e.srv.Addr(service).String() }

// dial opens a TLS connection to service with server name sni.
func (e *env) dial(service, sni string, mod ...func(*tls.Config)) (*tls.Conn, error) {
	cfg := &tls.Config{ServerName: sni, RootCAs: e.ca}
	for _, m := range mod {
		m(cfg)
	}
	d := &net.Dialer{Timeout: testenv.WaitTimeout}
	c, err := tls.DialWithDialer(d, "tcp", e.addr(service), cfg)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(testenv.WaitTimeout))
	return c, nil
}

// mustGreet dials and reads the backend's greeting line.
func (e *env) mustGreet(service, sni string) (*tls.Conn, *bufio.Reader, string) {
	e.t.Helper()
	c, err := e.dial(service, sni)
	if err != nil {
		e.t.Fatalf("dial %s %s: %v", service, sni, err)
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		e.t.Fatalf("reading greeting through %s for %s: %v", service, sni, err)
	}
	return c, r, strings.TrimSpace(line)
}

// count returns ingress_connections_total for service and result.
func (e *env) count(service, result string) float64 {
	return counterValue(e.t, e.reg, "ingress_connections_total", map[string]string{"service": service, "result": result})
}

// waitCount waits until the counter reaches want: connections are counted
// when their goroutine finishes, a little after the client sees the end.
func (e *env) waitCount(service, result string, want float64) {
	e.t.Helper()
	var got float64
	if !testenv.Poll(testenv.WaitTimeout, func() bool { got = e.count(service, result); return got == want }) {
		e.t.Fatalf("ingress_connections_total{service=%q,result=%q} = %v, want %v", service, result, got, want)
	}
}

func counterValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

var _ = testutil.ToFloat64
