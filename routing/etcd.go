package routing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// KVStore is what a route source needs of a revisioned key-value store:
// etcd, through internal/etcdkv. routing stays free of its client (and of
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

	mu         sync.Mutex
	entries    map[string]Entry // by key
	rev        int64            // the revision the entries reflect
	staleSince time.Time        // zero while etcd answers
}

// Key is where the instance dbid of orch lives under prefix.
func Key(prefix, orch, dbid string) string { return prefix + orch + "/" + dbid }

// Load reads every instance under the prefix and publishes the table.
func (s *EtcdSource) Load(ctx context.Context) error {
	kvs, rev, err := s.Store.Load(ctx, s.Prefix)
	if err != nil {
		return fmt.Errorf("loading routes from etcd %s: %w", s.Prefix, err)
	}
	entries := make(map[string]Entry, len(kvs))
	var bad []error
	for _, kv := range kvs {
		e, err := ParseEntry("etcd:"+kv.Key, kv.Value, s.Namespace)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		entries[kv.Key] = e
	}
	s.mu.Lock()
	s.entries, s.rev = entries, rev
	s.mu.Unlock()
	s.publish(len(kvs))
	for _, err := range bad {
		s.report(nil, 0, err)
	}
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
	var bad []error
	s.mu.Lock()
	for _, kv := range changes {
		if kv.ModRevision <= s.rev {
			continue // a reload after reconnecting already has it
		}
		if kv.Deleted {
			delete(s.entries, kv.Key)
			continue
		}
		e, err := ParseEntry("etcd:"+kv.Key, kv.Value, s.Namespace)
		if err != nil {
			bad = append(bad, err) // the key keeps its last good value
			continue
		}
		s.entries[kv.Key] = e
	}
	s.rev = max(s.rev, rev)
	s.mu.Unlock()
	s.publish(len(changes))
	for _, err := range bad {
		s.report(nil, 0, err)
	}
}

// publish builds the table from the entries, in key order so that a dbid
// given under two keys resolves the same way every time.
func (s *EtcdSource) publish(changes int) {
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
	s.report(t, changes, nil)
	for _, e := range dropped {
		s.report(nil, 0, fmt.Errorf("etcd: instance %s in orch %s is defined under more than one key; the first in key order wins", e.DBID, e.Orch))
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
		s.mu.Lock()
		wasStale := !s.staleSince.IsZero()
		switch {
		case err != nil && !wasStale:
			s.staleSince = time.Now()
		case err == nil:
			s.staleSince = time.Time{}
		}
		s.mu.Unlock()
		if err == nil && wasStale {
			if err := s.Load(ctx); err != nil {
				s.report(nil, 0, err)
			}
		}
	}
}

// Stale reports whether etcd has not answered since the time returned.
func (s *EtcdSource) Stale() (since time.Time, stale bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.staleSince, !s.staleSince.IsZero()
}
