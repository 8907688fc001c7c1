package ingress

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// workers runs the data path's tasks (a connection's handshake, a copy
// direction) on goroutines that have run one before. A fresh goroutine
// starts with a small stack and grows it by copying, frame by frame, as
// the TLS handshake or the first record's decryption goes deeper: 2.8% of
// an ECDSA handshake's CPU, and about 10 µs of a parked connection's
// wake-up, on the machine of bench/README.md. A goroutine whose task is
// done waits for the next one, for a second at most and up to maxIdle of
// them; past that it ends. What the pool holds is bounded by maxIdle, not
// by the number of connections, and a quiet process comes back to the
// goroutines it started with: a parked connection still holds no
// goroutine.
type workers struct {
	maxIdle int
	idleFor time.Duration // how long a worker waits for a task before it ends
	live    atomic.Int32  // workers, waiting or not

	mu      sync.Mutex
	waiting []*worker // the last to finish, whose stack and caches are warmest, is taken first
	stopped bool
}

// worker is one goroutine of the pool; run hands it a task through tasks
// (capacity 1: never blocks) once it has taken it out of waiting.
type worker struct {
	tasks chan func() // a nil task ends the worker
}

// idleWorkersPerP bounds the waiting workers by GOMAXPROCS: enough for
// the handshakes and wake-ups that one P starts between two of its
// workers finishing.
const idleWorkersPerP = 8

// workerIdleTime is how long a worker waits for a task. Under load a
// task comes within microseconds; a worker that waits longer has had its
// stack shrunk by the garbage collector, and keeping it saves nothing.
const workerIdleTime = time.Second

func newWorkers() *workers {
	return &workers{maxIdle: idleWorkersPerP * runtime.GOMAXPROCS(0), idleFor: workerIdleTime}
}

// run starts task on a waiting worker, or on a new goroutine if none waits.
func (p *workers) run(task func()) {
	p.mu.Lock()
	if n := len(p.waiting); n > 0 {
		w := p.waiting[n-1]
		p.waiting[n-1] = nil
		p.waiting = p.waiting[:n-1]
		p.mu.Unlock()
		w.tasks <- task
		return
	}
	p.mu.Unlock()
	p.live.Add(1)
	go p.work(&worker{tasks: make(chan func(), 1)}, task)
}

// work runs task, then the tasks it is handed while it waits, until the
// pool has enough waiting, none comes for idleFor, or the pool stops.
func (p *workers) work(w *worker, task func()) {
	defer p.live.Add(-1)
	var expiry *time.Timer // in the runtime's timer heap only while the worker waits on it
	for task != nil {
		task()
		if !p.wait(w) {
			return
		}
		if expiry == nil {
			expiry = time.NewTimer(p.idleFor)
		} else {
			expiry.Reset(p.idleFor)
		}
		select {
		case task = <-w.tasks:
		case <-expiry.C:
			if p.leave(w) {
				return
			}
			task = <-w.tasks // run took this worker as it expired: its task is on the way
		}
	}
}

// wait puts w among the waiting workers; false if it should end instead.
func (p *workers) wait(w *worker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || len(p.waiting) >= p.maxIdle {
		return false
	}
	p.waiting = append(p.waiting, w)
	return true
}

// leave takes w out of the waiting workers; false if run took it first.
func (p *workers) leave(w *worker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.Index(p.waiting, w)
	if i < 0 {
		return false
	}
	p.waiting = slices.Delete(p.waiting, i, i+1)
	return true
}

// stop ends the waiting workers. Tasks run after it still run, each on a
// goroutine that ends with it.
func (p *workers) stop() {
	p.mu.Lock()
	waiting := p.waiting
	p.waiting, p.stopped = nil, true
	p.mu.Unlock()
	for _, w := range waiting {
		w.tasks <- nil
	}
}
