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

// copyBufSize holds one full TLS record of plaintext.
const copyBufSize = 16 << 10

// idleBufSize is what a direction holds while it waits for its peer: most
// connections are idle most of the time, and a read blocks until the peer
// sends, so the buffer it blocks with is the memory an idle connection
// costs. A read that fills it means a burst: the rest moves with a pooled
// full-size buffer, given back once a read fills less than half of it.
const idleBufSize = 512

// bufPool holds copy buffers. The client side is a tls.Conn, so splice(2)
// cannot apply and io.Copy would allocate 32 KiB per direction per
// connection; pooling keeps memory proportional to connections moving data.
var bufPool = sync.Pool{New: func() any { return new([copyBufSize]byte) }}

// errIdle ends a connection that moved no byte either way for timeouts.idle.
var errIdle = errors.New("idle timeout")

// halfCloser is a connection whose write side can be shut alone.
type halfCloser interface{ CloseWrite() error }

// pipe is the shared state of the two copy directions of one connection.
type pipe struct {
	idle time.Duration
	last atomic.Int64 // unix nanoseconds of the last byte moved either way
}

// proxy copies client↔backend until both directions finish, propagating
// half-closes. in counts client→backend bytes, out backend→client.
func (s *Server) proxy(client *tls.Conn, raw *clientConn, backend net.Conn) (in, out int64, err error) {
	p := &pipe{idle: s.cfg.Timeouts.Idle}
	p.last.Store(time.Now().UnixNano())
	upDone := make(chan error, 1)
	go s.proxyCopyUp(p, client, backend, &in, upDone)
	out, downErr := p.copy(backend, client, backend, func() error {
		// Backend finished sending: close_notify, then the TCP FIN that
		// tls.Conn.CloseWrite does not send.
		err := client.CloseWrite()
		raw.CloseWrite()
		return err
	})
	if downErr != nil {
		client.Close() // unblocks the other direction
		backend.Close()
	}
	upErr := <-upDone
	return in, out, errors.Join(classify(upErr, "client to backend"), classify(downErr, "backend to client"))
}

// proxyCopyUp is the client→backend direction. It has a name of its own so
// that it reads clearly in goroutine dumps. Like the connection's own
// goroutine it recovers a panic, which ends this connection only.
func (s *Server) proxyCopyUp(p *pipe, client *tls.Conn, backend net.Conn, n *int64, done chan<- error) {
	var err error
	defer func() {
		if r := recover(); r != nil {
			s.recovered(r)
			client.Close()
			backend.Close()
			done <- fmt.Errorf("panic: %v", r)
		}
	}()
	*n, err = p.copy(client.NetConn(), backend, client, func() error {
		if hc, ok := backend.(halfCloser); ok {
			return hc.CloseWrite()
		}
		return nil
	})
	if err != nil {
		client.Close()
		backend.Close()
	}
	done <- err
}

// copy moves bytes from src to dst until src ends (then calls closeWrite)
// or either side fails. deadlines is the connection whose read deadline
// bounds idleness of src (the raw TCP side for a tls.Conn).
func (p *pipe) copy(deadlines net.Conn, dst io.Writer, src io.Reader, closeWrite func() error) (int64, error) {
	idle := make([]byte, idleBufSize)
	var big *[copyBufSize]byte // from the pool while a burst lasts
	defer func() {
		if big != nil {
			bufPool.Put(big)
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
			buf = big[:]
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
			big = bufPool.Get().(*[copyBufSize]byte) // a burst: more is waiting
		case nr < len(buf)/2 && big != nil:
			// The burst is over: wait with the small buffer. (Half, not
			// full: after the small read, the rest of a TLS record comes
			// short of a full buffer, and the burst goes on.)
			bufPool.Put(big)
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
