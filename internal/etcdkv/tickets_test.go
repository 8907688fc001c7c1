package etcdkv_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/internal/etcdkv"
	"github.com/neo4j/private-ingress/internal/etcdtest"
	"github.com/neo4j/private-ingress/internal/testenv"
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
	const key = "/ingress/tickets"
	// Rotation is due once the first key is rotate old, checked every
	// rotate/4. The test makes it due at once (below), and the next two
	// rotations, after which the first key no longer decrypts, are then
	// two periods away: far more than the test needs after the first.
	const rotate = 8 * time.Second
	var addrs []string
	for range 2 {
		keys, _ := tlsconfig.NewTicketKeys(tlsconfig.SessionTickets{KeysFile: "etcd:" + key})
		cli := etcd.Client()
		t.Cleanup(func() { cli.Close() })
		shared := &etcdkv.TicketKeys{Client: cli, Key: key, Rotate: rotate, Keys: keys}
		if _, err := shared.Load(ctx); err != nil {
			t.Fatal(err)
		}
		go shared.Run(ctx, func(err error) { t.Error(err) })
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
		keys.Register(cfg)
		addrs = append(addrs, loopback.EchoOn(t, tls.NewListener(loopback.Listen(t), cfg)))
	}
	// dial connects to addr with cache and reports whether the session
	// resumed; it reads an echo, which takes in the TLS 1.3 ticket.
	dial := func(addr string, cache tls.ClientSessionCache) bool {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: testenv.WaitTimeout}, "tcp", addr,
			&tls.Config{ServerName: "abcd1234.production-orch-0000.neo4j.io", RootCAs: roots, ClientSessionCache: cache})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(testenv.WaitTimeout))
		fmt.Fprintf(c, "x")
		c.Read(make([]byte, 1))
		return c.ConnectionState().DidResume
	}
	// A session cache holds one session per server name, replaced at
	// every connection: each check below gets its own.
	sessionFrom := func(addr string) tls.ClientSessionCache {
		cache := tls.NewLRUClientSessionCache(1)
		dial(addr, cache)
		return cache
	}
	if !dial(addrs[1], sessionFrom(addrs[0])) {
		t.Fatal("a session from replica A did not resume on replica B")
	}
	// Sessions sealed with the first key, to resume after the rotation.
	oldOnA, oldOnB := sessionFrom(addrs[0]), sessionFrom(addrs[1])

	// Make the rotation due now, as if the first key were a period old:
	// the replicas' next check (within rotate/4) rotates, one for both.
	c := etcd.Client()
	defer c.Close()
	resp, err := c.Get(ctx, key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the shared keys: %v, %v", resp, err)
	}
	first, err := tlsconfig.ParseTicketKeys(key, resp.Kvs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(resp.Kvs[0].Value), "\n")
	backdated := "# rotated " + time.Now().Add(-rotate).UTC().Format(time.RFC3339Nano) + "\n" + rest
	if _, err := c.Put(ctx, key, backdated); err != nil {
		t.Fatal(err)
	}
	var rotated [][32]byte
	testenv.WaitFor(t, "a replica to rotate the shared keys", func() bool {
		resp, err := c.Get(ctx, key)
		if err != nil || len(resp.Kvs) != 1 {
			return false
		}
		rotated, err = tlsconfig.ParseTicketKeys(key, resp.Kvs[0].Value)
		return err == nil && rotated[0] != first[0]
	})
	if len(rotated) != 2 || rotated[1] != first[0] {
		t.Fatalf("after one rotation the keys are %x; want a new one, then the first (%x)", rotated, first[0])
	}

	// Both replicas took the new key: a session each seals now resumes
	// on a server that has only that key.
	newOnly := &tls.Config{Certificates: []tls.Certificate{cert}}
	newOnly.SetSessionTicketKeys(rotated[:1])
	probe := loopback.EchoOn(t, tls.NewListener(loopback.Listen(t), newOnly))
	for i, addr := range addrs {
		testenv.WaitFor(t, fmt.Sprintf("replica %d to seal with the new key", i), func() bool {
			return dial(probe, sessionFrom(addr))
		})
	}
	// And both still open sessions sealed with the first key.
	if !dial(addrs[0], oldOnA) || !dial(addrs[1], oldOnB) {
		t.Error("sessions from before the shared rotation stopped resuming")
	}
}
