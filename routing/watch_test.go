package routing

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/internal/testenv"
)

// waitFor bounds every wait on the watcher. It is generous: nothing in
// these tests sleeps, the bound only turns a lost event into a failure.
const waitFor = testenv.WaitTimeout

type reload struct {
	t   *Table
	err error
}

// replaceFile writes data to path the way config managers do: a temporary
// file in the same directory renamed over path.
func replaceFile(t *testing.T, path, data string) {
	t.Helper()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".routes-*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		t.Fatal(err)
	}
}

func newTestWatcher(t *testing.T, initial string) (*Watcher, chan reload) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "routes.yaml")
	replaceFile(t, path, initial)
	reloads := make(chan reload, 100)
	w := &Watcher{
		Path:      path,
		Namespace: testNS,
		Holder:    &Holder{},
		Debounce:  20 * time.Millisecond,
		OnReload:  func(t *Table, err error) { reloads <- reload{t, err} },
	}
	return w, reloads
}

// noReload fails if OnReload has been called.
func noReload(t *testing.T, reloads chan reload, what string) {
	t.Helper()
	select {
	case r := <-reloads:
		t.Fatalf("%s: OnReload(%v, %v); want no call", what, r.t, r.err)
	default:
	}
}

func TestWatcherReload(t *testing.T) {
	w, reloads := newTestWatcher(t, testRoutes)

	// The first, forced load publishes and reports.
	if err := w.Reload(true); err != nil {
		t.Fatalf("Reload(true): %v", err)
	}
	r := <-reloads // OnReload runs inside Reload
	if r.err != nil || r.t == nil || r.t.Len() != 2 || w.Holder.Load() != r.t {
		t.Fatalf("first load: OnReload(%v, %v), Holder has %p", r.t, r.err, w.Holder.Load())
	}
	first := r.t

	// Unchanged: nothing happens unless forced.
	if err := w.Reload(false); err != nil {
		t.Fatalf("Reload(false) of an unchanged file: %v", err)
	}
	noReload(t, reloads, "Reload(false) of an unchanged file")
	replaceFile(t, w.Path, testRoutes)
	if err := w.Reload(false); err != nil {
		t.Fatalf("Reload(false) of a rewritten, unchanged file: %v", err)
	}
	noReload(t, reloads, "Reload(false) of a rewritten, unchanged file")
	if w.Holder.Load() != first {
		t.Fatal("an unchanged file replaced the table")
	}
	if err := w.Reload(true); err != nil {
		t.Fatalf("Reload(true) of an unchanged file: %v", err)
	}
	if r := <-reloads; r.err != nil || r.t == first || w.Holder.Load() != r.t {
		t.Fatalf("forced reload: OnReload(%p, %v); want a new table published", r.t, r.err)
	}

	// A broken file keeps the last good table and reports the error.
	good := w.Holder.Load()
	replaceFile(t, w.Path, "instances:\n  - dbid: a\n    orch: \"0001\"\n")
	err := w.Reload(false)
	if err == nil || !strings.HasPrefix(err.Error(), w.Path+":3: ") {
		t.Fatalf("Reload of a broken file: %v; want a %s:3: error", err, w.Path)
	}
	if r := <-reloads; r.t != nil || r.err == nil {
		t.Fatalf("broken file: OnReload(%v, %v); want (nil, error)", r.t, r.err)
	}
	if w.Holder.Load() != good {
		t.Fatal("a broken file replaced the table")
	}

	// A missing file is an error too, and keeps the table.
	if err := os.Remove(w.Path); err != nil {
		t.Fatal(err)
	}
	if err := w.Reload(false); err == nil {
		t.Fatal("Reload of a missing file succeeded")
	}
	if r := <-reloads; r.t != nil || r.err == nil {
		t.Fatalf("missing file: OnReload(%v, %v); want (nil, error)", r.t, r.err)
	}
	if w.Holder.Load() != good {
		t.Fatal("a missing file replaced the table")
	}
}

// Reload without OnReload set must not panic.
func TestWatcherReloadWithoutCallback(t *testing.T) {
	w, _ := newTestWatcher(t, testRoutes)
	w.OnReload = nil
	if err := w.Reload(true); err != nil {
		t.Fatal(err)
	}
	replaceFile(t, w.Path, "not: [valid")
	if err := w.Reload(false); err == nil {
		t.Fatal("broken file accepted")
	}
	if w.Holder.Load().Len() != 2 {
		t.Fatal("broken file replaced the table")
	}
}

// runWatch is a Watcher whose Run loop is going, with the channels a test
// reads its progress from.
type runWatch struct {
	t       *testing.T
	w       *Watcher
	reloads chan reload
	done    chan error // Run's result
	timeout *time.Timer
}

// startRun starts w.Run in the background. Cleanup cancels it and checks
// that it returns without an error.
func startRun(t *testing.T, w *Watcher, reloads chan reload) *runWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitFor):
			t.Error("Run did not return after its context was cancelled")
		}
	})
	timeout := time.NewTimer(waitFor)
	t.Cleanup(func() { timeout.Stop() })
	return &runWatch{t: t, w: w, reloads: reloads, done: done, timeout: timeout}
}

// next returns the next OnReload call, failing if Run returns or the
// timeout fires first.
func (rw *runWatch) next(what string) reload {
	t := rw.t
	t.Helper()
	select {
	case r := <-rw.reloads:
		return r
	case err := <-rw.done:
		t.Fatalf("%s: Run returned early: %v", what, err)
	case <-rw.timeout.C:
		t.Fatalf("%s: no OnReload within %v", what, waitFor)
	}
	panic("unreachable")
}

// firstRewrite replaces the file with data and returns the OnReload call
// for it. Run has no "ready" signal and events before its watch is in
// place are lost, so the same content is written again (the ticker paces
// the rewrites) until it is seen; once published, the identical rewrites
// are ignored.
func (rw *runWatch) firstRewrite(data string) reload {
	t := rw.t
	t.Helper()
	replaceFile(t, rw.w.Path, data)
	retry := time.NewTicker(200 * time.Millisecond)
	defer retry.Stop()
	for {
		select {
		case r := <-rw.reloads:
			return r
		case err := <-rw.done:
			t.Fatalf("Run returned early: %v", err)
		case <-rw.timeout.C:
			t.Fatalf("new file: no OnReload within %v", waitFor)
		case <-retry.C:
			replaceFile(t, rw.w.Path, data)
		}
	}
}

func TestWatcherRun(t *testing.T) {
	w, reloads := newTestWatcher(t, testRoutes)
	if err := w.Reload(true); err != nil {
		t.Fatalf("Reload(true): %v", err)
	}
	first := (<-reloads).t
	const host = "abcd1234.production-orch-0000.neo4j.io"
	inst, _ := first.Lookup(host)
	failed := inst.Pool(Bolt).Order(t0, nil)[0]
	failed.Fail(t0, time.Hour)

	rw := startRun(t, w, reloads)

	// 1. A new file, replaced by rename, is published (step 2 checks that
	// the identical rewrites made until then are ignored).
	v2 := testRoutes + "  - {dbid: new1, orch: \"0000\", backends: {bolt: [\"10.0.2.1:7687\"]}}\n"
	r := rw.firstRewrite(v2)
	if r.err != nil || r.t == nil || r.t.Len() != 3 {
		t.Fatalf("new file: OnReload(%v, %v); want a 3-instance table", r.t, r.err)
	}
	if w.Holder.Load() != r.t || !r.t.Has("new1", "0000") {
		t.Fatal("new file: table not published")
	}
	// Health survived the reload made by the watcher.
	inst, _ = r.t.Lookup(host)
	if b := inst.Pool(Bolt).Order(t0, nil); !containsBackend(b, failed) || failed.Available(t0) {
		t.Error("the watcher's reload lost a backend's health")
	}
	v2Table := r.t

	// 2. An unchanged rewrite, and an event on a neighbouring file, do not
	// call OnReload: the next call must be the one for step 3.
	replaceFile(t, w.Path, v2)
	if err := os.WriteFile(filepath.Join(filepath.Dir(w.Path), "neighbour.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	// 3. A broken file: OnReload hears the error, the Holder keeps v2.
	rw.checkBrokenFile(v2Table)
	// 4. A good file again is published.
	rw.checkFixedFile(v2Table)
}

// checkBrokenFile is step 3 of TestWatcherRun: after a broken file OnReload
// hears the error, and the Holder keeps v2Table.
func (rw *runWatch) checkBrokenFile(v2Table *Table) {
	t, w := rw.t, rw.w
	rw.timeout.Reset(waitFor)
	replaceFile(t, w.Path, "instances:\n  - dbid: a\n    backends: \"10.0.0.1:7687\"\n")
	r := rw.next("broken file")
	if r.t != nil || r.err == nil {
		t.Fatalf("after an unchanged rewrite and a broken file: OnReload(%v, %v); want (nil, error) first", r.t, r.err)
	}
	if !strings.Contains(r.err.Error(), w.Path+":") {
		t.Errorf("broken file error %q does not name %s", r.err, w.Path)
	}
	if w.Holder.Load() != v2Table {
		t.Fatal("broken file replaced the table")
	}
}

// checkFixedFile is step 4 of TestWatcherRun: a good file again is
// published, and v2Table, handed out earlier, is unaffected.
func (rw *runWatch) checkFixedFile(v2Table *Table) {
	t, w := rw.t, rw.w
	rw.timeout.Reset(waitFor)
	v3 := "instances:\n  - {dbid: only, orch: \"0000\", public: true}\n"
	replaceFile(t, w.Path, v3)
	r := rw.next("fixed file")
	if r.err != nil || r.t == nil || r.t.Len() != 1 || !r.t.Has("only", "0000") {
		t.Fatalf("fixed file: OnReload(%v, %v); want the 1-instance table", r.t, r.err)
	}
	if w.Holder.Load() != r.t {
		t.Fatal("fixed file: table not published")
	}
	// Tables handed out earlier are unaffected.
	if _, res := v2Table.Lookup("new1.production-orch-0000.neo4j.io"); res != Found {
		t.Error("a reload changed an earlier table")
	}
}

// Run returns an error when the directory cannot be watched.
func TestWatcherRunMissingDir(t *testing.T) {
	w := &Watcher{Path: filepath.Join(t.TempDir(), "absent", "routes.yaml"), Namespace: testNS, Holder: &Holder{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run on a missing directory returned nil")
		}
	case <-time.After(waitFor):
		t.Fatal("Run on a missing directory did not return")
	}
}

func containsBackend(bs []*Backend, b *Backend) bool {
	for _, x := range bs {
		if x == b {
			return true
		}
	}
	return false
}

// The watcher compares a file with the content it last read, not only with
// the last good one: Watcher's doc says OnReload is called "after every
// attempt that found the file changed (or was forced)", and that an
// unchanged file is left alone.
func TestWatcherBrokenFileThenUnchangedOrReverted(t *testing.T) {
	w, reloads := newTestWatcher(t, testRoutes)
	if err := w.Reload(true); err != nil {
		t.Fatal(err)
	}
	good := (<-reloads).t

	broken := "instances:\n  - dbid: a\n    orch: \"0001\"\n"
	replaceFile(t, w.Path, broken)
	_ = w.Reload(false)
	if r := <-reloads; r.err == nil {
		t.Fatalf("broken file: OnReload(%v, nil); want an error", r.t)
	}

	// An event on a neighbouring file while the broken file is unchanged:
	// the file did not change, so OnReload should not hear the same error
	// again (each unrelated event would log and count another failure).
	_ = w.Reload(false)
	select {
	case r := <-reloads:
		t.Errorf("unchanged broken file: OnReload(%v, %v) called again; want no call", r.t, r.err)
	default:
	}

	// Reverting to the last good content is a change: OnReload should say
	// the file is good again (else the operator's last word is the error).
	replaceFile(t, w.Path, testRoutes)
	_ = w.Reload(false)
	select {
	case r := <-reloads:
		if r.err != nil || r.t == nil {
			t.Errorf("reverted file: OnReload(%v, %v); want a table", r.t, r.err)
		}
	default:
		t.Errorf("file reverted to the last good content after an error: OnReload not called")
	}
	if w.Holder.Load().Len() != good.Len() {
		t.Error("reverted file: wrong table")
	}
}
