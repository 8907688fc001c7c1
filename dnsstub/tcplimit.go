package dnsstub

import (
	"net"
	"sync"
	"sync/atomic"
)

// limitListener caps the connections open at once: one accepted beyond
// max is closed at once, before any goroutine or buffer is spent on it,
// and counted. A flood of idle DNS-over-TCP connections then costs at most
// max descriptors, never those the TLS listeners need.
type limitListener struct {
	net.Listener
	max     int64
	open    atomic.Int64
	refused func() // counts one connection closed at accept
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.refused()
			c.Close()
			continue
		}
		return &limitConn{Conn: c, l: l}, nil
	}
}

// limitConn gives its place back on its first Close.
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}
