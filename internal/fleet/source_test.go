package fleet_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/neo4j/private-ingress/internal/fleet"
	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/internal/testenv/etcdtest"
	"github.com/neo4j/private-ingress/routing"
)

// These drive routing.EtcdSource through Store against a real etcd;
// routing's own tests cover the source with a fake store.

const prefix = "/ingress/routes/"

var etcdNS = routing.Namespace{Domain: "neo4j.io", Orchestras: []string{"0000"}}

func instanceJSON(dbid string) string {
	return fmt.Sprintf(`{"dbid": %q, "orch": "0000", "public": true, "backends": {"bolt": ["127.0.0.1:7687"]}}`, dbid)
}

func found(h *routing.Holder, dbid string) bool {
	_, res := h.Load().Lookup(dbid + ".production-orch-0000.neo4j.io")
	return res == routing.Found
}

// TestEtcdSource: the table follows puts and deletes under the prefix; a
// bad value is refused and keeps the key's last good one; a burst of
// 10,000 puts becomes a few tables, not 10,000; etcd gone keeps the last
// table and says stale; etcd back catches up.
func TestEtcdSource(t *testing.T) {
	etcd := etcdtest.Start(t)
	cli := etcd.Client()
	defer cli.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cli.Put(ctx, routing.Key(prefix, "0000", "abcd1234"), instanceJSON("abcd1234"))
	cli.Put(ctx, "/ingress/other", "not a route")

	var holder routing.Holder
	var swaps atomic.Int64
	var mu sync.Mutex
	var rejected []error
	// Batch is long so that the burst below becomes few tables however
	// slowly a busy machine commits it.
	s := &routing.EtcdSource{Store: fleet.Store{Client: cli}, Prefix: prefix, Namespace: etcdNS, Holder: &holder, Batch: 200 * time.Millisecond,
		OnApply: func(tbl *routing.Table, changes int, err error) {
			if err != nil {
				mu.Lock()
				rejected = append(rejected, err)
				mu.Unlock()
				return
			}
			swaps.Add(1)
		}}
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if !found(&holder, "abcd1234") || holder.Load().Len() != 1 {
		t.Fatalf("after Load: %d instances", holder.Load().Len())
	}
	go s.Run(ctx)

	cli.Put(ctx, routing.Key(prefix, "0000", "ef567890"), instanceJSON("ef567890"))
	testenv.WaitFor(t, "a put to be routed", func() bool { return found(&holder, "ef567890") })
	cli.Delete(ctx, routing.Key(prefix, "0000", "abcd1234"))
	testenv.WaitFor(t, "a delete to be unrouted", func() bool { return !found(&holder, "abcd1234") })

	// A bad value is refused with its key and position; the last good one stays.
	cli.Put(ctx, routing.Key(prefix, "0000", "ef567890"), `{"dbid": "ef567890", "orch": "0000", "backends": {"bolt": ["no-port"]}}`)
	testenv.WaitFor(t, "the bad value to be reported", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(rejected) > 0
	})
	mu.Lock()
	if msg := rejected[0].Error(); msg != `etcd:/ingress/routes/0000/ef567890:1: backend "no-port": no port (want host:port)` {
		t.Errorf("rejection: %s", msg)
	}
	mu.Unlock()
	if !found(&holder, "ef567890") {
		t.Error("a bad value removed the instance")
	}

	// A burst of 10,000 puts in 100 transactions, as fast as etcd takes them.
	before := swaps.Load()
	const burst, txns = 10000, 100
	for i := 0; i < burst; i += burst / txns {
		ops := make([]clientv3.Op, 0, burst/txns)
		for j := i; j < i+burst/txns; j++ {
			id := fmt.Sprintf("burst%03d", j)
			ops = append(ops, clientv3.OpPut(routing.Key(prefix, "0000", id), instanceJSON(id)))
		}
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, "the burst to be applied", func() bool { return holder.Load().Len() == burst+1 })
	tables := swaps.Load() - before
	t.Logf("a burst of %d puts (%d transactions) became %d tables", burst, txns, tables)
	// routing's tests pin the batching down with a fake store; here it is
	// enough that transactions were gathered at all (a table each would
	// take every commit being 200 ms apart).
	if tables >= txns {
		t.Errorf("a burst of %d puts in %d transactions made %d tables, want fewer than the transactions", burst, txns, tables)
	}

	// etcd gone: the table stays, Stale says so; back: it catches up.
	etcd.Stop()
	testenv.WaitFor(t, "stale", func() bool { _, stale := s.Stale(); return stale })
	if !found(&holder, "ef567890") || holder.Load().Len() != burst+1 {
		t.Fatal("the table changed while etcd was down")
	}
	etcd.Restart()
	other := etcd.Client()
	defer other.Close()
	other.Put(ctx, routing.Key(prefix, "0000", "after123"), instanceJSON("after123"))
	testenv.WaitFor(t, "the catch-up", func() bool { return found(&holder, "after123") })
	testenv.WaitFor(t, "no longer stale", func() bool { _, stale := s.Stale(); return !stale })
}

// TestEtcdSourceRecoversFromCompaction: a watch that starts behind a
// compaction (a replica that was away) reloads the prefix instead.
func TestEtcdSourceRecoversFromCompaction(t *testing.T) {
	etcd := etcdtest.Start(t)
	cli := etcd.Client()
	defer cli.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var holder routing.Holder
	var reloads atomic.Int64
	s := &routing.EtcdSource{Store: fleet.Store{Client: cli}, Prefix: prefix, Namespace: etcdNS, Holder: &holder,
		OnApply: func(_ *routing.Table, _ int, err error) {
			if err != nil {
				reloads.Add(1)
			}
		}}
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		cli.Put(ctx, routing.Key(prefix, "0000", fmt.Sprintf("late%04d", i)), instanceJSON(fmt.Sprintf("late%04d", i)))
	}
	resp, _ := cli.Get(ctx, "x")
	if _, err := cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	go s.Run(ctx)
	testenv.WaitFor(t, "the reload after the compaction", func() bool { return holder.Load().Len() == 5 })
	if reloads.Load() == 0 {
		t.Error("no reload was reported")
	}
}

// BenchmarkEtcdPutToRoute is the time from an etcd put to the instance
// being routable through the source's table, against a real etcd.
func BenchmarkEtcdPutToRoute(b *testing.B) {
	etcd := etcdtest.Start(b)
	cli := etcd.Client()
	defer cli.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var holder routing.Holder
	applied := make(chan struct{}, 1)
	s := &routing.EtcdSource{Store: fleet.Store{Client: cli}, Prefix: prefix, Namespace: etcdNS, Holder: &holder, Batch: time.Millisecond,
		OnApply: func(*routing.Table, int, error) {
			select {
			case applied <- struct{}{}:
			default:
			}
		}}
	if err := s.Load(ctx); err != nil {
		b.Fatal(err)
	}
	go s.Run(ctx)
	i := 0
	for b.Loop() {
		id := fmt.Sprintf("put%05d", i)
		i++
		cli.Put(ctx, routing.Key(prefix, "0000", id), instanceJSON(id))
		for !found(&holder, id) {
			<-applied // every published table is announced
		}
	}
}
