package ingress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pires/go-proxyproto"
	"go.uber.org/zap"

	"github.com/neo4j/private-ingress/routing"
)

// conn is one client connection, from accept to its log line: the TCP
// connection crypto/tls reads (GetConfigForClient gets it back as
// hello.Conn, which is how the handshake's routing decision reaches the
// data path), what was decided about it, and what its log line will say.
type conn struct {
	net.Conn
	l         *listener
	tcp       *net.TCPConn // for CloseWrite; nil if the listener hides it
	read      int64        // bytes read from the wire, to tell a bare connect from a failed hello
	openShard uint8        // its entry in Server.open

	afterHeader int64     // bytes read above a PROXY header: what the TLS handshake got
	slot        limitSlot // held against max_connections_per_source and _per_endpoint

	endpoint      string             // private endpoint id; empty for public traffic
	proxyHeader   *proxyproto.Header // the load balancer's header, if any
	lbHealthCheck bool               // a PROXY LOCAL connection: the load balancer's probe
	domain        string             // the routing table's; not the table, which a long connection would keep alive
	instance      *routing.Instance
	refusal       result // set when the handshake refused the name
	explain       bool   // the refusal completes the handshake and is explained
	unexplained   bool   // explainable, but over max_explained_per_second: alerted
	sni           string
	rev           revokeState          // its entry in the registry of routed connections (revoke.go)
	pipe          atomic.Pointer[pipe] // its copy, once it has one

	log connLog
}

func newConn(c net.Conn, l *listener) *conn {
	tcp, _ := c.(*net.TCPConn)
	cc := &conn{tcp: tcp, l: l}
	cc.Conn = countingConn{Conn: c, n: &cc.read}
	return cc
}

// countingConn counts the bytes read from the wire, beneath any PROXY
// header parser, so that "sent nothing" can be told from "sent garbage".
type countingConn struct {
	net.Conn
	n *int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	*c.n += int64(n)
	return n, err
}

// abort closes the connection from outside its copy (the drain's end, a
// revocation): the copy's reads and writes fail, and a parked direction,
// whose socket leaves the epoll set without an event, is resumed to see it.
func (c *conn) abort() {
	c.Close()
	if p := c.pipe.Load(); p != nil {
		p.closedOutside()
	}
}

// CloseWrite sends the TCP FIN that tls.Conn.CloseWrite (close_notify only) does not.
func (c *conn) CloseWrite() error {
	if c.tcp != nil {
		return c.tcp.CloseWrite()
	}
	return nil
}

// connLog is what the one log line of a finished connection says.
type connLog struct {
	start    time.Time
	result   result
	backend  string
	alpn     string
	version  uint16
	in, out  int64
	err      error
	expected bool // an ordinary way to end (a bare connect): log at debug

	quiet      bool // no log line: one like it was written less than a second ago
	suppressed int  // lines like this one left out since the last one written
}

// serve is the life of one connection, top to bottom: open takes it
// through the PROXY header and the TLS handshake (which routes it) to a
// backend, or ends it there; the copy then runs on goroutines of its own,
// and the last direction to finish calls finish.
func (c *conn) serve() {
	c.log.start = time.Now()
	c.l.srv.open.add(c)
	if c.l.srv.hardStop.Err() != nil {
		c.abort() // the drain ended while it was being accepted
	}
	c.l.srv.metrics.opened(c.l.svc)
	tc, backend := c.open()
	if backend == nil {
		c.finish()
		return
	}
	c.log.result = resultOK
	c.l.srv.register(c)
	c.l.srv.startCopy(c, tc, backend)
}

// finish ends the connection: it closes the client side, then writes the
// one log line and counts it. It runs once, from serve or from the copy.
func (c *conn) finish() {
	c.l.srv.open.remove(c)
	c.Close()
	c.l.srv.unregister(c)
	c.l.finished(c)
}

// open reads the PROXY header, completes the handshake and dials a
// backend. A nil backend means the connection ends here (refused,
// explained, failed: c.log says which); a panic ends this connection only.
func (c *conn) open() (tc *tls.Conn, backend net.Conn) {
	l, s := c.l, c.l.srv
	defer func() {
		if p := recover(); p != nil {
			c.log.result, c.log.err = resultHandshakeError, fmt.Errorf("panic: %v", p)
			s.recovered(p)
			if backend != nil {
				backend.Close()
				backend = nil
			}
		}
	}()

	// PROXY header, then the TLS handshake, both bounded by the handshake
	// timeout. The header says who the client is and which private endpoint
	// it came through; only trusted load balancers may send one.
	c.SetDeadline(c.log.start.Add(s.cfg.Timeouts.Handshake))
	if err := s.inboundPP.readProxyHeader(c); err != nil {
		c.log.result, c.log.err = resultProxyProtocolError, err
		if c.read == 0 && !errors.Is(err, errUntrustedSource) {
			// Sent nothing at all: a bare connect such as a load balancer's
			// TCP health check is a probe, no error; a silent client that
			// held its place until the timeout is a handshake error.
			c.log.result, c.log.expected = resultProbe, true
			if errors.Is(err, os.ErrDeadlineExceeded) {
				c.log.result, c.log.expected = resultHandshakeError, false
			}
		}
		return nil, nil
	}
	// The client is known now (the header may have named it): the caps
	// per source and per endpoint end it before the handshake's cost.
	if !c.holdSlot() {
		return nil, nil
	}

	// The routing decision is taken inside the handshake (decide); a
	// refused name ends it with an alert before any backend is dialled.
	tc = tls.Server(c, l.handshake)
	if err := tc.Handshake(); err != nil {
		c.log.result, c.log.err = c.refusal, err
		if reason := refusalReasons[c.refusal]; reason != "" {
			if c.unexplained {
				reason += " (alerted, not explained: limits.max_explained_per_second reached)"
			}
			c.log.err = errors.New(reason)
		}
		if c.log.result == resultNone {
			c.log.result = resultHandshakeError
			// nc -vz, or a load balancer's probe (a PROXY header at most,
			// LOCAL or not): connect, then close.
			if (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) && c.sentNothing() {
				c.log.result, c.log.expected = resultProbe, true
			}
		}
		return nil, nil
	}
	state := tc.ConnectionState()
	c.log.version, c.log.alpn = state.Version, state.NegotiatedProtocol
	s.metrics.handshook(l.svc, time.Since(c.log.start))

	// A refused name under a served zone, with refusals explained: the
	// client hears why in its own protocol, within the handshake deadline,
	// and nothing is dialled.
	if c.explain {
		c.log.result, c.log.err = c.refusal, errors.New(refusalReasons[c.refusal])
		l.explain(tc, c)
		return nil, nil
	}
	c.SetDeadline(time.Time{})

	// Backend: the first of the instance's backends for this service that
	// answers, in balanced order.
	var header []byte
	if s.cfg.Backend.ProxyProtocol {
		var err error
		if header, err = backendProxyHeader(c); err != nil {
			c.log.result, c.log.err = resultBackendUnavailable, err
			return nil, nil
		}
	}
	ctx, cancel := context.WithCancel(s.hardStop)
	backend, addr, err := s.dialBackend(ctx, c.instance, l.svc, header, state.NegotiatedProtocol)
	cancel()
	c.log.backend = addr
	if err != nil {
		c.log.result, c.log.err = resultBackendUnavailable, err
		c.explainUnavailable(tc)
		return nil, nil
	}
	return tc, backend
}

// explainUnavailable tells a client whose instance did not answer that it
// is unavailable, in its protocol (a Bolt driver retries on the code it
// gets), within a fresh handshake-long deadline. It stays silent when
// refusals are alerted, over max_explained_per_second, or in the drain's
// end.
func (c *conn) explainUnavailable(tc *tls.Conn) {
	l := c.l
	if !l.explains || l.srv.hardStop.Err() != nil || !l.explainBudget.take() {
		return
	}
	c.refusal = resultBackendUnavailable
	c.SetDeadline(time.Now().Add(l.srv.cfg.Timeouts.Handshake))
	l.explain(tc, c)
}

// sentNothing reports a client that sent no byte beyond its PROXY header.
func (c *conn) sentNothing() bool {
	if c.proxyHeader != nil {
		return c.afterHeader == 0
	}
	return c.read == 0
}

// holdSlot counts the connection against the caps per source and per
// endpoint, which finished gives back. Over one it records the limit,
// writing the log line only if none was written for the same source (or
// endpoint) in the last second, and reports false.
func (c *conn) holdSlot() bool {
	limits := c.l.srv.limits
	slot, over := limits.acquire(sourceAddr(c.RemoteAddr()), c.endpoint)
	if over == nil {
		c.slot = slot
		return true
	}
	c.log.result, c.log.err = resultLimit, over
	ok, suppressed := limits.logs.allow(over.key, time.Now())
	c.log.quiet, c.log.suppressed = !ok, suppressed
	return false
}

// recovered logs and counts a panic recovered in a connection's goroutines.
func (s *Server) recovered(p any) {
	s.logger.Error("panic in connection handler", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
	s.metrics.panicked()
}

// decide routes the ClientHello's server name. It runs inside the
// handshake; returning l.refused makes Go end the handshake with an
// unrecognized_name alert. Errors would all reach the client as
// internal_error, so the reason goes to the log and the metrics instead.
// A refusal that can be explained (the name is well formed and a
// certificate covers it) completes the handshake instead, when the
// configuration says so.
func (l *listener) decide(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	c, ok := hello.Conn.(*conn)
	if !ok {
		return nil, errors.New("ingress: handshake on an unexpected connection type")
	}
	c.sni = hello.ServerName
	table := l.srv.routes.Load()
	c.domain = table.Namespace().Domain
	inst, res := table.Lookup(hello.ServerName)
	explainable := false
	switch res {
	case routing.NoName:
		c.refusal = resultNoSNI
	case routing.UnknownHost:
		c.refusal = resultUnknownHost
	case routing.OtherOrch:
		// Usually no certificate covers another orch, and an alert is all
		// we can send; an ingress holding one can say more.
		c.refusal = resultUnknownHost
		explainable = l.explains && l.hasCertificate(hello)
	case routing.UnknownDBID:
		c.refusal, explainable = resultUnknownDBID, l.explains
	case routing.Found:
		c.instance = inst // named in the log line, allowed or not
		switch {
		case !inst.Allows(c.endpoint):
			c.refusal, explainable = resultDenied, l.explains
		case inst.Paused: // said only to those it would admit
			c.refusal, explainable = resultPaused, l.explains
		}
	}
	if c.refusal != resultNone {
		if explainable && l.explainBudget.take() {
			c.explain = true
			return l.accepted, nil
		}
		c.unexplained = explainable // over limits.max_explained_per_second
		return l.refused, nil
	}
	return l.accepted, nil
}

// hasCertificate reports whether the service's certificates cover hello.
func (l *listener) hasCertificate(hello *tls.ClientHelloInfo) bool {
	cert, err := l.accepted.GetCertificate(hello)
	return err == nil && cert != nil
}

// errNoBackends is returned when an instance has no backend for a service.
var errNoBackends = errors.New("instance has no backend for this service")

// maxTries bounds the backends tried for one connection.
const maxTries = 8

// dialBackend connects to one of inst's backends for svc. A failed dial
// marks the backend for a cooldown and tries the next.
func (s *Server) dialBackend(ctx context.Context, inst *routing.Instance, svc routing.Service, header []byte, alpn string) (net.Conn, string, error) {
	pool := inst.Pool(svc)
	if pool.Len() == 0 {
		return nil, "", errNoBackends
	}
	var buf [maxTries]*routing.Backend
	order := pool.Order(time.Now(), buf[:0])
	var errs []error
	for i, b := range order {
		if i == maxTries {
			break
		}
		conn, err := s.dialOne(ctx, b.Addr, header, alpn)
		if err == nil {
			b.Succeed()
			return conn, b.Addr, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break // the drain ended: the backend is not to blame
		}
		b.Fail(time.Now(), s.cfg.BackendCooldown)
	}
	return nil, order[0].Addr, errors.Join(errs...)
}

// dialOne connects to one backend: TCP, then the PROXY header if there is
// one, then TLS offering alpn if the backend leg is TLS.
func (s *Server) dialOne(ctx context.Context, addr string, header []byte, alpn string) (net.Conn, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Backend.DialTimeout)
	defer cancel()
	conn, err := s.dial(ctx, "tcp", addr)
	if err == nil && header != nil {
		if _, err = conn.Write(header); err != nil {
			err = fmt.Errorf("sending PROXY header: %w", err)
		}
	}
	if err == nil && s.backendTLS != nil {
		var tc *tls.Conn
		if tc, err = s.backendTLS.handshake(ctx, conn, addr, alpn); err == nil {
			conn = tc
		}
	}
	s.metrics.dialed(time.Since(start), err)
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return conn, nil
}

// finished counts a closed connection and writes its one log line.
func (l *listener) finished(c *conn) {
	s, rec := l.srv, &c.log
	s.limits.release(c.slot)
	s.active.Add(-1)
	defer s.conns.Done()
	// Counted once its line is written: whoever sees the count (a test, a
	// scrape followed by a log search) finds the line too.
	defer s.metrics.closed(l.svc, rec.result, rec.in, rec.out)
	if rec.quiet {
		return
	}
	level := zap.InfoLevel
	switch {
	case rec.expected:
		level = zap.DebugLevel
	case rec.result == resultBackendUnavailable, rec.result == resultLimit:
		level = zap.WarnLevel
	}
	ce := s.logger.Check(level, "connection")
	if ce == nil {
		return
	}
	fields := []zap.Field{
		zap.String("service", l.cfg.Service),
		zap.String("result", rec.result.String()),
		zap.String("client", c.RemoteAddr().String()),
		zap.String("sni", c.sni),
		zap.Duration("duration", time.Since(rec.start)),
	}
	if c.instance != nil {
		fields = append(fields, zap.String("dbid", c.instance.DBID))
	}
	if c.endpoint != "" {
		fields = append(fields, zap.String("endpoint", c.endpoint))
	}
	if rec.backend != "" {
		fields = append(fields, zap.String("backend", rec.backend))
	}
	if rec.version != 0 {
		fields = append(fields, zap.String("tls", tls.VersionName(rec.version)))
	}
	if rec.alpn != "" {
		fields = append(fields, zap.String("alpn", rec.alpn))
	}
	if rec.result == resultOK || rec.result == resultRevoked {
		fields = append(fields, zap.Int64("bytes_in", rec.in), zap.Int64("bytes_out", rec.out))
	}
	if rec.err != nil && !quietError(rec.err) {
		fields = append(fields, zap.String("reason", rec.err.Error()))
	}
	if rec.suppressed > 0 {
		fields = append(fields, zap.Int("suppressed", rec.suppressed)) // lines like this one left out
	}
	ce.Write(fields...)
}

// quietError reports errors that are the ordinary end of a TCP connection.
func quietError(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)
}

// refusalReasons explain refusals in the log: the client only sees an alert.
var refusalReasons = [numResults]string{
	resultNoSNI:       "client sent no server name (SNI)",
	resultUnknownHost: "server name is not <dbid>.production-orch-<orch>.<domain> for a served orch",
	resultUnknownDBID: "no instance with this dbid in the routing table",
	resultDenied:      "instance is not reachable from this endpoint (not public, or endpoint not in its list)",
	resultPaused:      "instance is paused (paused: true in the routes): nothing dialled",
}
