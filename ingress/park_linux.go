package ingress

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// parker holds the copy directions whose source has been quiet for
// timeouts.park: their goroutines have ended, and their sources' sockets
// wait on one epoll set of its own until they are readable (data, FIN,
// reset) and the connection resumes on fresh goroutines. An idle
// connection then costs its buffers and sockets but no goroutine stacks,
// which were most of what a pool of idle Bolt connections held. Go's own
// poller keeps its registration of the same sockets (a socket may sit in
// several epoll sets), and watches the epoll set itself: the loop that
// drains it waits in the runtime's poller like any socket read, with no
// thread blocked in epoll_wait and no extra thread to wake.
type parker struct {
	epoll     *os.File // the epoll set, nonblocking: pollable by the runtime
	rc        syscall.RawConn
	mu        sync.Mutex
	dirs      map[uint64]parkedDir // by epoll data: the directions that ever parked, until their connection ends
	nextID    uint64
	startOnce sync.Once
	started   bool // set in startOnce
	stopOnce  sync.Once
	done      chan struct{}
}

// parkedDir is one direction of a connection's copy.
type parkedDir struct {
	p   *pipe
	dir int
}

// newParker makes the epoll set; nil (no parking) if the kernel refuses.
func newParker() (*parker, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return nil, fmt.Errorf("epoll set nonblocking: %w", err)
	}
	f := os.NewFile(uintptr(epfd), "parker epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("epoll set: %w", err)
	}
	return &parker{epoll: f, rc: rc, dirs: map[uint64]parkedDir{}, done: make(chan struct{})}, nil
}

// start runs the loop that resumes connections whose socket is readable.
func (k *parker) start() {
	if k == nil {
		return
	}
	k.startOnce.Do(func() {
		k.started = true
		go k.loop()
	})
}

// stop ends the loop and closes the epoll set, once every connection is
// done with.
func (k *parker) stop() {
	if k == nil {
		return
	}
	k.stopOnce.Do(func() {
		k.startOnce.Do(func() {}) // a loop not started by now never will be
		k.epoll.Close()           // the loop's wait ends with an error
		if k.started {
			<-k.done
		}
	})
}

// loop resumes the connections whose sockets are ready, until the epoll
// set is closed. It waits in the runtime's poller: epoll_wait itself never
// blocks. One RawRead lasts the loop's life, so that each readiness costs
// one epoll_wait: a RawRead per batch would forget the readiness it starts
// from and begin each wait with a call that finds nothing.
func (k *parker) loop() {
	defer close(k.done)
	events := make([]syscall.EpollEvent, 128)
	k.rc.Read(func(epfd uintptr) bool {
		for {
			n, err := syscall.EpollWait(int(epfd), events, 0)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			k.resumeReady(events[:max(n, 0)])
			if n < len(events) {
				return false // drained: wait for the next readiness
			}
		}
	}) // returns once the set is closed
}

// resumeReady resumes the connections of ready events.
func (k *parker) resumeReady(events []syscall.EpollEvent) {
	for _, ev := range events {
		id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
		k.mu.Lock()
		d, ok := k.dirs[id]
		k.mu.Unlock()
		if ok {
			// Both directions: data in one is usually a request
			// whose answer the other is about to carry, and a
			// running direction waits in the runtime's poller, one
			// hop fewer than through this set.
			d.p.resume(d.dir)
			d.p.resume(1 - d.dir)
		}
	}
}

// park arms the epoll registration of d's source socket, one shot: the
// first readiness resumes it. The first park of a direction adds the
// socket; later ones re-arm it. The kernel drops the registration when the
// socket is closed.
func (k *parker) park(rc syscall.RawConn, d parkedDir, id *uint64) error {
	k.mu.Lock()
	op := syscall.EPOLL_CTL_MOD
	if *id == 0 {
		k.nextID++
		*id = k.nextID
		k.dirs[*id] = d
		op = syscall.EPOLL_CTL_ADD
	}
	k.mu.Unlock()
	ev := syscall.EpollEvent{
		Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT,
		Fd:     int32(uint32(*id)), Pad: int32(uint32(*id >> 32)),
	}
	var err error
	// Control holds both descriptors open meanwhile: a socket being
	// closed is refused, never a number the kernel has given to another.
	cerr := k.rc.Control(func(epfd uintptr) {
		if cerr := rc.Control(func(fd uintptr) { err = syscall.EpollCtl(int(epfd), op, int(fd), &ev) }); cerr != nil {
			err = cerr
		}
	})
	if cerr != nil {
		return cerr
	}
	return err
}

// forget drops a finished connection's directions.
func (k *parker) forget(ids [2]uint64) {
	if k == nil {
		return
	}
	k.mu.Lock()
	for _, id := range ids {
		if id != 0 {
			delete(k.dirs, id)
		}
	}
	k.mu.Unlock()
}
