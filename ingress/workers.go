package ingress

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// workers runs the data path's tasks (a connection's handshake, a copy
// direction) on goroutines that have run one before. A fresh goroutine
// starts with a small stack and grows it by copying, frame by frame, as
// the TLS handshake or the first record's decryption goes deeper: 2–3% of
// a full handshake's CPU, and about 10 µs of a parked connection's
// wake-up, on the machine of bench/README.md. A goroutine whose task is
// done waits here for the next one, for a second at most and up to
// maxIdle of them; past that it ends. What the pool holds is bounded by
// maxIdle, not by the number of connections, and a quiet process comes back
// to the goroutines it started with: a parked connection still holds no
// goroutine.
type workers struct {
	tasks   chan func()  // unbuffered: a send succeeds only into a waiting worker
	idle    atomic.Int32 // workers waiting for a task
	live    atomic.Int32 // workers, waiting or not
	maxIdle int32
	idleFor time.Duration // how long a worker waits for a task before it ends
	stopped chan struct{}
	stop    func() // ends the waiting workers; later tasks run on fresh goroutines that end with them
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
	w := &workers{
		tasks:   make(chan func()),
		maxIdle: int32(idleWorkersPerP * runtime.GOMAXPROCS(0)),
		idleFor: workerIdleTime,
		stopped: make(chan struct{}),
	}
	w.stop = sync.OnceFunc(func() { close(w.stopped) })
	return w
}

// run starts task on a waiting worker, or on a new goroutine if none waits.
func (w *workers) run(task func()) {
	select {
	case w.tasks <- task:
	default:
		w.live.Add(1)
		go w.work(task)
	}
}

// work runs task, then the tasks it is handed while it waits, until the
// pool has enough waiting, none comes for idleFor, or the pool is stopped.
func (w *workers) work(task func()) {
	defer w.live.Add(-1)
	var expiry *time.Timer // in the runtime's timer heap only while the worker waits on it
	for {
		task()
		if w.idle.Add(1) > w.maxIdle {
			w.idle.Add(-1)
			return
		}
		if expiry == nil {
			expiry = time.NewTimer(w.idleFor)
		} else {
			expiry.Reset(w.idleFor)
		}
		select {
		case task = <-w.tasks:
			w.idle.Add(-1)
		case <-expiry.C:
			w.idle.Add(-1)
			return
		case <-w.stopped:
			w.idle.Add(-1)
			return
		}
	}
}
