package routing_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/routing"
)

// EtcdSource is tested here against fakeKV, an in-memory routing.KVStore;
// internal/fleet's tests drive it against a real etcd.

const prefix = "/ingress/routes/"

var etcdNS = routing.Namespace{Domain: "neo4j.io", Orchestras: []string{"0000"}}

func instanceJSON(dbid string) string {
	return fmt.Sprintf(`{"dbid": %q, "orch": "0000", "public": true, "backends": {"bolt": ["127.0.0.1:7687"]}}`, dbid)
}

func found(h *routing.Holder, dbid string) bool {
	_, res := h.Load().Lookup(dbid + ".production-orch-0000.neo4j.io")
	return res == routing.Found
}

var errDown = errors.New("fake store is down")

// fakeKV is a revisioned store in memory with etcd's watch semantics as
// routing.KVStore describes them: one revision per commit, a watch from
// any revision not compacted away, watches ended (with an error) while
// the store is down. Holding a watch back queues its revisions, to be
// delivered back to back.
type fakeKV struct {
	mu        sync.Mutex
	changed   chan struct{}  // closed and replaced at every change of state
	log       [][]routing.KV // log[r-1]: the changes of revision r
	data      map[string]routing.KV
	compacted int64 // revisions up to this one are gone
	down      bool
	held      bool
}

func newFakeKV() *fakeKV {
	return &fakeKV{changed: make(chan struct{}), data: map[string]routing.KV{}}
}

func (f *fakeKV) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// commit applies puts (value != "") and deletes (value == "") as one
// revision, as an etcd transaction does.
func (f *fakeKV) commit(kv ...[2]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rev := int64(len(f.log) + 1)
	var changes []routing.KV
	for _, p := range kv {
		c := routing.KV{Key: p[0], Value: []byte(p[1]), ModRevision: rev, Deleted: p[1] == ""}
		if c.Deleted {
			delete(f.data, c.Key)
			c.Value = nil
		} else {
			f.data[c.Key] = c
		}
		changes = append(changes, c)
	}
	f.log = append(f.log, changes)
	f.notifyLocked()
}

func (f *fakeKV) put(key, value string) { f.commit([2]string{key, value}) }
func (f *fakeKV) del(key string)        { f.commit([2]string{key, ""}) }

func (f *fakeKV) set(apply func(*fakeKV)) {
	f.mu.Lock()
	apply(f)
	f.notifyLocked()
	f.mu.Unlock()
}

func (f *fakeKV) compact() { f.set(func(f *fakeKV) { f.compacted = int64(len(f.log)) }) }

func (f *fakeKV) Load(ctx context.Context, prefix string) ([]routing.KV, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, 0, errDown
	}
	var kvs []routing.KV
	for k, kv := range f.data {
		if strings.HasPrefix(k, prefix) {
			kvs = append(kvs, kv)
		}
	}
	slices.SortFunc(kvs, func(a, b routing.KV) int { return strings.Compare(a.Key, b.Key) })
	return kvs, int64(len(f.log)), nil
}

func (f *fakeKV) Watch(ctx context.Context, prefix string, from int64) <-chan routing.KVBatch {
	out := make(chan routing.KVBatch)
	go func() {
		defer close(out)
		send := func(b routing.KVBatch) bool {
			select {
			case out <- b:
				return true
			case <-ctx.Done():
				return false
			}
		}
		next := from
		for {
			f.mu.Lock()
			changed, down, held, compacted, head := f.changed, f.down, f.held, f.compacted, int64(len(f.log))
			var batch routing.KVBatch
			if !down && !held && next <= head && next > compacted {
				for _, c := range f.log[next-1] {
					if strings.HasPrefix(c.Key, prefix) {
						batch.Changes = append(batch.Changes, c)
					}
				}
				batch.Revision = next
			}
			f.mu.Unlock()
			switch {
			case down:
				send(routing.KVBatch{Err: errDown})
				return
			case next <= compacted:
				send(routing.KVBatch{Compacted: true})
				return
			case batch.Revision != 0:
				next++
				if len(batch.Changes) > 0 && !send(batch) {
					return
				}
				continue
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func (f *fakeKV) Ping(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errDown
	}
	return nil
}

// source is an EtcdSource on store, loaded and running until the test
// ends, that counts the tables it publishes and keeps what it rejects.
type source struct {
	*routing.EtcdSource
	holder   routing.Holder
	tables   atomic.Int64
	changes  atomic.Int64 // the changes the last table took in
	mu       sync.Mutex
	rejected []error
}

func runSource(t *testing.T, store routing.KVStore, configure func(*routing.EtcdSource)) *source {
	t.Helper()
	s := &source{}
	s.EtcdSource = &routing.EtcdSource{Store: store, Prefix: prefix, Namespace: etcdNS, Holder: &s.holder,
		OnApply: func(_ *routing.Table, changes int, err error) {
			if err != nil {
				s.mu.Lock()
				s.rejected = append(s.rejected, err)
				s.mu.Unlock()
				return
			}
			s.changes.Store(int64(changes))
			s.tables.Add(1)
		}}
	if configure != nil {
		configure(s.EtcdSource)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s
}

func (s *source) rejections() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.rejected)
}

// TestEtcdSourceFollowsChanges: Load publishes what is under the prefix
// (and nothing else); the table follows puts and deletes; a bad value is
// refused with its key and position, and the key keeps its last good one.
func TestEtcdSourceFollowsChanges(t *testing.T) {
	kv := newFakeKV()
	kv.put(routing.Key(prefix, "0000", "abcd1234"), instanceJSON("abcd1234"))
	kv.put("/ingress/other", "not a route")
	s := runSource(t, kv, nil)
	if !found(&s.holder, "abcd1234") || s.holder.Load().Len() != 1 {
		t.Fatalf("after Load: %d instances", s.holder.Load().Len())
	}

	kv.put(routing.Key(prefix, "0000", "ef567890"), instanceJSON("ef567890"))
	testenv.WaitFor(t, "a put to be routed", func() bool { return found(&s.holder, "ef567890") })
	kv.del(routing.Key(prefix, "0000", "abcd1234"))
	testenv.WaitFor(t, "a delete to be unrouted", func() bool { return !found(&s.holder, "abcd1234") })

	kv.put(routing.Key(prefix, "0000", "ef567890"), `{"dbid": "ef567890", "orch": "0000", "backends": {"bolt": ["no-port"]}}`)
	testenv.WaitFor(t, "the bad value to be reported", func() bool { return len(s.rejections()) > 0 })
	if msg := s.rejections()[0].Error(); msg != `etcd:/ingress/routes/0000/ef567890:1: backend "no-port": no port (want host:port)` {
		t.Errorf("rejection: %s", msg)
	}
	if !found(&s.holder, "ef567890") {
		t.Error("a bad value removed the instance")
	}
}

// TestEtcdSourceBatchesABurst: the revisions of a burst that arrive
// within Batch of each other become one table. The watch is held back
// while the burst is committed, so that it arrives back to back whatever
// the machine's load.
func TestEtcdSourceBatchesABurst(t *testing.T) {
	kv := newFakeKV()
	s := runSource(t, kv, func(s *routing.EtcdSource) { s.Batch = 200 * time.Millisecond })
	before := s.tables.Load()
	kv.set(func(f *fakeKV) { f.held = true })
	const burst, txns = 10000, 100
	for i := 0; i < burst; i += burst / txns {
		var ops [][2]string
		for j := i; j < i+burst/txns; j++ {
			id := fmt.Sprintf("burst%03d", j)
			ops = append(ops, [2]string{routing.Key(prefix, "0000", id), instanceJSON(id)})
		}
		kv.commit(ops...)
	}
	kv.set(func(f *fakeKV) { f.held = false })
	testenv.WaitFor(t, "the burst to be applied", func() bool { return s.holder.Load().Len() == burst })
	tables := s.tables.Load() - before
	t.Logf("a burst of %d puts in %d revisions became %d tables", burst, txns, tables)
	// One table, unless the source stalled for Batch in the middle of
	// reading a backlog it had in full.
	if tables > 3 {
		t.Errorf("a burst of %d puts in %d revisions made %d tables, want one", burst, txns, tables)
	}
}

// TestEtcdSourceStaleWhileDown: with the store down the last table keeps
// serving and Stale says so; back, the source reloads and catches up. It
// takes two of the probe's ticks, a second each.
func TestEtcdSourceStaleWhileDown(t *testing.T) {
	kv := newFakeKV()
	kv.put(routing.Key(prefix, "0000", "abcd1234"), instanceJSON("abcd1234"))
	s := runSource(t, kv, nil)
	kv.set(func(f *fakeKV) { f.down = true })
	testenv.WaitFor(t, "stale", func() bool { _, stale := s.Stale(); return stale })
	if !found(&s.holder, "abcd1234") || s.holder.Load().Len() != 1 {
		t.Fatal("the table changed while the store was down")
	}
	// Changed while the source could not see it: found by the reload.
	kv.set(func(f *fakeKV) { f.down = false })
	kv.put(routing.Key(prefix, "0000", "after123"), instanceJSON("after123"))
	testenv.WaitFor(t, "the catch-up", func() bool { return found(&s.holder, "after123") })
	testenv.WaitFor(t, "no longer stale", func() bool { _, stale := s.Stale(); return !stale })
}

// TestEtcdSourceRecoversFromCompaction: a watch that starts behind a
// compaction (a replica that was away) reloads the prefix instead, and
// says so.
func TestEtcdSourceRecoversFromCompaction(t *testing.T) {
	kv := newFakeKV()
	s := &source{}
	s.EtcdSource = &routing.EtcdSource{Store: kv, Prefix: prefix, Namespace: etcdNS, Holder: &s.holder,
		OnApply: func(_ *routing.Table, _ int, err error) {
			if err != nil {
				s.mu.Lock()
				s.rejected = append(s.rejected, err)
				s.mu.Unlock()
			}
		}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		id := fmt.Sprintf("late%04d", i)
		kv.put(routing.Key(prefix, "0000", id), instanceJSON(id))
	}
	kv.compact()
	go s.Run(ctx)
	testenv.WaitFor(t, "the reload after the compaction", func() bool { return s.holder.Load().Len() == 5 })
	if r := s.rejections(); len(r) == 0 || !strings.Contains(r[0].Error(), "compacted") {
		t.Errorf("reported %v, want the compaction", r)
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
