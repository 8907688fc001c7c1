package routing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/neo4j/private-ingress/internal/yamlutil"
)

// KVStore is what a route source needs of a revisioned key-value store:
// etcd, through internal/fleet. routing stays free of its client (and of
// the TLS, HTTP and logging that come with it).
type KVStore interface {
	// Load returns every key under prefix and the store's revision.
	Load(ctx context.Context, prefix string) ([]KV, int64, error)
	// Watch sends the changes under prefix from revision from on, until
	// ctx ends or the watch fails; its last batch then carries the error.
	Watch(ctx context.Context, prefix string, from int64) <-chan KVBatch
	// Ping reports whether the store answers.
	Ping(ctx context.Context) error
}

// KV is one key's value at a revision; Deleted marks a deletion.
type KV struct {
	Key         string
	Value       []byte
	ModRevision int64
	Deleted     bool
}

// KVBatch is one watch response: its changes, the store's revision after
// them, or why the watch ended (Compacted when it fell behind compaction).
type KVBatch struct {
	Changes   []KV
	Revision  int64
	Err       error
	Compacted bool
}

// EtcdSource keeps a Holder's table in step with the instances under a
// prefix in etcd, one key per instance (<prefix><orch>/<dbid>, the value a
// routes.yaml entry as JSON or YAML). It loads the prefix, then follows a
// watch from that revision; a burst of changes is applied as one table.
// While etcd is unreachable the last table keeps serving and Stale says
// since when; a lost watch or a compaction reloads the prefix.
//
// A value counts only under its own key: one that names another instance
// or orch than its key, or a key not of the form <prefix><orch>/<dbid>, is
// refused like a value that does not parse. A refused value never removes
// its key's last good entry, whether it arrives through the watch or a
// full reload (Load); a key that never had a good value routes nothing.
//
// Reloads parse values before they take s.mu, and Stale has a lock of its
// own that no reload takes: no reload, however large, makes /readyz wait.
type EtcdSource struct {
	Store     KVStore
	Prefix    string // e.g. /ingress/routes/
	Namespace Namespace
	Holder    *Holder
	// OnApply hears every published table with the number of changes it
	// took in, and every rejected value (err names the key). Optional.
	OnApply func(t *Table, changes int, err error)
	// Batch is how long a burst of changes is gathered before the table is
	// rebuilt; zero means 50 ms.
	Batch time.Duration
	// Timeout bounds Refresh; zero leaves it to the caller's context.
	Timeout time.Duration

	// reloadMu makes each reload (Load, or applying a batch of the
	// watch) one step from reading to storing its table: a SIGHUP's Load
	// and the watch never interleave, so an older table is never stored
	// over a newer one. Only reloads take it.
	reloadMu sync.Mutex

	mu      sync.Mutex
	entries map[string]Entry // by key
	rev     int64            // the revision the entries reflect

	staleMu    sync.Mutex
	staleSince time.Time // zero while etcd answers

	// parseHook, for tests, runs before each value is parsed.
	parseHook func(key string)
}

// Key is where the instance dbid of orch lives under prefix.
func Key(prefix, orch, dbid string) string { return prefix + orch + "/" + dbid }

// parse decodes the value of kv and checks that it belongs under its key:
// <prefix><orch>/<dbid> naming the same dbid and orch (ASCII case aside,
// as routing lower-cases both). It runs without s.mu.
func (s *EtcdSource) parse(kv KV) (Entry, error) {
	if s.parseHook != nil {
		s.parseHook(kv.Key)
	}
	name := "etcd:" + kv.Key
	orch, dbid, ok := strings.Cut(strings.TrimPrefix(kv.Key, s.Prefix), "/")
	if !ok || !strings.HasPrefix(kv.Key, s.Prefix) || !isLabel(dbid) || !isLabel(orchPrefix+orch) {
		return Entry{}, yamlutil.Errors{{File: name, Msg: fmt.Sprintf("refused: not a route key (want %s<orch>/<dbid>, as `ingress routes put` writes)", s.Prefix)}}
	}
	e, err := ParseEntry(name, kv.Value, s.Namespace)
	if err != nil {
		return Entry{}, err
	}
	if !strings.EqualFold(dbid, e.DBID) || !strings.EqualFold(orch, e.Orch) {
		return Entry{}, yamlutil.Errors{{File: name, Msg: fmt.Sprintf("refused: the value is instance %s in orch %s, whose key is %s; a value counts only under its own key",
			e.DBID, e.Orch, Key(s.Prefix, e.Orch, e.DBID))}}
	}
	return e, nil
}

// Load reads every instance under the prefix and publishes the table. A
// key whose value is refused keeps the entry it had (if any).
func (s *EtcdSource) Load(ctx context.Context) error {
	s.reloadMu.Lock()
	kvs, rev, err := s.Store.Load(ctx, s.Prefix)
	if err != nil {
		s.reloadMu.Unlock()
		return fmt.Errorf("loading routes from etcd %s: %w", s.Prefix, err)
	}
	entries := make(map[string]Entry, len(kvs))
	var bad []error
	var refused []string
	for _, kv := range kvs {
		e, err := s.parse(kv)
		if err != nil {
			bad = append(bad, err)
			refused = append(refused, kv.Key)
			continue
		}
		entries[kv.Key] = e
	}
	s.mu.Lock()
	for _, key := range refused {
		if last, ok := s.entries[key]; ok {
			entries[key] = last // the key keeps its last good value
		}
	}
	s.entries, s.rev = entries, rev
	s.mu.Unlock()
	t, dropped := s.build()
	s.reloadMu.Unlock()
	s.published(t, len(kvs), dropped, bad)
	return nil
}

// Run follows changes until ctx is done. Load must have succeeded.
func (s *EtcdSource) Run(ctx context.Context) error {
	go s.probe(ctx)
	for ctx.Err() == nil {
		s.mu.Lock()
		from := s.rev + 1
		s.mu.Unlock()
		err := s.follow(ctx, from)
		if ctx.Err() != nil {
			return nil
		}
		s.report(nil, 0, fmt.Errorf("etcd watch on %s ended: %w; reloading", s.Prefix, err))
		for ctx.Err() == nil {
			if err := s.Load(ctx); err == nil {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

// follow applies the watch from revision from until it fails.
func (s *EtcdSource) follow(ctx context.Context, from int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watch := s.Store.Watch(ctx, s.Prefix, from)
	batch := s.Batch
	if batch <= 0 {
		batch = 50 * time.Millisecond
	}
	for {
		resp, ok := <-watch
		if !ok {
			return errors.New("watch channel closed")
		}
		if resp.Compacted {
			return fmt.Errorf("compacted past revision %d", from)
		}
		if resp.Err != nil {
			return resp.Err
		}
		// Gather the rest of the burst, then build one table.
		changes, rev := resp.Changes, resp.Revision
		timer := time.NewTimer(batch)
	gather:
		for {
			select {
			case more, ok := <-watch:
				if !ok || more.Err != nil || more.Compacted {
					break gather // the outer loop sees the end next time
				}
				changes = append(changes, more.Changes...)
				rev = more.Revision
			case <-timer.C:
				break gather
			}
		}
		timer.Stop()
		s.apply(changes, rev)
	}
}

func (s *EtcdSource) apply(changes []KV, rev int64) {
	s.reloadMu.Lock()
	s.mu.Lock()
	applied := s.rev
	s.mu.Unlock()
	// Parse first, without s.mu; then take it only to update the map.
	entries := make([]Entry, len(changes))
	errs := make([]error, len(changes))
	for i, kv := range changes {
		if !kv.Deleted && kv.ModRevision > applied {
			entries[i], errs[i] = s.parse(kv)
		}
	}
	var bad []error
	s.mu.Lock()
	for i, kv := range changes {
		switch {
		case kv.ModRevision <= applied:
			// A reload after reconnecting already has it.
		case kv.Deleted:
			delete(s.entries, kv.Key)
		case errs[i] != nil:
			bad = append(bad, errs[i]) // the key keeps its last good value
		default:
			s.entries[kv.Key] = entries[i]
		}
	}
	s.rev = max(s.rev, rev)
	s.mu.Unlock()
	t, dropped := s.build()
	s.reloadMu.Unlock()
	s.published(t, len(changes), dropped, bad)
}

// build makes the table of the entries, in key order so that a dbid given
// under two keys resolves the same way every time, and stores it.
func (s *EtcdSource) build() (*Table, []Entry) {
	s.mu.Lock()
	keys := make([]string, 0, len(s.entries))
	for k := range s.entries {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	list := make([]Entry, len(keys))
	for i, k := range keys {
		list[i] = s.entries[k]
	}
	s.mu.Unlock()
	t, dropped := Build(s.Namespace, list, s.Holder.Load())
	s.Holder.Store(t)
	return t, dropped
}

// published reports a table stored, then what it left out.
func (s *EtcdSource) published(t *Table, changes int, dropped []Entry, bad []error) {
	s.report(t, changes, nil)
	for _, e := range dropped {
		s.report(nil, 0, fmt.Errorf("etcd: instance %s in orch %s is defined under more than one key; the first in key order wins", e.DBID, e.Orch))
	}
	for _, err := range bad {
		s.report(nil, 0, err)
	}
}

func (s *EtcdSource) report(t *Table, changes int, err error) {
	if s.OnApply != nil {
		s.OnApply(t, changes, err)
	}
}

// probeEvery is how often etcd is asked whether it answers.
const probeEvery = time.Second

// probe marks the table stale while etcd does not answer, and reloads
// when it answers again, so that nothing missed in between is lost.
func (s *EtcdSource) probe(ctx context.Context) {
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		pctx, cancel := context.WithTimeout(ctx, probeEvery)
		err := s.Store.Ping(pctx)
		cancel()
		s.staleMu.Lock()
		wasStale := !s.staleSince.IsZero()
		switch {
		case err != nil && !wasStale:
			s.staleSince = time.Now()
		case err == nil:
			s.staleSince = time.Time{}
		}
		s.staleMu.Unlock()
		if err == nil && wasStale {
			if err := s.Load(ctx); err != nil {
				s.report(nil, 0, err)
			}
		}
	}
}

// Stale reports whether etcd has not answered since the time returned.
// It takes no lock a reload holds.
func (s *EtcdSource) Stale() (since time.Time, stale bool) {
	s.staleMu.Lock()
	defer s.staleMu.Unlock()
	return s.staleSince, !s.staleSince.IsZero()
}
