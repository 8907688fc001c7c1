package ingress

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/neo4j/private-ingress/routing"
)

// copyBufSize holds one full TLS record of plaintext: a tls.Conn returns
// no more from one Read, so the client→backend direction needs no more.
const copyBufSize = 16 << 10

// burstBufSize is the backend→client direction's burst buffer: four
// records' worth from one read(2) on the plain TCP side saves three reads
// in four, about 8% of the CPU of a download here (crypto/tls still writes
// one record at a time). It is held only while data moves.
const burstBufSize = 64 << 10

// idleBufSize is what a direction holds while it waits for its peer: most
// connections are idle most of the time, and a read blocks until the peer
// sends, so the buffer it blocks with is the memory an idle connection
// costs. A read that fills it means a burst: the rest moves with a pooled
// full-size buffer, given back once a read fills less than half of it.
const idleBufSize = 512

// The copy buffers' pools. The client side is a tls.Conn, so splice(2)
// cannot apply and io.Copy would allocate 32 KiB per direction per
// connection; pooling keeps memory proportional to connections moving data.
var (
	recordPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}
	burstPool  = sync.Pool{New: func() any { b := make([]byte, burstBufSize); return &b }}
)

// errIdle ends a connection that moved no byte either way for timeouts.idle.
var errIdle = errors.New("idle timeout")

// errParked ends a direction's goroutine, not the connection: its source
// was quiet for timeouts.park, and it waits on the parker (park_linux.go).
var errParked = errors.New("parked")

// halfCloser is a connection whose write side can be shut alone.
type halfCloser interface{ CloseWrite() error }

// Directions of a pipe, indexes into its per-direction state.
const (
	up   = iota // client to backend
	down        // backend to client
)

// Direction states: copying on a goroutine, or parked without one.
const (
	copying int32 = iota
	parked
)

// pipe is the shared state of the two copy directions of one connection.
type pipe struct {
	srv       *Server
	client    *tls.Conn
	raw       *conn
	backend   net.Conn
	idle      time.Duration
	parkAfter time.Duration // 0: never park
	last      atomic.Int64  // unix nanoseconds of the last byte moved either way
	running   atomic.Int32  // directions still copying, parked or not
	n         [2]int64      // bytes moved; each written only by its direction
	errs      [2]error
	// backendWriteFailed: the client→backend direction ended on a write
	// to the backend (written before that direction finishes).
	backendWriteFailed bool

	// Parking (park_linux.go): each direction's state, its source socket,
	// its epoll registration, and its idle timer while parked.
	state      [2]atomic.Int32
	src        [2]syscall.RawConn // nil: that direction never parks
	parkID     [2]uint64
	idleTimer  [2]*time.Timer
	goroutines atomic.Int32 // copy goroutines alive: 0 with directions open is a parked connection
	closed     atomic.Bool  // a side was closed from outside the copy: parked directions resume to end
}

// startCopy copies client↔backend on two workers (workers.go) and returns
// at once, propagating half-closes. A direction whose source is
// quiet for timeouts.park gives up its goroutine and waits on the parker,
// so that an idle connection holds no stack at all. The last direction to
// finish closes the backend, records the bytes moved (in: client→backend)
// and the errors that were not the ordinary end of a connection, and
// finishes the connection.
func (s *Server) startCopy(c *conn, client *tls.Conn, backend net.Conn) {
	p := &pipe{srv: s, client: client, raw: c, backend: backend, idle: s.cfg.Timeouts.Idle}
	if s.parker != nil {
		p.parkAfter = s.cfg.Timeouts.Park
		p.src[up], p.src[down] = rawConn(client.NetConn()), rawConn(backend)
	}
	p.last.Store(time.Now().UnixNano())
	p.running.Store(2)
	p.goroutines.Store(2)
	c.pipe.Store(p)
	s.workers.run(func() { s.copyUp(p) })
	s.workers.run(func() { s.copyDown(p) })
}

// parkedChanged counts a connection that lost (1) or regained (-1) its
// last copy goroutine.
func (s *Server) parkedChanged(svc routing.Service, delta int64) {
	s.parked.Add(delta)
	s.metrics.parked(svc, float64(delta))
}

// rawConn is the socket beneath c, for the parker; nil if there is none.
func rawConn(c net.Conn) syscall.RawConn {
	if tc, ok := c.(*tls.Conn); ok { // a TLS backend leg
		c = tc.NetConn()
	}
	if cc, ok := c.(*conn); ok {
		if cc.tcp == nil {
			return nil // a listener that hides the socket
		}
		c = cc.tcp
	}
	sc, ok := c.(syscall.Conn)
	if !ok || sc == nil {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// copyUp and copyDown are the two directions, named so that they read
// clearly in goroutine dumps.
func (s *Server) copyUp(p *pipe) {
	defer p.end(up)
	p.errs[up] = p.copy(up, p.client.NetConn(), p.backend, p.client, &recordPool, func() error {
		if hc, ok := p.backend.(halfCloser); ok {
			return hc.CloseWrite()
		}
		return nil
	})
}

func (s *Server) copyDown(p *pipe) {
	defer p.end(down)
	p.errs[down] = p.copy(down, p.backend, p.client, p.backend, &burstPool, func() error {
		// Backend finished sending: close_notify, then the TCP FIN that
		// tls.Conn.CloseWrite does not send.
		err := p.client.CloseWrite()
		p.raw.CloseWrite()
		return err
	})
}

// end is the end of a direction's goroutine: it parks the direction, or
// finishes it. A panic ends this connection only.
func (p *pipe) end(dir int) {
	if r := recover(); r != nil {
		p.srv.recovered(r)
		p.errs[dir] = fmt.Errorf("panic: %v", r)
	}
	if p.errs[dir] == errParked {
		p.park(dir) // the goroutine's last act: the direction may resume at once on another
		return
	}
	p.finish(dir)
}

// finish ends one direction. A failure closes both sides, which unblocks
// (or resumes) the other direction; the last direction to finish reports
// the connection done.
func (p *pipe) finish(dir int) {
	switch {
	case p.errs[dir] == nil:
	case dir == up && p.backendWriteFailed:
		// The backend went while the client's bytes were on their way:
		// what it said as it went (a TLS 1.3 backend's alert about the
		// client certificate) is still to be read, so the other
		// direction reads on, for a second at most, instead of having
		// the socket closed under it.
		p.client.Close()
		p.backend.SetReadDeadline(time.Now().Add(time.Second))
		p.closedOutside()
	default:
		p.closeBoth()
	}
	left := p.running.Add(-1)
	if p.goroutines.Add(-1) == 0 && left > 0 {
		p.srv.parkedChanged(p.raw.l.svc, 1) // the other direction is parked
	}
	if left == 0 {
		p.backend.Close()
		p.srv.parker.forget(p.parkID)
		log := &p.raw.log
		log.in, log.out = p.n[up], p.n[down]
		log.err = errors.Join(classify(p.errs[up], "client to backend"), classify(explainBackendAlert(p.errs[down]), "backend to client"))
		p.raw.finish()
	}
}

// closeBoth closes both sides and resumes a parked direction, which then
// finds its source closed and finishes.
func (p *pipe) closeBoth() {
	p.client.Close()
	p.backend.Close()
	p.closedOutside()
}

// closedOutside resumes the parked directions of a connection one of whose
// sides was closed: a closed socket leaves the epoll set without an event.
func (p *pipe) closedOutside() {
	p.closed.Store(true)
	p.resume(up)
	p.resume(down)
}

// park waits for dir's source to be readable without a goroutine. If the
// socket cannot be watched, or the connection was closed meanwhile, the
// direction resumes at once.
func (p *pipe) park(dir int) {
	p.errs[dir] = nil
	p.releaseReadBuffers(dir)
	if p.idle > 0 {
		wait := time.Until(time.Unix(0, p.last.Load()).Add(p.idle))
		p.idleTimer[dir] = time.AfterFunc(wait, func() { p.resume(dir) })
	}
	p.state[dir].Store(parked)
	if p.goroutines.Add(-1) == 0 {
		p.srv.parkedChanged(p.raw.l.svc, 1)
	}
	err := p.srv.parker.park(p.src[dir], parkedDir{p, dir}, &p.parkID[dir])
	if err != nil || p.closed.Load() {
		p.resume(dir)
	}
}

// releaseReadBuffers gives back what dir's source, if it is a tls.Conn,
// keeps from earlier reads (tlsbuffers.go). Called before the direction is
// marked parked, when nothing else can read that source.
func (p *pipe) releaseReadBuffers(dir int) {
	src := net.Conn(p.client)
	if dir == down {
		src = p.backend // a tls.Conn on a TLS backend leg
	}
	if tc, ok := src.(*tls.Conn); ok {
		tlsBuffers.release(tc)
	}
}

// resume gives a parked direction a goroutine again; it does nothing to
// one that is copying.
func (p *pipe) resume(dir int) {
	if !p.state[dir].CompareAndSwap(parked, copying) {
		return
	}
	if t := p.idleTimer[dir]; t != nil {
		t.Stop()
	}
	if p.goroutines.Add(1) == 1 {
		p.srv.parkedChanged(p.raw.l.svc, -1)
	}
	if dir == up {
		p.srv.workers.run(func() { p.srv.copyUp(p) })
	} else {
		p.srv.workers.run(func() { p.srv.copyDown(p) })
	}
}

// copy moves bytes from src to dst until src ends (then calls closeWrite),
// either side fails, or src is quiet for p.parkAfter (errParked).
// deadlines is the connection whose read deadline bounds the wait on src
// (the raw TCP side for a tls.Conn); bursts take their buffer from pool.
// The bytes moved add up in p.n[dir].
func (p *pipe) copy(dir int, deadlines net.Conn, dst io.Writer, src io.Reader, pool *sync.Pool, closeWrite func() error) error {
	idle := make([]byte, idleBufSize)
	var big *[]byte // from the pool while a burst lasts
	defer func() {
		if big != nil {
			pool.Put(big)
		}
	}()
	// The read deadline is the nearer of the idle timeout (no byte either
	// way) and the park time (no byte from src). It is set once and moved
	// only when it passes, so that a busy direction reads the clock only
	// where the idle timeout needs it (p.last).
	parks := p.src[dir] != nil && p.parkAfter > 0
	timed := p.idle > 0 || parks
	var deadline time.Time
	quietSince := time.Now() // src gave nothing since, unless moved
	moved := false
	if timed {
		deadline = p.deadline(quietSince, parks)
		deadlines.SetReadDeadline(deadline)
	}
	for {
		buf := idle
		if big != nil {
			buf = *big
		}
		nr, rerr := src.Read(buf)
		if nr > 0 {
			moved = true
			if p.idle > 0 {
				p.last.Store(time.Now().UnixNano())
			}
			nw, werr := dst.Write(buf[:nr])
			p.n[dir] += int64(nw)
			if werr != nil {
				p.backendWriteFailed = dir == up
				return werr
			}
		}
		switch {
		case nr == len(buf) && big == nil:
			big = pool.Get().(*[]byte) // a burst: more is waiting
		case nr < len(buf)/2 && big != nil:
			// The burst is over: wait with the small buffer. (Half, not
			// full: after the small read, the rest of a TLS record comes
			// short of a full buffer, and the burst goes on.)
			pool.Put(big)
			big = nil
		}
		switch {
		case rerr == nil:
		case errors.Is(rerr, io.EOF):
			return closeWrite()
		case errors.Is(rerr, os.ErrDeadlineExceeded) && timed:
			// A read that timed out leaves no plaintext buffered in a
			// tls.Conn (at most part of a record, whose rest the socket
			// brings): parked, nothing is left behind.
			now := time.Now()
			switch {
			case p.idle > 0 && now.Sub(time.Unix(0, p.last.Load())) >= p.idle:
				return errIdle // the other direction was quiet too
			case parks && !moved && now.Sub(quietSince) >= p.parkAfter:
				return errParked
			}
			if moved {
				quietSince, moved = now, false
			}
			deadline = p.deadline(quietSince, parks)
			deadlines.SetReadDeadline(deadline)
		default:
			return rerr
		}
	}
}

// deadline is when a direction whose source has been quiet since
// quietSince stops waiting: at the idle timeout of the whole connection,
// or at its park time if it parks, whichever comes first.
func (p *pipe) deadline(quietSince time.Time, parks bool) time.Time {
	var d time.Time
	if p.idle > 0 {
		d = time.Unix(0, p.last.Load()).Add(p.idle)
	}
	if parks {
		if at := quietSince.Add(p.parkAfter); d.IsZero() || at.Before(d) {
			d = at
		}
	}
	return d
}

// classify drops the errors that are the ordinary end of a connection and
// names the direction of the others.
func classify(err error, dir string) error {
	if err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
		return nil
	}
	return fmt.Errorf("%s: %w", dir, err)
}
