// Package tasks runs a process's long-lived background parts (watchers,
// servers, signal loops) under one context: each has a name, a task that
// stops on its own is logged with it, and Stop cancels them all and waits.
// cmd wires its parts through it instead of writing the same goroutine,
// WaitGroup and log line for each.
package tasks

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"sync"

	"go.uber.org/zap"
)

// Group is a set of running tasks. The zero value is not usable; call New.
type Group struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	logger *zap.Logger
}

// New returns a Group whose tasks run until Stop. Tasks do not inherit a
// caller's cancellation: the caller decides when they stop (after the
// drain, say), so the context is fresh.
func New(logger *zap.Logger) *Group {
	ctx, cancel := context.WithCancel(context.Background())
	return &Group{ctx: ctx, cancel: cancel, logger: logger}
}

// Go runs task in its own goroutine with the group's context. A task that
// returns before Stop, or with an error other than the context's, is
// logged under name.
func (g *Group) Go(name string, task func(ctx context.Context) error) {
	g.wg.Go(func() {
		err := task(g.ctx)
		switch {
		case g.ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)):
			// Stopped because we asked.
		case err != nil:
			g.logger.Error(name+" stopped", zap.Error(err))
		default:
			g.logger.Warn(name + " stopped")
		}
	})
}

// Stop cancels every task and waits until all have returned.
func (g *Group) Stop() {
	g.cancel()
	g.wg.Wait()
}

// OnSignal calls fn each time sig arrives, until ctx ends: a task for Go.
// Catching the signal also keeps its default action (for SIGHUP: exit)
// away for as long as it runs.
func OnSignal(ctx context.Context, sig os.Signal, fn func()) error {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sig)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ch:
			fn()
		}
	}
}
