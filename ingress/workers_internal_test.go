package ingress

import (
	"bytes"
	"runtime"
	"sync"
	"testing"
	"time"
)

// waitIdle waits until w has want workers waiting for a task.
func waitIdle(t *testing.T, w *workers, want int) {
	t.Helper()
	for {
		w.mu.Lock()
		n := len(w.waiting)
		w.mu.Unlock()
		if n == want {
			return
		}
		runtime.Gosched()
	}
}

// TestWorkersReuseAWaitingGoroutine: a task run while a worker waits goes
// to that worker, not to a new goroutine.
func TestWorkersReuseAWaitingGoroutine(t *testing.T) {
	w := newWorkers()
	defer w.stop()
	stacks := make(chan []byte, 2)
	marker := func() {
		buf := make([]byte, 64)
		stacks <- buf[:runtime.Stack(buf, false)] // "goroutine N [running]:"
	}
	w.run(marker)
	first := <-stacks
	waitIdle(t, w, 1)
	w.run(marker)
	second := <-stacks
	if a, b := bytes.Fields(first)[1], bytes.Fields(second)[1]; !bytes.Equal(a, b) {
		t.Errorf("the second task ran on goroutine %s, want the first task's, %s", b, a)
	}
	if n := w.live.Load(); n != 1 {
		t.Errorf("%d workers, want 1", n)
	}
}

// TestWorkersKeepAtMostMaxIdle: after a burst, maxIdle workers wait and
// the rest end.
func TestWorkersKeepAtMostMaxIdle(t *testing.T) {
	w := newWorkers()
	w.maxIdle = 3
	defer w.stop()
	release := make(chan struct{})
	var done sync.WaitGroup
	const burst = 10
	for range burst {
		done.Add(1)
		w.run(func() { <-release; done.Done() })
	}
	if n := int(w.live.Load()); n != burst {
		t.Fatalf("%d workers for %d blocked tasks", n, burst)
	}
	close(release)
	done.Wait()
	for int(w.live.Load()) != w.maxIdle {
		runtime.Gosched() // the workers past maxIdle are ending
	}
	waitIdle(t, w, w.maxIdle)
}

// TestWorkersEndWhenQuiet: a worker that waits idleFor without a task ends.
func TestWorkersEndWhenQuiet(t *testing.T) {
	w := newWorkers()
	defer w.stop()
	w.idleFor = time.Millisecond
	ran := make(chan struct{})
	w.run(func() { close(ran) })
	<-ran
	for w.live.Load() != 0 {
		runtime.Gosched() // the worker waits a millisecond, then ends
	}
	// And a worker that was given a task in time waits afresh after it.
	w.idleFor = time.Hour
	w.run(func() {})
	waitIdle(t, w, 1)
	w.run(func() {})
	waitIdle(t, w, 1)
	if n := w.live.Load(); n != 1 {
		t.Errorf("%d workers, want 1", n)
	}
}

// TestWorkersStop: stop ends the waiting workers; a task run after it
// still runs, and its goroutine ends with it.
func TestWorkersStop(t *testing.T) {
	w := newWorkers()
	var done sync.WaitGroup
	for range 4 {
		done.Add(1)
		w.run(done.Done)
	}
	done.Wait()
	w.stop()
	w.stop() // twice is fine: Shutdown's two ways out both stop
	for w.live.Load() != 0 {
		runtime.Gosched() // the waiting workers are ending
	}
	ran := make(chan struct{})
	w.run(func() { close(ran) })
	<-ran
	for w.live.Load() != 0 {
		runtime.Gosched() // the task's goroutine ends after it
	}
}

// TestWorkersRunConcurrently: tasks run from many goroutines at once all
// run, once each, also when waiting workers expire as tasks come (under
// -race, the pool's hand-offs are checked too).
func TestWorkersRunConcurrently(t *testing.T) {
	for _, idleFor := range []time.Duration{workerIdleTime, time.Microsecond} {
		t.Run(idleFor.String(), func(t *testing.T) {
			w := newWorkers()
			w.idleFor = idleFor
			defer w.stop()
			var (
				mu   sync.Mutex
				seen = map[int]int{}
				done sync.WaitGroup
			)
			for g := range 8 {
				done.Go(func() {
					var tasks sync.WaitGroup
					for i := range 200 {
						tasks.Add(1)
						w.run(func() {
							mu.Lock()
							seen[g*1000+i]++
							mu.Unlock()
							tasks.Done()
						})
					}
					tasks.Wait()
				})
			}
			done.Wait()
			if len(seen) != 8*200 {
				t.Fatalf("%d distinct tasks ran, want %d", len(seen), 8*200)
			}
			for k, n := range seen {
				if n != 1 {
					t.Fatalf("task %d ran %d times", k, n)
				}
			}
		})
	}
}
