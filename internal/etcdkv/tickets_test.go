package etcdkv_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/internal/etcdkv"
	"github.com/neo4j/private-ingress/internal/etcdtest"
	"github.com/neo4j/private-ingress/tlsconfig"

	"github.com/neo4j/private-ingress/internal/loopback"
)

// TestTicketKeysShareSessions: two replicas keep their ticket keys in one
// etcd key; a session from one resumes on the other, and still does after
// one of them rotated the keys for both.
func TestTicketKeysShareSessions(t *testing.T) {
	etcd := etcdtest.Start(t)
	files, err := tlsconfig.WriteDevCerts(t.TempDir(), []string{"*.production-orch-0000.neo4j.io"})
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := tls.LoadX509KeyPair(files.Cert, files.Key)
	caPEM, _ := os.ReadFile(files.CA)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var addrs []string
	var replicas []*tlsconfig.TicketKeys
	for range 2 {
		keys, _ := tlsconfig.NewTicketKeys(tlsconfig.SessionTickets{KeysFile: "etcd:/ingress/tickets"})
		cli := etcd.Client()
		t.Cleanup(func() { cli.Close() })
		shared := &etcdkv.TicketKeys{Client: cli, Key: "/ingress/tickets", Rotate: time.Second, Keys: keys}
		if _, err := shared.Load(ctx); err != nil {
			t.Fatal(err)
		}
		go shared.Run(ctx, func(err error) { t.Error(err) })
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
		keys.Register(cfg)
		addrs = append(addrs, loopback.EchoOn(t, tls.NewListener(loopback.Listen(t), cfg)))
		replicas = append(replicas, keys)
	}
	cache := tls.NewLRUClientSessionCache(4)
	dial := func(addr string) bool {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr,
			&tls.Config{ServerName: "abcd1234.production-orch-0000.neo4j.io", RootCAs: roots, ClientSessionCache: cache})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "x")
		c.Read(make([]byte, 1)) // takes in the TLS 1.3 ticket
		return c.ConnectionState().DidResume
	}
	dial(addrs[0])
	if !dial(addrs[1]) {
		t.Fatal("a session from replica A did not resume on replica B")
	}
	time.Sleep(1500 * time.Millisecond) // past the rotation period: one replica rotates for both
	if !dial(addrs[0]) || !dial(addrs[1]) {
		t.Error("sessions stopped resuming after the shared rotation")
	}
	c := etcd.Client()
	defer c.Close()
	resp, _ := c.Get(ctx, "/ingress/tickets")
	if resp.Kvs[0].Version < 2 {
		t.Errorf("the shared keys were not rotated (version %d)", resp.Kvs[0].Version)
	}
}
