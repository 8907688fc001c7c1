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
	"time"
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

// halfCloser is a connection whose write side can be shut alone.
type halfCloser interface{ CloseWrite() error }

// Directions of a pipe, indexes into its per-direction state.
const (
	up   = iota // client to backend
	down        // backend to client
)

// pipe is the shared state of the two copy directions of one connection.
type pipe struct {
	client  *tls.Conn
	raw     *conn
	backend net.Conn
	idle    time.Duration
	last    atomic.Int64 // unix nanoseconds of the last byte moved either way
	running atomic.Int32 // directions still copying
	n       [2]int64
	errs    [2]error
}

// startCopy copies client↔backend on two fresh goroutines and returns at
// once, propagating half-closes. The caller's goroutine grew its stack in
// the handshake; a fresh one starts small, and an idle connection holds
// its goroutines' stacks for as long as it lasts. The last direction to
// finish closes the backend, records the bytes moved (in: client→backend)
// and the errors that were not the ordinary end of a connection, and
// finishes the connection.
func (s *Server) startCopy(c *conn, client *tls.Conn, backend net.Conn) {
	p := &pipe{client: client, raw: c, backend: backend, idle: s.cfg.Timeouts.Idle}
	p.last.Store(time.Now().UnixNano())
	p.running.Store(2)
	go s.copyUp(p)
	go s.copyDown(p)
}

// copyUp and copyDown are the two directions, named so that they read
// clearly in goroutine dumps.
func (s *Server) copyUp(p *pipe) {
	defer p.finish(s, up)
	p.n[up], p.errs[up] = p.copy(p.client.NetConn(), p.backend, p.client, &recordPool, func() error {
		if hc, ok := p.backend.(halfCloser); ok {
			return hc.CloseWrite()
		}
		return nil
	})
}

func (s *Server) copyDown(p *pipe) {
	defer p.finish(s, down)
	p.n[down], p.errs[down] = p.copy(p.backend, p.client, p.backend, &burstPool, func() error {
		// Backend finished sending: close_notify, then the TCP FIN that
		// tls.Conn.CloseWrite does not send.
		err := p.client.CloseWrite()
		p.raw.CloseWrite()
		return err
	})
}

// finish ends one direction. A failure (or a panic, which ends this
// connection only) closes both sides, which unblocks the other direction;
// the last direction to finish reports the connection done.
func (p *pipe) finish(s *Server, dir int) {
	if r := recover(); r != nil {
		s.recovered(r)
		p.errs[dir] = fmt.Errorf("panic: %v", r)
	}
	if p.errs[dir] != nil {
		p.client.Close()
		p.backend.Close()
	}
	if p.running.Add(-1) == 0 {
		p.backend.Close()
		log := &p.raw.log
		log.in, log.out = p.n[up], p.n[down]
		log.err = errors.Join(classify(p.errs[up], "client to backend"), classify(explainBackendAlert(p.errs[down]), "backend to client"))
		p.raw.finish()
	}
}

// copy moves bytes from src to dst until src ends (then calls closeWrite)
// or either side fails. deadlines is the connection whose read deadline
// bounds idleness of src (the raw TCP side for a tls.Conn); bursts take
// their buffer from pool.
func (p *pipe) copy(deadlines net.Conn, dst io.Writer, src io.Reader, pool *sync.Pool, closeWrite func() error) (int64, error) {
	idle := make([]byte, idleBufSize)
	var big *[]byte // from the pool while a burst lasts
	defer func() {
		if big != nil {
			pool.Put(big)
		}
	}()
	var total int64
	var deadline time.Time
	for {
		if p.idle > 0 {
			now := time.Now()
			if deadline.Sub(now) < p.idle/2 {
				deadline = now.Add(p.idle)
				deadlines.SetReadDeadline(deadline)
			}
		}
		buf := idle
		if big != nil {
			buf = *big
		}
		nr, rerr := src.Read(buf)
		if nr > 0 {
			nw, werr := dst.Write(buf[:nr])
			total += int64(nw)
			if p.idle > 0 {
				p.last.Store(time.Now().UnixNano())
			}
			if werr != nil {
				return total, werr
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
			return total, closeWrite()
		case errors.Is(rerr, os.ErrDeadlineExceeded) && p.idle > 0:
			// Idle only if the other direction was quiet too.
			last := time.Unix(0, p.last.Load())
			if time.Since(last) >= p.idle {
				return total, errIdle
			}
			deadline = last.Add(p.idle)
			deadlines.SetReadDeadline(deadline)
		default:
			return total, rerr
		}
	}
}

// classify drops the errors that are the ordinary end of a connection and
// names the direction of the others.
func classify(err error, dir string) error {
	if err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
		return nil
	}
	return fmt.Errorf("%s: %w", dir, err)
}
