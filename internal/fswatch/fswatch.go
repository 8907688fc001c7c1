// Package fswatch calls back when files in a set of directories change,
// after the burst of events one save produces has settled. It watches
// directories rather than files because editors, config managers and
// certificate writers replace files by rename, which would orphan a watch
// on the old inode.
package fswatch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Dirs watches dirs until ctx is done and calls changed once per settled
// burst of changes (debounce after the last event). A watch error other
// than an event overflow (which is treated as a change) goes to failed, if
// set. It returns an error only if the watch cannot start.
func Dirs(ctx context.Context, dirs []string, debounce time.Duration, changed func(), failed func(error)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("starting a file watch: %w", err)
	}
	defer w.Close()
	for _, d := range dirs {
		if err := w.Add(d); err != nil {
			return fmt.Errorf("watching %s: %w", d, err)
		}
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Has(fsnotify.Chmod) && !ev.Has(fsnotify.Write) {
				continue
			}
			timer.Reset(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				timer.Reset(debounce) // events were lost: look again
			} else if failed != nil {
				failed(err)
			}
		case <-timer.C:
			changed()
		}
	}
}
