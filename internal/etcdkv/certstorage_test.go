package etcdkv_test

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
	"github.com/neo4j/private-ingress/internal/etcdkv"
	"github.com/neo4j/private-ingress/internal/etcdtest"
	"github.com/neo4j/private-ingress/internal/pebbletest"
	"github.com/neo4j/private-ingress/routing"
	"github.com/neo4j/private-ingress/tlsconfig"

	"github.com/neo4j/private-ingress/internal/loopback"
)

func TestCertStorage(t *testing.T) {
	etcd := etcdtest.Start(t)
	cli := etcd.Client()
	defer cli.Close()
	ctx := context.Background()
	s := &etcdkv.CertStorage{Client: cli, Prefix: "/ingress/certmagic/test/"}
	if _, err := s.Load(ctx, "certificates/a/a.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing key: %v, want fs.ErrNotExist", err)
	}
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
	if info, err := s.Stat(ctx, "certificates/a/a.crt"); err != nil || !info.IsTerminal || info.Size != int64(len("value of certificates/a/a.crt")) || time.Since(info.Modified) > time.Minute {
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
	other := &etcdkv.CertStorage{Client: etcd.Client(), Prefix: s.Prefix}
	defer other.Client.Close()
	if err := s.Lock(ctx, "issue_cert_x"); err != nil {
		t.Fatal(err)
	}
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
	for range 2 {
		cli := etcd.Client()
		t.Cleanup(func() { cli.Close() })
		store := tlsconfig.NewStore(zaptest.NewLogger(t), nil)
		t.Cleanup(store.Close)
		err := store.ManageACME(ctx, tlsconfig.ACME{Directory: pebble.Directory, CARoot: pebble.CAFile},
			tlsconfig.ACMEOptions{Names: []string{"*.production-orch-0000.neo4j.io"}, Publisher: stub.TXT(), Resolver: stub.Addr(),
				Storage: func(keyType string) certmagic.Storage {
					return &etcdkv.CertStorage{Client: cli, Prefix: "/ingress/certmagic/" + keyType + "/"}
				}})
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, loopback.EchoOn(t, tls.NewListener(loopback.Listen(t), store.ServerConfig(nil))))
	}
	roots := pebble.Roots(t)
	serial := func(addr string, mod func(*tls.Config)) string {
		cfg := &tls.Config{ServerName: "abcd1234.production-orch-0000.neo4j.io", RootCAs: roots}
		if mod != nil {
			mod(cfg)
		}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, cfg)
		if err != nil {
			return ""
		}
		defer c.Close()
		leaf := c.ConnectionState().PeerCertificates[0]
		return leaf.SerialNumber.String() + "/" + x509.PublicKeyAlgorithm(leaf.PublicKeyAlgorithm).String()
	}
	rsaOnly := func(c *tls.Config) {
		c.MaxVersion = tls.VersionTLS12
		c.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		a13, b13, a12, b12 := serial(addrs[0], nil), serial(addrs[1], nil), serial(addrs[0], rsaOnly), serial(addrs[1], rsaOnly)
		if a13 != "" && a13 == b13 && a12 != "" && a12 == b12 && a13 != a12 {
			t.Logf("both replicas serve ECDSA %s and RSA %s", a13, a12)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replicas do not serve the same certificates: ECDSA %q %q, RSA %q %q", a13, b13, a12, b12)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
