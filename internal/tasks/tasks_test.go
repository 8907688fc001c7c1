package tasks

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestGroup(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	g := New(zap.New(core))
	failed := make(chan struct{})
	g.Go("failing task", func(context.Context) error { defer close(failed); return errors.New("boom") })
	<-failed
	stopped := make(chan struct{})
	g.Go("waiting task", func(ctx context.Context) error {
		<-ctx.Done()
		close(stopped)
		return ctx.Err()
	})
	g.Stop()
	select {
	case <-stopped:
	default:
		t.Fatal("Stop returned before the task did")
	}
	var msgs []string
	for _, e := range logs.All() {
		msgs = append(msgs, e.Message)
	}
	if len(msgs) != 1 || msgs[0] != "failing task stopped" {
		t.Errorf("logged %q, want only the failing task", msgs)
	}
}
