package routing

import (
	"context"
	"fmt"
	"time"
)

// Source is where a routing table comes from: the routes file (Watcher)
// or etcd (EtcdSource). Both publish into a Holder and report through
// their callback; the process holds one Source and needs no more of it.
type Source interface {
	// Refresh reads everything again and publishes the table: the first
	// load (whose error stops the start) and SIGHUP.
	Refresh(ctx context.Context) error
	// Run follows changes until ctx ends.
	Run(ctx context.Context) error
	// Stale reports since when the source has not answered, if it has
	// not; a file is never stale.
	Stale() (since time.Time, stale bool)
}

var (
	_ Source = (*Watcher)(nil)
	_ Source = (*EtcdSource)(nil)
)

// Refresh re-reads the file, changed or not.
func (w *Watcher) Refresh(context.Context) error { return w.Reload(true) }

// Stale is never true for a file: it is always there to read.
func (w *Watcher) Stale() (time.Time, bool) { return time.Time{}, false }

// Refresh loads the prefix again, bounded by Timeout (a SIGHUP while etcd
// is away must not hang on it).
func (s *EtcdSource) Refresh(ctx context.Context) error {
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.Timeout)
		defer cancel()
	}
	return s.Load(ctx)
}

// StaleDetail is what /readyz adds to "ready" about src: nothing while it
// answers (or for no source at all), since when it has not otherwise.
func StaleDetail(src Source) string {
	if src == nil {
		return ""
	}
	since, stale := src.Stale()
	if !stale {
		return ""
	}
	return fmt.Sprintf("routes stale: etcd has not answered since %s (%s); serving the last table",
		since.UTC().Format(time.RFC3339), time.Since(since).Round(time.Second))
}
