package fleet_test

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

	"github.com/neo4j/private-ingress/internal/fleet"
	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/internal/testenv/etcdtest"
	"github.com/neo4j/private-ingress/tlsconfig"

	"github.com/neo4j/private-ingress/internal/testenv/loopback"
)

// ticketKey is the etcd key the replicas share their ticket keys in.
const ticketKey = "/ingress/tickets"

// Rotation is due once the first key is ticketRotate old, checked every
// ticketRotate/4. The test makes it due at once, and the next two
// rotations, after which the first key no longer decrypts, are then two
// periods away: far more than the test needs after the first.
const ticketRotate = 8 * time.Second

// TestTicketKeysShareSessions: two replicas keep their ticket keys in one
// etcd key; a session from one resumes on the other, and still does after
// one of them rotated the keys for both.
func TestTicketKeysShareSessions(t *testing.T) {
	etcd := etcdtest.Start(t)
	cert, roots := ticketTestCert(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := startTicketReplicas(t, ctx, etcd, cert)
	tc := ticketClient{t: t, roots: roots}
	if !tc.dial(addrs[1], tc.sessionFrom(addrs[0])) {
		t.Fatal("a session from replica A did not resume on replica B")
	}
	// Sessions sealed with the first key, to resume after the rotation.
	oldOnA, oldOnB := tc.sessionFrom(addrs[0]), tc.sessionFrom(addrs[1])

	rotated := forceTicketRotation(t, ctx, etcd)

	// Both replicas took the new key: a session each seals now resumes
	// on a server that has only that key.
	newOnly := &tls.Config{Certificates: []tls.Certificate{cert}}
	newOnly.SetSessionTicketKeys(rotated[:1])
	probe := loopback.EchoOn(t, tls.NewListener(loopback.Listen(t), newOnly))
	for i, addr := range addrs {
		testenv.WaitFor(t, fmt.Sprintf("replica %d to seal with the new key", i), func() bool {
			return tc.dial(probe, tc.sessionFrom(addr))
		})
	}
	// And both still open sessions sealed with the first key.
	if !tc.dial(addrs[0], oldOnA) || !tc.dial(addrs[1], oldOnB) {
		t.Error("sessions from before the shared rotation stopped resuming")
	}
}

// ticketTestCert returns a development certificate for orch 0000 and a
// pool trusting its CA.
func ticketTestCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	files, err := tlsconfig.WriteDevCerts(t.TempDir(), []string{"*.production-orch-0000.neo4j.io"})
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := tls.LoadX509KeyPair(files.Cert, files.Key)
	caPEM, _ := os.ReadFile(files.CA)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	return cert, roots
}

// startTicketReplicas starts two TLS echo servers whose ticket keys are
// shared through ticketKey in etcd, and returns their addresses.
func startTicketReplicas(t *testing.T, ctx context.Context, etcd *etcdtest.Etcd, cert tls.Certificate) []string {
	t.Helper()
	var addrs []string
	for range 2 {
		keys, _ := tlsconfig.NewTicketKeys(tlsconfig.SessionTickets{KeysFile: "etcd:" + ticketKey})
		cli := etcd.Client()
		t.Cleanup(func() { cli.Close() })
		shared := &fleet.TicketKeys{Client: cli, Key: ticketKey, Rotate: ticketRotate, Keys: keys}
		if _, err := shared.Load(ctx); err != nil {
			t.Fatal(err)
		}
		go shared.Run(ctx, func(err error) { t.Error(err) })
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
		keys.Register(cfg)
		addrs = append(addrs, loopback.EchoOn(t, tls.NewListener(loopback.Listen(t), cfg)))
	}
	return addrs
}

// ticketClient dials the replicas, trusting roots.
type ticketClient struct {
	t     *testing.T
	roots *x509.CertPool
}

// dial connects to addr with cache and reports whether the session
// resumed; it reads an echo, which takes in the TLS 1.3 ticket.
func (tc ticketClient) dial(addr string, cache tls.ClientSessionCache) bool {
	t := tc.t
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: testenv.WaitTimeout}, "tcp", addr,
		&tls.Config{ServerName: "abcd1234.production-orch-0000.neo4j.io", RootCAs: tc.roots, ClientSessionCache: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testenv.WaitTimeout))
	fmt.Fprintf(c, "x")
	c.Read(make([]byte, 1))
	return c.ConnectionState().DidResume
}

// sessionFrom returns a session cache holding a session from addr. A
// session cache holds one session per server name, replaced at every
// connection: each check gets its own.
func (tc ticketClient) sessionFrom(addr string) tls.ClientSessionCache {
	cache := tls.NewLRUClientSessionCache(1)
	tc.dial(addr, cache)
	return cache
}

// forceTicketRotation makes the rotation due now, as if the first key were
// a period old, so that the replicas' next check (within ticketRotate/4)
// rotates, one for both. It waits for that and returns the rotated keys:
// a new one, then the first.
func forceTicketRotation(t *testing.T, ctx context.Context, etcd *etcdtest.Etcd) [][32]byte {
	c := etcd.Client()
	defer c.Close()
	resp, err := c.Get(ctx, ticketKey)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the shared keys: %v, %v", resp, err)
	}
	first, err := tlsconfig.ParseTicketKeys(ticketKey, resp.Kvs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(resp.Kvs[0].Value), "\n")
	backdated := "# rotated " + time.Now().Add(-ticketRotate).UTC().Format(time.RFC3339Nano) + "\n" + rest
	if _, err := c.Put(ctx, ticketKey, backdated); err != nil {
		t.Fatal(err)
	}
	var rotated [][32]byte
	testenv.WaitFor(t, "a replica to rotate the shared keys", func() bool {
		resp, err := c.Get(ctx, ticketKey)
		if err != nil || len(resp.Kvs) != 1 {
			return false
		}
		rotated, err = tlsconfig.ParseTicketKeys(ticketKey, resp.Kvs[0].Value)
		return err == nil && rotated[0] != first[0]
	})
	if len(rotated) != 2 || rotated[1] != first[0] {
		t.Fatalf("after one rotation the keys are %x; want a new one, then the first (%x)", rotated, first[0])
	}
	return rotated
}
