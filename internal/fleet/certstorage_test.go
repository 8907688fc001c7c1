package fleet_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap/zaptest"

	"github.com/neo4j/private-ingress/dnsstub"
	"github.com/neo4j/private-ingress/internal/fleet"
	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/internal/testenv/etcdtest"
	"github.com/neo4j/private-ingress/internal/testenv/pebbletest"
	"github.com/neo4j/private-ingress/routing"
	"github.com/neo4j/private-ingress/tlsconfig"

	"github.com/neo4j/private-ingress/internal/testenv/loopback"
)

func TestCertStorage(t *testing.T) {
	etcd := etcdtest.Start(t)
	cli := etcd.Client()
	defer cli.Close()
	ctx := context.Background()
	s := &fleet.CertStorage{Client: cli, Prefix: "/ingress/certmagic/test/"}
	if _, err := s.Load(ctx, "certificates/a/a.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing key: %v, want fs.ErrNotExist", err)
	}
	stored := time.Now()
	for _, k := range []string{"certificates/a/a.crt", "certificates/a/a.key", "certificates/b/b.crt", "acme/account.json"} {
		if err := s.Store(ctx, k, []byte("value of "+k)); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := s.Load(ctx, "certificates/a/a.key"); err != nil || string(v) != "value of certificates/a/a.key" {
		t.Fatalf("Load: %q, %v", v, err)
	}
	if list, _ := s.List(ctx, "certificates", false); !slices.Equal(list, []string{"certificates/a", "certificates/b"}) {
		t.Errorf("List(certificates) = %v", list)
	}
	if list, _ := s.List(ctx, "certificates", true); len(list) != 3 {
		t.Errorf("List(certificates, recursive) = %v", list)
	}
	// The modification time is the wall clock's at Store.
	if info, err := s.Stat(ctx, "certificates/a/a.crt"); err != nil || !info.IsTerminal || info.Size != int64(len("value of certificates/a/a.crt")) ||
		info.Modified.Before(stored) || info.Modified.After(time.Now()) {
		t.Errorf("Stat(file) = %+v, %v", info, err)
	}
	if info, err := s.Stat(ctx, "certificates/a"); err != nil || info.IsTerminal {
		t.Errorf("Stat(dir) = %+v, %v", info, err)
	}
	if !s.Exists(ctx, "certificates") || s.Exists(ctx, "nothing") {
		t.Error("Exists")
	}
	if err := s.Delete(ctx, "certificates/a"); err != nil || s.Exists(ctx, "certificates/a/a.crt") {
		t.Errorf("Delete(dir): %v", err)
	}

	// Locks exclude another process's storage until unlocked.
	other := &fleet.CertStorage{Client: etcd.Client(), Prefix: s.Prefix}
	defer other.Client.Close()
	if err := s.Lock(ctx, "issue_cert_x"); err != nil {
		t.Fatal(err)
	}
	// Held: a second holder waits until it gives up (how long it tries
	// only bounds how much chance it gets to wrongly succeed).
	lctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if err := other.Lock(lctx, "issue_cert_x"); err == nil {
		t.Fatal("a second holder got the lock")
	}
	cancel()
	s.Unlock(ctx, "issue_cert_x")
	if err := other.Lock(ctx, "issue_cert_x"); err != nil {
		t.Fatalf("the lock after unlocking: %v", err)
	}
	other.Unlock(ctx, "issue_cert_x")
}

// TestReplicasShareACMECertificates: two stores (replicas) on one etcd
// storage manage the same wildcard; they end up serving the same
// certificate, ordered once.
func TestReplicasShareACMECertificates(t *testing.T) {
	etcd := etcdtest.Start(t)
	stub := dnsstub.New(dnsstub.Options{
		Config:    dnsstub.Config{Address: "127.0.0.1:0", AnswerIPv4: []string{"127.0.0.1"}, TTL: 60},
		Namespace: routing.Namespace{Domain: "neo4j.io", Orchestras: []string{"0000"}},
	})
	if err := stub.Listen(context.Background()); err != nil {
		t.Fatal(err)
	}
	go stub.Serve()
	defer stub.Shutdown(context.Background())
	pebble := pebbletest.Start(t, stub.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var addrs []string
	var stores []*tlsconfig.Store
	for range 2 {
		cli := etcd.Client()
		t.Cleanup(func() { cli.Close() })
		store := tlsconfig.NewStore(zaptest.NewLogger(t), nil)
		t.Cleanup(store.Close)
		err := store.ManageACME(ctx, tlsconfig.ACME{Directory: pebble.Directory, CARoot: pebble.CAFile},
			tlsconfig.ACMEOptions{Names: []string{"*.production-orch-0000.neo4j.io"}, Publisher: stub.TXT(), Resolver: stub.Addr(),
				Storage: func(keyType string) certmagic.Storage {
					return &fleet.CertStorage{Client: cli, Prefix: "/ingress/certmagic/" + keyType + "/"}
				}})
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, store)
		addrs = append(addrs, loopback.EchoOn(t, tls.NewListener(loopback.Listen(t), store.ServerConfig(nil))))
	}
	// Wait in the process, where a look costs no handshake, until both
	// replicas hold the same two certificates (one orders them, the other
	// finds them in the shared storage): at most a minute and a half, as
	// certmagic retries a failed attempt about a minute later.
	const name = "abcd1234.production-orch-0000.neo4j.io"
	var held [2][2]string
	same := testenv.Poll(90*time.Second, func() bool {
		for i, s := range stores {
			held[i] = [2]string{leafSerial(s, name, tls13Hello), leafSerial(s, name, rsaOnlyHello)}
		}
		return held[0][0] != "" && held[0][1] != "" && held[0] == held[1] && held[0][0] != held[0][1]
	})
	if !same {
		t.Fatalf("the replicas do not hold the same certificates: ECDSA %q %q, RSA %q %q", held[0][0], held[1][0], held[0][1], held[1][1])
	}
	// What they serve chains to Pebble's root.
	roots := pebble.Roots(t)
	serial := func(addr string, mod func(*tls.Config)) string {
		cfg := &tls.Config{ServerName: name, RootCAs: roots}
		if mod != nil {
			mod(cfg)
		}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: testenv.WaitTimeout}, "tcp", addr, cfg)
		if err != nil {
			t.Errorf("handshake with %s: %v", addr, err)
			return ""
		}
		defer c.Close()
		leaf := c.ConnectionState().PeerCertificates[0]
		return leaf.SerialNumber.String() + "/" + leaf.PublicKeyAlgorithm.String()
	}
	rsaOnly := func(c *tls.Config) {
		c.MaxVersion = tls.VersionTLS12
		c.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	}
	for i, addr := range addrs {
		if got := [2]string{serial(addr, nil), serial(addr, rsaOnly)}; got != held[0] {
			t.Errorf("replica %d serves %q, want %q", i, got, held[0])
		}
	}
	t.Logf("both replicas serve ECDSA %s and RSA %s", held[0][0], held[0][1])
}

// tls13Hello and rsaOnlyHello are what a TLS 1.3 client and a TLS 1.2
// client offering only ECDHE_RSA suites send, as far as picking a
// certificate goes.
var (
	tls13Hello = tls.ClientHelloInfo{
		SupportedVersions: []uint16{tls.VersionTLS13},
		CipherSuites:      []uint16{tls.TLS_AES_128_GCM_SHA256},
		SupportedCurves:   []tls.CurveID{tls.X25519, tls.CurveP256},
		SignatureSchemes:  []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256, tls.PSSWithSHA256},
	}
	rsaOnlyHello = tls.ClientHelloInfo{
		SupportedVersions: []uint16{tls.VersionTLS12},
		CipherSuites:      []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
		SupportedCurves:   []tls.CurveID{tls.X25519, tls.CurveP256},
		SupportedPoints:   []uint8{0},
		SignatureSchemes:  []tls.SignatureScheme{tls.PSSWithSHA256, tls.PKCS1WithSHA256},
	}
)

// leafSerial is the serial and key algorithm of the leaf s picks for name
// and hello, or "" if it has none the client supports.
func leafSerial(s *tlsconfig.Store, name string, hello tls.ClientHelloInfo) string {
	hello.ServerName, hello.Conn = name, helloConn{}
	c, err := s.GetCertificate(&hello)
	if err != nil || c == nil || len(c.Certificate) == 0 || hello.SupportsCertificate(c) != nil {
		return ""
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return ""
	}
	return leaf.SerialNumber.String() + "/" + leaf.PublicKeyAlgorithm.String()
}

// helloConn stands for the connection a ClientHelloInfo comes from:
// certmagic logs its addresses.
type helloConn struct{ net.Conn }

func (helloConn) LocalAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443} }
func (helloConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000} }
