// Package ingress is the data path: TLS listeners, the handshake that
// decides where a connection goes, the backend dial, the copy in both
// directions, drain, and the connection metrics and logs.
package ingress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/neo4j/private-ingress/routing"
	"github.com/neo4j/private-ingress/tlsconfig"
)

// CertSource builds the per-listener TLS configuration: policy, certificates
// and the listener's ALPN list. *tlsconfig.Store is one.
type CertSource interface {
	ServerConfig(alpn []string) *tls.Config
}

// TicketKeySource keeps the session ticket keys of the configs it is
// given current. *tlsconfig.TicketKeys is one.
type TicketKeySource interface {
	Register(*tls.Config)
}

// ListenFunc binds a listening socket, or finds one already bound (a
// restart's hand-over).
type ListenFunc func(ctx context.Context, network, addr string) (net.Listener, error)

func defaultListen(ctx context.Context, network, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, network, addr)
}

// DialFunc connects to a backend address.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Server is the ingress data path. Create it with New, bind with Listen,
// run Serve, stop with Shutdown.
type Server struct {
	cfg     Config
	routes  *routing.Holder
	logger  *zap.Logger
	metrics *Metrics
	dial    DialFunc
	listen  ListenFunc

	backendTLS *backendTLS // nil when the backend leg is plain TCP
	inboundPP  proxyPolicy // inbound PROXY protocol
	explains   bool        // refusals are answered in the service's protocol
	limits     *connLimits // max_connections_per_source and _per_endpoint
	parker     *parker     // idle copy directions without goroutines; nil: none park
	workers    *workers    // the goroutines that serve connections and copy

	listeners []*listener
	accepting sync.WaitGroup // accept loops, so that no admit races the drain
	active    atomic.Int64
	parked    atomic.Int64 // open connections without a copy goroutine (copy.go)
	conns     sync.WaitGroup
	open      openConns   // the connections conns counts, for the drain's end
	revokes   revocations // routed connections by instance, for reloads that revoke access (revoke.go)
	ready     atomic.Bool

	// hardStop ends when the drain does: backend dials and explanations
	// in flight stop, and the connections still open are closed.
	hardStop   context.Context
	hardCancel context.CancelFunc
	closing    atomic.Bool
}

// Options are the Server's dependencies. Routes and Certs are required.
type Options struct {
	Routes  *routing.Holder
	Certs   CertSource
	Logger  *zap.Logger // nil: no logs
	Metrics *Metrics    // nil: no metrics
	Dial    DialFunc    // nil: a net.Dialer
	Listen  ListenFunc  // nil: a net.ListenConfig
	// BackendTLS, if set, is the client config for the backend leg in place
	// of the one cfg.Backend.TLS describes.
	BackendTLS *tls.Config
	// SessionTickets, if set, manages the session ticket keys; nil leaves
	// crypto/tls's own, random per process and rotated daily.
	SessionTickets TicketKeySource
}

// New returns a Server for cfg. It does not bind anything yet.
func New(cfg Config, opts Options) (*Server, error) {
	if opts.Routes == nil || opts.Certs == nil {
		return nil, errors.New("ingress: Routes and Certs are required")
	}
	if cfg.BackendCooldown <= 0 {
		cfg.BackendCooldown = DefaultBackendCooldown
	}
	if cfg.Backend.DialTimeout <= 0 {
		cfg.Backend.DialTimeout = DefaultDialTimeout
	}
	if cfg.Timeouts.Handshake <= 0 {
		cfg.Timeouts.Handshake = DefaultHandshakeTimeout
	}
	if cfg.RevokeAfter == 0 {
		cfg.RevokeAfter = DefaultRevokeAfter
	}
	explains, err := ParseRefusals(cfg.Refusals)
	if err != nil {
		return nil, err
	}
	if opts.BackendTLS == nil && cfg.Backend.TLS.Enabled {
		b := cfg.Backend.TLS
		files := tlsconfig.ClientFiles{CA: b.CA, Cert: b.ClientCert, Key: b.ClientKey, ServerName: b.ServerName}
		if opts.BackendTLS, err = tlsconfig.ClientConfig(files); err != nil {
			return nil, fmt.Errorf("backend.tls: %w", err)
		}
	}
	var backendTLS *backendTLS
	if opts.BackendTLS != nil {
		backendTLS = newBackendTLS(opts.BackendTLS, cfg.Listeners)
	}
	s := &Server{
		cfg:        cfg,
		routes:     opts.Routes,
		logger:     opts.Logger,
		metrics:    opts.Metrics,
		dial:       opts.Dial,
		listen:     opts.Listen,
		backendTLS: backendTLS,
		explains:   explains,
		limits:     newConnLimits(cfg.Limits),
		workers:    newWorkers(),
	}
	if s.logger == nil {
		s.logger = zap.NewNop()
	}
	if s.inboundPP, err = newProxyPolicy(cfg.ProxyProtocol); err != nil {
		return nil, err
	}
	if s.listen == nil {
		s.listen = defaultListen
	}
	if s.dial == nil {
		d := &net.Dialer{}
		s.dial = d.DialContext
	}
	if cfg.Timeouts.Park > 0 {
		if s.parker, err = newParker(); err != nil {
			s.logger.Warn("idle connections keep their goroutines", zap.Error(err))
			s.parker = nil
		}
	}
	s.hardStop, s.hardCancel = context.WithCancel(context.Background())
	for _, lc := range cfg.Listeners {
		l := newListener(s, lc, opts.Certs)
		if opts.SessionTickets != nil {
			opts.SessionTickets.Register(l.handshake)
		}
		s.listeners = append(s.listeners, l)
	}
	return s, nil
}

// Listen binds every listener. On error nothing stays bound.
func (s *Server) Listen(ctx context.Context) error {
	for i, l := range s.listeners {
		ln, err := s.listen(ctx, "tcp", l.cfg.Address)
		if err != nil {
			for _, prev := range s.listeners[:i] {
				prev.ln.Close()
			}
			return fmt.Errorf("listen %s (%s): %w", l.cfg.Address, l.cfg.Service, err)
		}
		l.ln = ln
	}
	return nil
}

// Addr returns the bound address of the first listener for service, or nil.
func (s *Server) Addr(service string) net.Addr {
	for _, l := range s.listeners {
		if l.cfg.Service == service && l.ln != nil {
			return l.ln.Addr()
		}
	}
	return nil
}

// Addrs returns every bound listener's address by service name.
func (s *Server) Addrs() map[string]string {
	addrs := make(map[string]string, len(s.listeners))
	for _, l := range s.listeners {
		if l.ln != nil {
			addrs[l.cfg.Service] = l.ln.Addr().String()
		}
	}
	return addrs
}

// Serve accepts connections on every listener until Shutdown. Listen must
// have succeeded.
func (s *Server) Serve() error {
	errs := make([]error, len(s.listeners))
	if !s.closing.Load() { // a Shutdown that came first stays in force
		s.ready.Store(true)
	}
	s.parker.start()
	for i, l := range s.listeners {
		s.accepting.Go(func() { errs[i] = l.acceptLoop() })
	}
	s.accepting.Wait()
	return errors.Join(errs...)
}

// Ready reports whether the server accepts connections (false once draining).
func (s *Server) Ready() bool { return s.ready.Load() }

// Unready turns Ready false while the listeners keep accepting: the
// shutdown delay, during which a load balancer's health checks learn that
// this target is leaving and stop sending it new connections.
func (s *Server) Unready() { s.ready.Store(false) }

// Shutdown drains: it stops accepting at once, waits for open connections
// to finish until ctx is done, then closes the rest. It returns ctx's error
// if connections had to be cut.
func (s *Server) Shutdown(ctx context.Context) error {
	s.ready.Store(false)
	s.closing.Store(true)
	for _, l := range s.listeners {
		if l.ln != nil {
			l.ln.Close()
		}
	}
	s.accepting.Wait()
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
		s.hardCancel()
		s.parker.stop()
		s.workers.stop()
		return nil
	case <-ctx.Done():
		s.logger.Warn("drain timed out; closing open connections", zap.Int64("open", s.active.Load()))
		s.hardCancel()
		for _, c := range s.open.all() {
			c.abort()
		}
		<-done
		s.parker.stop()
		s.workers.stop()
		return ctx.Err()
	}
}

// Active returns the number of open connections.
func (s *Server) Active() int64 { return s.active.Load() }

// Parked returns the number of open connections idle past timeouts.park,
// which hold no goroutine.
func (s *Server) Parked() int64 { return s.parked.Load() }

// listener is one bound service.
type listener struct {
	srv *Server
	cfg ListenerConfig
	svc routing.Service
	ln  net.Listener

	explains    bool         // refusals under served zones are explained, not alerted
	explainHTTP *http.Server // the HTTP/2 server's settings for explanations: its errors go to the log at debug
	handshake   *tls.Config  // given to tls.Server: decides in GetConfigForClient
	accepted    *tls.Config  // the service's config: certificates and ALPN
	refused     *tls.Config  // no certificate at all: Go answers unrecognized_name

	explainBudget *tokenBucket // limits.max_explained_per_second
}

func newListener(s *Server, lc ListenerConfig, certs CertSource) *listener {
	l := &listener{srv: s, cfg: lc, svc: listenerService(lc), explains: s.explains,
		explainBudget: newTokenBucket(explainRate(s.cfg.Limits.MaxExplainedPerSecond), time.Now)}
	errorLog, _ := zap.NewStdLogAt(s.logger.Named("explain"), zap.DebugLevel) // fails only for invalid levels
	l.explainHTTP = &http.Server{ErrorLog: errorLog}
	l.accepted = certs.ServerConfig(lc.ALPN)
	l.refused = certs.ServerConfig(lc.ALPN)
	// GetCertificate returning nil, nil with no Certificates makes crypto/tls
	// send unrecognized_name (112), which tells a user "wrong name" where any
	// error would be a bare internal_error.
	l.refused.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, nil }
	l.handshake = &tls.Config{GetConfigForClient: l.decide}
	return l
}

// acceptLoop accepts until the listener closes. Temporary errors, such as
// running out of file descriptors, back off as net/http does instead of
// spinning or giving up.
func (l *listener) acceptLoop() error {
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.srv.closing.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				l.srv.logger.Error("accept failed; backing off", zap.String("service", l.cfg.Service),
					zap.Duration("delay", delay), zap.Error(err))
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("accept on %s: %w", l.cfg.Address, err)
		}
		delay = 0
		l.admit(c)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// admit enforces max_connections and starts serving the connection.
func (l *listener) admit(c net.Conn) {
	s := l.srv
	// Count first, then check: listeners accept concurrently, and a check
	// before the count would let each of them take the last place.
	if max := s.cfg.Limits.MaxConnections; s.active.Add(1) > int64(max) && max > 0 {
		s.active.Add(-1)
		c.Close()
		s.metrics.refused(l.svc, resultLimit)
		s.logger.Debug("connection refused: max_connections reached", zap.String("service", l.cfg.Service),
			zap.String("client", c.RemoteAddr().String()))
		return
	}
	s.conns.Add(1)
	s.workers.run(newConn(c, l).serve)
}
