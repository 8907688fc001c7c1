//go:build demoflight

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j/config"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/neo4j/private-ingress/internal/demo"
	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/tlsconfig"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	file string // its certificate, PEM
}

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{key: key, pool: x509.NewCertPool(), file: filepath.Join(dir, name+".pem")}
	ca.cert, _ = x509.ParseCertificate(der)
	ca.pool.AddCert(ca.cert)
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

// issue signs a leaf for dns names, for servers or for clients; with
// files, it also writes it and its key beside the CA.
func (ca *testCA) issue(t *testing.T, name string, usage x509.ExtKeyUsage, dns ...string) (cert tls.Certificate, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name}, DNSNames: dns,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(ca.file)
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, certFile, keyFile
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsFront stands for an instance that requires TLS: it terminates TLS
// with cfg and passes the plaintext to a fake instance. It records the
// ALPN protocol each connection negotiated, and counts the bytes that
// reached the instance.
type tlsFront struct {
	addr    string
	mu      sync.Mutex
	alpn    []string
	in      atomic.Int64
	resumed atomic.Int32 // handshakes that resumed a session
}

func startTLSFront(t *testing.T, target string, cfg *tls.Config) *tlsFront {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &tlsFront{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { f.serve(tls.Server(c, cfg), target) })
		}
	})
	return f
}

func (f *tlsFront) serve(tc *tls.Conn, target string) {
	defer tc.Close()
	if err := tc.Handshake(); err != nil {
		return // the client's certificate, or the ingress's verdict on ours
	}
	state := tc.ConnectionState()
	if state.DidResume {
		f.resumed.Add(1)
	}
	f.mu.Lock()
	f.alpn = append(f.alpn, state.NegotiatedProtocol)
	f.mu.Unlock()
	// A resolver of its own: the Go driver subtest swaps net.DefaultResolver.
	backend, err := (&net.Dialer{Resolver: &net.Resolver{}}).Dial("tcp", target)
	if err != nil {
		return
	}
	defer backend.Close()
	go func() {
		io.Copy(tc, backend)
		tc.CloseWrite()
	}()
	n, _ := io.Copy(backend, tc)
	f.in.Add(n)
}

// protocols returns the ALPN protocols the front's connections negotiated.
func (f *tlsFront) protocols() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.alpn)
}

// backendTLSSetup is an ingress whose backend leg is TLS: instances'
// certificates come from a second CA, and they require a client
// certificate from a third.
type backendTLSSetup struct {
	addrs     map[string]string
	roots     *x509.CertPool // the ingress's own CA
	ingressCA string
	logs      *lockedBuffer
	front     map[string]*tlsFront // by role: "http", "bolt", "arrow", ...
}

func startBackendTLS(t *testing.T) *backendTLSSetup {
	t.Helper()
	bin := ingressBin.Path(t)
	dir := t.TempDir()
	files, err := tlsconfig.WriteDevCerts(dir, []string{"*.production-orch-0000.neo4j.io"})
	if err != nil {
		t.Fatal(err)
	}
	backendCA, clientCA, strangerCA := newTestCA(t, dir, "backend-ca"), newTestCA(t, dir, "client-ca"), newTestCA(t, dir, "stranger-ca")
	backendCert, _, _ := backendCA.issue(t, "instance", x509.ExtKeyUsageServerAuth, "instance.internal")
	strangerCert, _, _ := strangerCA.issue(t, "impostor", x509.ExtKeyUsageServerAuth, "instance.internal")
	_, clientCert, clientKey := clientCA.issue(t, "ingress-client", x509.ExtKeyUsageClientAuth)

	instances, err := demo.Start([]string{"abcd1234"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(instances.Close)
	inst := instances.List[0]
	server := func(cert tls.Certificate, clientCAs *x509.CertPool, maxVersion uint16) *tls.Config {
		return &tls.Config{
			Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"},
			ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs, MaxVersion: maxVersion,
		}
	}
	s := &backendTLSSetup{roots: x509.NewCertPool(), ingressCA: files.CA, front: map[string]*tlsFront{
		"http":      startTLSFront(t, inst.HTTP, server(backendCert, clientCA.pool, 0)),
		"bolt":      startTLSFront(t, inst.Bolt, server(backendCert, clientCA.pool, 0)),
		"arrow":     startTLSFront(t, inst.Arrow, server(backendCert, clientCA.pool, 0)),
		"impostor":  startTLSFront(t, inst.HTTP, server(strangerCert, clientCA.pool, 0)),
		"mtls-1.2":  startTLSFront(t, inst.HTTP, server(backendCert, strangerCA.pool, tls.VersionTLS12)),
		"mtls-1.3":  startTLSFront(t, inst.HTTP, server(backendCert, strangerCA.pool, 0)),
		"fallback2": startTLSFront(t, inst.HTTP, server(backendCert, clientCA.pool, 0)),
	}}
	s.roots.AppendCertsFromPEM(must(os.ReadFile(files.CA)))
	fr := func(name string) string { return s.front[name].addr }
	routes := fmt.Sprintf(`instances:
  - {dbid: abcd1234, orch: "0000", public: true, backends: {https: [%q], http: [%q], bolt: [%q], arrow: [%q]}}
  - {dbid: impostor, orch: "0000", public: true, backends: {https: [%q]}}
  - {dbid: fallback, orch: "0000", public: true, backends: {https: [%q, %q]}}
  - {dbid: mtls12, orch: "0000", public: true, backends: {https: [%q]}}
  - {dbid: mtls13, orch: "0000", public: true, backends: {https: [%q]}}
`, fr("http"), fr("http"), fr("bolt"), fr("arrow"), fr("impostor"), fr("impostor"), fr("fallback2"), fr("mtls-1.2"), fr("mtls-1.3"))
	cfg := fmt.Sprintf(`orchestras: ["0000"]
listeners:
  - {service: https, address: "127.0.0.1:0"}
  - {service: bolt, address: "127.0.0.1:0"}
  - {service: arrow, address: "127.0.0.1:0"}
tls: {certificates: [{cert: %q, key: %q}]}
routes: {file: routes.yaml}
backend:
  tls: {enabled: true, ca: %q, server_name: instance.internal, client_cert: %q, client_key: %q}
admin: {address: "127.0.0.1:0"}
dns: {address: "127.0.0.1:0", answer_ipv4: ["127.0.0.1"]}
log: {format: json}
`, files.Cert, files.Key, backendCA.file, clientCert, clientKey)
	writeRoutes(t, filepath.Join(dir, "routes.yaml"), routes)
	cfgPath := filepath.Join(dir, "ingress.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	_, s.logs, _ = runBinary(t, bin, "serve", "-config", cfgPath)
	s.addrs = startedAddrs(t, s.logs.String)
	instances.Advertise(s.addrs["bolt"])
	return s
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// curl fetches / from dbid through the https listener with curl's flags.
func (s *backendTLSSetup) curl(dbid string, flags ...string) (string, error) {
	host := demo.FQDN(dbid)
	_, port, _ := net.SplitHostPort(s.addrs["https"])
	args := append([]string{"-sS", "--max-time", "30", "--cacert", s.ingressCA, "--resolve", host + ":" + port + ":127.0.0.1"}, flags...)
	out, err := exec.Command("curl", append(args, "https://"+host+":"+port+"/")...).CombinedOutput()
	return string(out), err
}

// TestTLSToTheInstance: with backend.tls, curl over h2 and HTTP/1.1, an
// Arrow Flight client and the Neo4j Go driver reach instances that
// require TLS with a certificate from their own CA and a client
// certificate from a third; the instance is offered the protocol the
// client negotiated. A certificate that does not verify is a failed dial.
func TestTLSToTheInstance(t *testing.T) {
	testenv.Command(t, "curl")
	s := startBackendTLS(t)

	t.Run("curl", func(t *testing.T) {
		for _, c := range []struct{ flag, proto, alpn string }{
			{"--http2", "HTTP/2.0", "h2"},
			{"--http1.1", "HTTP/1.1", "http/1.1"},
		} {
			out, err := s.curl("abcd1234", c.flag)
			if err != nil || !strings.Contains(out, `"instance":"abcd1234"`) || !strings.Contains(out, `"protocol":"`+c.proto+`"`) {
				t.Fatalf("curl %s: %v\n%s", c.flag, err, out)
			}
			if got := s.front["http"].protocols(); got[len(got)-1] != c.alpn {
				t.Errorf("curl %s: the instance was offered ALPN %q, want %q", c.flag, got[len(got)-1], c.alpn)
			}
		}
		// The ingress keeps the instances' session tickets: a storm of
		// reconnections costs resumed handshakes on the backend leg.
		if n := s.front["http"].resumed.Load(); n == 0 {
			t.Errorf("no backend handshake resumed a session")
		}
	})

	t.Run("flight", s.checkFlight)
	t.Run("go driver", s.checkGoDriver)

	t.Run("unverified certificate", func(t *testing.T) {
		out, _ := s.curl("impostor")
		if !strings.Contains(out, `"error":"database impostor is unavailable`) {
			t.Errorf("curl to an instance whose certificate does not verify: %s\nwant the 503 unavailable answer", out)
		}
		if s.front["impostor"].in.Load() != 0 {
			t.Errorf("the impostor received %d bytes", s.front["impostor"].in.Load())
		}
		testenv.WaitFor(t, "the failed verification in the log", func() bool {
			return strings.Contains(s.logs.String(), "certificate signed by unknown authority")
		})
		// Listed beside a good backend, it is a failed dial and the next is
		// tried: every request is answered.
		for i := range 4 {
			if out, err := s.curl("fallback"); err != nil || !strings.Contains(out, `"instance":"abcd1234"`) {
				t.Fatalf("request %d to an instance with a bad and a good backend: %v\n%s", i, err, out)
			}
		}
	})

	t.Run("client certificate refused", func(t *testing.T) {
		out, _ := s.curl("mtls12")
		if !strings.Contains(out, `"error":"database mtls12 is unavailable`) {
			t.Errorf("curl through a TLS 1.2 backend that refuses the client certificate: %s\nwant the 503 unavailable answer", out)
		}
		s.curl("mtls13") // TLS 1.3: refused after the handshake, at the first read
		for _, name := range []string{"mtls-1.2", "mtls-1.3"} {
			if n := s.front[name].in.Load(); n != 0 {
				t.Errorf("%s: the instance received %d bytes from a client it refused", name, n)
			}
		}
		testenv.WaitFor(t, "both refusals explained in the log", func() bool {
			return strings.Count(s.logs.String(), "the backend refused the ingress's client certificate") >= 2
		})
	})
}

// checkFlight lists flights through the ingress: the instance behind TLS
// answers, and was offered h2.
func (s *backendTLSSetup) checkFlight(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	creds := credentials.NewTLS(&tls.Config{RootCAs: s.roots, ServerName: demo.FQDN("abcd1234")})
	c, err := flight.NewClientWithMiddleware(s.addrs["arrow"], nil, nil, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	list, err := c.ListFlights(ctx, &flight.Criteria{})
	if err != nil {
		t.Fatalf("ListFlights: %v", err)
	}
	if first, err := list.Recv(); err != nil || first.FlightDescriptor.Path[0] != "abcd1234" {
		t.Fatalf("ListFlights: %v, %v", first, err)
	}
	if got := s.front["arrow"].protocols(); !slices.Equal(got, []string{"h2"}) {
		t.Errorf("the Flight instance was offered ALPN %q, want h2", got)
	}
}

// checkGoDriver runs a query with the Neo4j Go driver over neo4j+s://: the
// instance behind TLS answers, and was offered no ALPN, as Bolt has none.
func (s *backendTLSSetup) checkGoDriver(t *testing.T) {
	useDNSStub(t, s.addrs["dns"])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, port, _ := net.SplitHostPort(s.addrs["bolt"])
	driver, err := neo4j.NewDriverWithContext("neo4j+s://"+demo.FQDN("abcd1234")+":"+port, neo4j.BasicAuth("neo4j", "password", ""),
		func(c *config.Config) { c.TlsConfig = &tls.Config{RootCAs: s.roots} })
	if err != nil {
		t.Fatal(err)
	}
	defer driver.Close(ctx)
	got, err := neo4j.ExecuteQuery(ctx, driver, "RETURN instance() AS instance", nil, neo4j.EagerResultTransformer)
	if err != nil || got.Records[0].Values[0] != "abcd1234" {
		t.Fatalf("ExecuteQuery: %v, %v", got, err)
	}
	if p := s.front["bolt"].protocols(); len(p) == 0 || slices.ContainsFunc(p, func(a string) bool { return a != "" }) {
		t.Errorf("the Bolt instance was offered ALPN %q, want none", p)
	}
}
