package routing

import (
	"context"
	"strings"
	"testing"
	"time"
)

// staleSource is a Source that has not answered since a moment.
type staleSource struct{ since time.Time }

func (staleSource) Refresh(ctx context.Context) error { return nil }
func (staleSource) Run(ctx context.Context) error     { return nil }
func (s staleSource) Stale() (time.Time, bool)        { return s.since, !s.since.IsZero() }

func TestStaleDetail(t *testing.T) {
	if got := StaleDetail(nil); got != "" {
		t.Errorf("no source: %q", got)
	}
	if got := StaleDetail(&Watcher{}); got != "" {
		t.Errorf("a file: %q", got)
	}
	if got := StaleDetail(staleSource{}); got != "" {
		t.Errorf("answering: %q", got)
	}
	since := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	got := StaleDetail(staleSource{since: since})
	if !strings.Contains(got, "routes stale") || !strings.Contains(got, "2026-12-04T10:00:00Z") {
		t.Errorf("stale: %q", got)
	}
}
