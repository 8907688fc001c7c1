package routing

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/neo4j/private-ingress/internal/fswatch"
)

// Watcher keeps a Holder in step with a routes file. A file that fails to
// parse leaves the last good table in place; OnReload hears about both.
type Watcher struct {
	Path      string
	Namespace Namespace
	Holder    *Holder
	// OnReload, if set, is called after every attempt that found the file
	// changed (or was forced): with the new table, or with the error that
	// kept the old one.
	OnReload func(t *Table, err error)
	// Debounce groups the bursts of events one save produces. Zero means 100ms.
	Debounce time.Duration

	mu       sync.Mutex // serialises reloads
	lastRead []byte     // content of the last file read, good or bad
	lastErr  error      // what parsing lastRead gave
}

// Reload reads the file and publishes a new table. Unless force is set, a
// file whose content did not change since the last read is left alone (an
// event on a neighbouring file in the same directory, or a touch, neither
// rebuilds the table nor repeats an error).
func (w *Watcher) Reload(force bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	data, err := os.ReadFile(w.Path)
	if err != nil {
		err = fmt.Errorf("reading routes: %w", err)
		w.report(nil, err)
		return err
	}
	// The same bytes as last time give the same outcome: do not rebuild a
	// good table, nor log and count a known error again on every unrelated
	// event in the directory.
	if !force && w.lastRead != nil && bytes.Equal(data, w.lastRead) {
		return w.lastErr
	}
	w.lastRead = data
	t, err := Parse(w.Path, data, w.Namespace, w.Holder.Load())
	w.lastErr = err
	if err != nil {
		w.report(nil, err)
		return err
	}
	w.Holder.Store(t)
	w.report(t, nil)
	return nil
}

func (w *Watcher) report(t *Table, err error) {
	if w.OnReload != nil {
		w.OnReload(t, err)
	}
}

// Run watches the file's directory until ctx is done (see fswatch for why
// the directory).
func (w *Watcher) Run(ctx context.Context) error {
	debounce := w.Debounce
	if debounce <= 0 {
		debounce = 100 * time.Millisecond
	}
	dir := filepath.Dir(w.Path)
	return fswatch.Dirs(ctx, []string{dir}, debounce,
		func() { _ = w.Reload(false) }, // reported through OnReload
		func(err error) { w.report(nil, fmt.Errorf("watching %s: %w", dir, err)) })
}
