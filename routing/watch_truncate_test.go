package routing

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/neo4j/private-ingress/internal/testenv"
)

// TestWatcherKeepsTableThroughTruncation: `: > routes.yaml`, cp over the
// file, or an editor saving in place leave it empty or comment-only for a
// moment. The running table stays, the error is reported, and the file
// written in full afterwards is loaded.
func TestWatcherKeepsTableThroughTruncation(t *testing.T) {
	w, reloads := newTestWatcher(t, testRoutes)
	if err := w.Reload(true); err != nil {
		t.Fatal(err)
	}
	<-reloads
	good := w.Holder.Load()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)

	for _, partial := range []string{"", "# written by the deploy job\n", "instances:\n"} {
		// In place, as a truncating writer does: same inode, new content.
		// Written again until heard: the watch may not be set up yet.
		var r reload
		testenv.WaitFor(t, "the watcher to report the partial file", func() bool {
			if err := os.WriteFile(w.Path, []byte(partial), 0o644); err != nil {
				t.Fatal(err)
			}
			select {
			case r = <-reloads:
				return true
			default:
				return false
			}
		})
		if r.err == nil || !strings.Contains(r.err.Error(), "instances: []") {
			t.Fatalf("partial file %q: OnReload(%v, %v); want an error", partial, r.t, r.err)
		}
		if w.Holder.Load() != good {
			t.Fatalf("partial file %q replaced the table", partial)
		}
	}
	if err := os.WriteFile(w.Path, []byte(testRoutes), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the full file to load", func() bool {
		select {
		case r := <-reloads:
			return r.err == nil && r.t.Len() == good.Len()
		default:
			return false
		}
	})
}
