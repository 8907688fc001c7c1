package ingress

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/routing"
)

type noCerts struct{}

func (noCerts) ServerConfig([]string) *tls.Config { return &tls.Config{} }

var revokeNS = routing.Namespace{Domain: "neo4j.io", Orchestras: []string{"0000"}}

// revokeTable is a table of n instances db000000..., the first public ones
// public, every one listing endpoints.
func revokeTable(tb testing.TB, n, public int, endpoints string, prev *routing.Table) *routing.Table {
	tb.Helper()
	var b strings.Builder
	b.WriteString("instances:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {dbid: db%06d, orch: \"0000\", public: %v, endpoints: [%s], backends: {bolt: [\"10.0.0.1:7687\"]}}\n", i, i < public, endpoints)
	}
	t, err := routing.Parse("routes.yaml", []byte(b.String()), revokeNS, prev)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// revokeServer is a Server with one bolt listener, never bound: enough to
// register connections that are not real.
func revokeServer(tb testing.TB, holder *routing.Holder, after time.Duration) (*Server, *listener) {
	tb.Helper()
	s, err := New(Config{Listeners: []ListenerConfig{{Service: "bolt", Address: "127.0.0.1:0"}}, RevokeAfter: after},
		Options{Routes: holder, Certs: noCerts{}})
	if err != nil {
		tb.Fatal(err)
	}
	return s, s.listeners[0]
}

// routedConn is a routed connection to dbid over one end of a pipe; the
// other end is returned, to see it closed.
func routedConn(t *testing.T, l *listener, table *routing.Table, dbid string) (*conn, net.Conn) {
	t.Helper()
	inner, outer := net.Pipe()
	t.Cleanup(func() { inner.Close(); outer.Close() })
	c := &conn{Conn: inner, l: l, instance: table.Get(dbid, "0000")}
	if c.instance == nil {
		t.Fatalf("no instance %s", dbid)
	}
	return c, outer
}

func waitPipeClosed(t *testing.T, what string, peer net.Conn) {
	t.Helper()
	peer.SetReadDeadline(time.Now().Add(testenv.WaitTimeout))
	if _, err := peer.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("%s: read %v, want EOF (closed)", what, err)
	}
}

// A reload between a connection's handshake and its registration is seen
// when it registers, even if that reload's check has run already.
func TestRevokeRegisteredAfterTheReload(t *testing.T) {
	var holder routing.Holder
	old := revokeTable(t, 2, 2, "", nil)
	holder.Store(old)
	s, l := revokeServer(t, &holder, RevokeAtOnce)
	c, peer := routedConn(t, l, old, "db000001")
	kept, keptPeer := routedConn(t, l, old, "db000000")

	holder.Store(revokeTable(t, 2, 1, "", old)) // db000001 no longer public
	s.RoutesChanged()                           // before the connections register: nothing to see
	s.register(c)
	s.register(kept)
	waitPipeClosed(t, "the connection registered after the reload", peer)
	s.unregister(c)
	if c.log.result != resultRevoked || c.log.err != errRevokedPublic {
		t.Errorf("result %v, reason %v; want revoked, %v", c.log.result, c.log.err, errRevokedPublic)
	}
	keptPeer.SetReadDeadline(time.Now().Add(time.Millisecond))
	if _, err := keptPeer.Read(make([]byte, 1)); err == io.EOF {
		t.Error("the connection still allowed was closed")
	}
	s.unregister(kept)
	for i := range s.revokes.shards {
		if n := len(s.revokes.shards[i].byInst); n != 0 {
			t.Errorf("shard %d keeps %d instances after every connection finished", i, n)
		}
	}
}

// Instances whose access did not change are looked up, their connections
// left alone; those whose access changed have theirs judged.
func TestRevokeCheckJudgesChangedInstancesOnly(t *testing.T) {
	var holder routing.Holder
	t0 := revokeTable(t, 3, 3, "vpce-1", nil)
	holder.Store(t0)
	s, l := revokeServer(t, &holder, time.Hour)
	var conns []*conn
	for _, dbid := range []string{"db000000", "db000001", "db000002"} {
		c, _ := routedConn(t, l, t0, dbid)
		s.register(c)
		conns = append(conns, c)
	}
	holder.Store(revokeTable(t, 3, 3, "vpce-1", t0)) // the same access, new instances
	s.RoutesChanged()
	for _, c := range conns {
		if c.rev.pending != 0 {
			t.Errorf("%s pending after a reload that kept its access", c.instance.DBID)
		}
	}
	holder.Store(revokeTable(t, 3, 2, "vpce-1", t0)) // db000002 no longer public
	s.RoutesChanged()
	for i, c := range conns {
		if want := i == 2; (c.rev.pending != 0) != want {
			t.Errorf("%s pending: %v, want %v", c.instance.DBID, c.rev.pending != 0, want)
		}
	}
	holder.Store(revokeTable(t, 3, 3, "vpce-1", t0)) // given back
	s.RoutesChanged()
	if conns[2].rev.pending != 0 {
		t.Error("still pending after a reload gave its access back")
	}
	for _, c := range conns {
		s.unregister(c)
	}
}

// BenchmarkRevokeCheck is the cost of one reload's check (RoutesChanged)
// with 50,000 routed connections registered.
func BenchmarkRevokeCheck(b *testing.B) {
	for _, bc := range []struct {
		name      string
		instances int // in the table
		spread    int // instances the connections are spread over
		change    bool
	}{
		{"100k instances/50k conns on 50k instances/access unchanged", 100_000, 50_000, false},
		{"100k instances/50k conns on 1k instances/access unchanged", 100_000, 1_000, false},
		{"100k instances/50k conns on 1k instances/every access changed", 100_000, 1_000, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			const conns = 50_000
			var holder routing.Holder
			// Two tables that give the same access, or that differ for every
			// instance (an endpoint added) while still letting the
			// connections (public ones) in.
			t0 := revokeTable(b, bc.instances, bc.instances, "vpce-1", nil)
			other := "vpce-1"
			if bc.change {
				other = "vpce-1, vpce-2"
			}
			t1 := revokeTable(b, bc.instances, bc.instances, other, t0)
			holder.Store(t0)
			s, l := revokeServer(b, &holder, time.Hour)
			for i := range conns {
				inst := t0.Get(fmt.Sprintf("db%06d", i%bc.spread), "0000")
				s.register(&conn{l: l, instance: inst})
			}
			tables := [2]*routing.Table{t1, t0}
			i := 0
			for b.Loop() {
				holder.Store(tables[i%2])
				s.RoutesChanged()
				i++
			}
		})
	}
}

// Connections that register and finish while reloads take access away and
// give it back, and revocations close them: for the race detector, and the
// registry is empty once they are all finished.
func TestRevokeConcurrentReloads(t *testing.T) {
	var holder routing.Holder
	allow := revokeTable(t, 8, 8, "", nil)
	deny := revokeTable(t, 8, 4, "", allow)
	holder.Store(allow)
	s, l := revokeServer(t, &holder, RevokeAtOnce)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			holder.Store([2]*routing.Table{deny, allow}[i%2])
			s.RoutesChanged()
		}
	}()
	finished := make(chan struct{})
	for w := range 4 {
		go func() {
			defer func() { finished <- struct{}{} }()
			for i := range 100 {
				inner, outer := net.Pipe()
				c := &conn{Conn: inner, l: l, instance: allow.Get(fmt.Sprintf("db%06d", (w+i)%8), "0000")}
				s.register(c)
				s.unregister(c)
				inner.Close()
				outer.Close()
			}
		}()
	}
	for range 4 {
		<-finished
	}
	<-done
	for i := range s.revokes.shards {
		sh := &s.revokes.shards[i]
		sh.mu.Lock()
		n := len(sh.byInst)
		sh.mu.Unlock()
		if n != 0 {
			t.Errorf("shard %d keeps %d instances after every connection finished", i, n)
		}
	}
}

// BenchmarkRevokeRegister is what the registry adds to each routed
// connection: its registration and its removal.
func BenchmarkRevokeRegister(b *testing.B) {
	var holder routing.Holder
	t0 := revokeTable(b, 1000, 1000, "", nil)
	holder.Store(t0)
	s, l := revokeServer(b, &holder, time.Hour)
	for i := range 50_000 { // other connections open meanwhile
		s.register(&conn{l: l, instance: t0.Get(fmt.Sprintf("db%06d", i%1000), "0000")})
	}
	c := &conn{l: l, instance: t0.Get("db000007", "0000")}
	for b.Loop() {
		s.register(c)
		s.unregister(c)
	}
}
