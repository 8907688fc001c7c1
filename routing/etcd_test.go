package routing_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/neo4j/private-ingress/internal/etcdkv"
	"github.com/neo4j/private-ingress/internal/etcdtest"
	"github.com/neo4j/private-ingress/routing"
)

const prefix = "/ingress/routes/"

var etcdNS = routing.Namespace{Domain: "neo4j.io", Orchestras: []string{"0000"}}

func instanceJSON(dbid string) string {
	return fmt.Sprintf(`{"dbid": %q, "orch": "0000", "public": true, "backends": {"bolt": ["127.0.0.1:7687"]}}`, dbid)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
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
	s := &routing.EtcdSource{Store: etcdkv.Store{Client: cli}, Prefix: prefix, Namespace: etcdNS, Holder: &holder,
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
	waitFor(t, "a put to be routed", func() bool { return found(&holder, "ef567890") })
	cli.Delete(ctx, routing.Key(prefix, "0000", "abcd1234"))
	waitFor(t, "a delete to be unrouted", func() bool { return !found(&holder, "abcd1234") })

	// A bad value is refused with its key and position; the last good one stays.
	cli.Put(ctx, routing.Key(prefix, "0000", "ef567890"), `{"dbid": "ef567890", "orch": "0000", "backends": {"bolt": ["no-port"]}}`)
	waitFor(t, "the bad value to be reported", func() bool {
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

	// A burst of 10,000 puts, as fast as etcd takes them.
	before := swaps.Load()
	const burst = 10000
	for i := 0; i < burst; i += 100 {
		ops := make([]clientv3.Op, 0, 100)
		for j := i; j < i+100; j++ {
			id := fmt.Sprintf("burst%03d", j)
			ops = append(ops, clientv3.OpPut(routing.Key(prefix, "0000", id), instanceJSON(id)))
		}
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the burst to be applied", func() bool { return holder.Load().Len() == burst+1 })
	tables := swaps.Load() - before
	t.Logf("a burst of %d puts (100 transactions) became %d tables", burst, tables)
	if tables > 20 {
		t.Errorf("a burst of %d puts made %d tables, want a few", burst, tables)
	}

	// etcd gone: the table stays, Stale says so; back: it catches up.
	etcd.Stop()
	waitFor(t, "stale", func() bool { _, stale := s.Stale(); return stale })
	if !found(&holder, "ef567890") || holder.Load().Len() != burst+1 {
		t.Fatal("the table changed while etcd was down")
	}
	etcd.Restart()
	other := etcd.Client()
	defer other.Close()
	other.Put(ctx, routing.Key(prefix, "0000", "after123"), instanceJSON("after123"))
	waitFor(t, "the catch-up", func() bool { return found(&holder, "after123") })
	waitFor(t, "no longer stale", func() bool { _, stale := s.Stale(); return !stale })
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
	s := &routing.EtcdSource{Store: etcdkv.Store{Client: cli}, Prefix: prefix, Namespace: etcdNS, Holder: &holder,
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
	waitFor(t, "the reload after the compaction", func() bool { return holder.Load().Len() == 5 })
	if reloads.Load() == 0 {
		t.Error("no reload was reported")
	}
}

// BenchmarkBuild100k is the cost of one etcd batch on a 100,000-instance
// table: the table rebuilt from parsed entries. It reports the heap the
// table holds per instance.
func BenchmarkBuild100k(b *testing.B) {
	const n = 100000
	entries := make([]routing.Entry, n)
	for i := range entries {
		e, err := routing.ParseEntry("bench", []byte(fmt.Sprintf(`{"dbid": "db%06d", "orch": "0000", "public": true, "backends": {"bolt": ["10.0.%d.%d:7687"]}}`, i, i/250%250, i%250)), etcdNS)
		if err != nil {
			b.Fatal(err)
		}
		entries[i] = e
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	t, _ := routing.Build(etcdNS, entries, nil)
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportAllocs()
	for b.Loop() {
		if tb, _ := routing.Build(etcdNS, entries, t); tb.Len() != n {
			b.Fatal(tb.Len())
		}
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/instance")
	runtime.KeepAlive(t)
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
	s := &routing.EtcdSource{Store: etcdkv.Store{Client: cli}, Prefix: prefix, Namespace: etcdNS, Holder: &holder, Batch: time.Millisecond}
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
			time.Sleep(50 * time.Microsecond)
		}
	}
}
