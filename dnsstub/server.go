package dnsstub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/neo4j/private-ingress/routing"
)

// Options are the Server's dependencies.
type Options struct {
	Config    Config
	Namespace routing.Namespace
	Routes    *routing.Holder // for known_only; may be nil otherwise
	Logger    *zap.Logger
	Registry  prometheus.Registerer // nil: no metrics
	// Listen and ListenPacket bind the TCP and UDP sockets, or find them
	// already bound (a restart's hand-over); nil: a net.ListenConfig.
	Listen       func(ctx context.Context, network, addr string) (net.Listener, error)
	ListenPacket func(ctx context.Context, network, addr string) (net.PacketConn, error)
}

// Server answers DNS over UDP and TCP on one address.
type Server struct {
	cfg     Config
	zones   map[string]*zone // by lower-case FQDN
	ipv4    []net.IP
	ipv6    []net.IP
	allow   []netip.Prefix // the clients forwarding answers
	routes  *routing.Holder
	acme    *TXTStore
	logger  *zap.Logger
	metrics *metrics
	client  *dns.Client

	wireZones  [][]byte // the zones' names in wire form, for the fast path
	tcp        *dns.Server
	conn       *net.UDPConn
	ln         net.Listener
	forwarding chan struct{} // a place per UDP query waiting on upstreams

	listen       func(ctx context.Context, network, addr string) (net.Listener, error)
	listenPacket func(ctx context.Context, network, addr string) (net.PacketConn, error)
}

// forwardTimeout bounds one upstream exchange.
const forwardTimeout = 2 * time.Second

// udpReadBuffer absorbs bursts: the kernel default (~208 KiB) drops
// queries under load before the server sees them.
const udpReadBuffer = 4 << 20

// New returns a Server for opts. It does not bind anything yet.
func New(opts Options) *Server {
	s := &Server{
		cfg:     opts.Config,
		zones:   map[string]*zone{},
		ipv4:    parseIPs(opts.Config.AnswerIPv4, true),
		ipv6:    parseIPs(opts.Config.AnswerIPv6, false),
		allow:   opts.Config.allowPrefixes(),
		routes:  opts.Routes,
		acme:    &TXTStore{},
		logger:  opts.Logger,
		metrics: newMetrics(opts.Registry),
		client:  &dns.Client{Timeout: forwardTimeout},

		forwarding: make(chan struct{}, maxForwards),

		listen:       opts.Listen,
		listenPacket: opts.ListenPacket,
	}
	var lc net.ListenConfig
	if s.listen == nil {
		s.listen = lc.Listen
	}
	if s.listenPacket == nil {
		s.listenPacket = lc.ListenPacket
	}
	if s.logger == nil {
		s.logger = zap.NewNop()
	}
	serial := uint32(time.Now().Unix())
	for _, orch := range opts.Namespace.Orchestras {
		z := newZone(orch, opts.Namespace.Domain, opts.Config.TTL, serial)
		s.zones[z.name] = z
		s.wireZones = append(s.wireZones, wireName(z.name))
	}
	return s
}

// TXT returns the store of run-time TXT records (ACME DNS-01 challenges).
func (s *Server) TXT() *TXTStore { return s.acme }

// Listen binds UDP and TCP on the configured address; with port 0 both get
// the same ephemeral port.
func (s *Server) Listen(ctx context.Context) error {
	// An ephemeral UDP port may be taken for TCP: then try another one.
	_, port, _ := net.SplitHostPort(s.cfg.Address)
	tries := 1
	if port == "0" {
		tries = 16
	}
	var pc net.PacketConn
	var ln net.Listener
	for try := 1; ; try++ {
		var err error
		if pc, err = s.listenPacket(ctx, "udp", s.cfg.Address); err != nil {
			return fmt.Errorf("listen %s/udp (dns): %w", s.cfg.Address, err)
		}
		addr := pc.LocalAddr().String()
		if ln, err = s.listen(ctx, "tcp", addr); err == nil {
			break
		}
		pc.Close()
		if try == tries {
			return fmt.Errorf("listen %s/tcp (dns): %w", addr, err)
		}
	}
	if uc, ok := pc.(*net.UDPConn); ok {
		// Bursts overflow the kernel's default (~208 KiB) receive buffer.
		uc.SetReadBuffer(udpReadBuffer)
	}
	// Connections beyond the cap are closed at accept: idle ones must not
	// hold the descriptors the TLS listeners need.
	ln = &limitListener{Listener: ln, max: int64(s.cfg.maxTCPConnections()), refused: s.metrics.refusedTCP}
	s.conn, s.ln = pc.(*net.UDPConn), ln
	s.tcp = &dns.Server{
		Listener: ln, Handler: s,
		// miekg/dns closes a TCP connection after 128 queries by default,
		// losing queries already pipelined on it.
		MaxTCPQueries: -1,
		ReadTimeout:   5 * time.Second,
		IdleTimeout:   func() time.Duration { return 10 * time.Second },
	}
	return nil
}

// Addr returns the bound address (UDP and TCP share it).
func (s *Server) Addr() string { return s.conn.LocalAddr().String() }

// DialAddr returns an address to query the server at from this host: the
// bound one, with an unspecified host (":53", "[::]:53") made loopback.
func (s *Server) DialAddr() string { return dialable(s.Addr()) }

func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// Serve answers until Shutdown.
func (s *Server) Serve() error {
	var wg sync.WaitGroup
	var udpErr, tcpErr error
	wg.Go(func() { udpErr = s.serveUDP(s.conn) })
	wg.Go(func() { tcpErr = s.tcp.ActivateAndServe() })
	wg.Wait()
	return errors.Join(udpErr, tcpErr)
}

// Shutdown stops both servers, also when Serve has not started yet (a
// signal at start-up): then Serve, when it runs, returns at once.
func (s *Server) Shutdown(ctx context.Context) error {
	udpErr := s.conn.Close()
	tcpErr := s.tcp.ShutdownContext(ctx)
	if tcpErr != nil && strings.Contains(tcpErr.Error(), "not started") {
		// miekg/dns has not reached its accept loop: closing the listener
		// makes that loop end as soon as it starts.
		tcpErr = s.ln.Close()
	}
	return errors.Join(udpErr, tcpErr)
}

// ServeDNS answers one query that miekg/dns read (TCP, and UDP in tests).
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	m := s.respond(r, udp, clientAddr(w.RemoteAddr()))
	if err := w.WriteMsg(m); err != nil {
		s.logger.Debug("writing DNS answer", zap.Error(err))
	}
}

// clientAddr is the client's IP, IPv4-mapped addresses unmapped (a socket
// bound to [::] sees IPv4 clients as ::ffff:a.b.c.d); the zero Addr when
// unknown, which no allow list contains.
func clientAddr(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// respond is the life of one query from client: guard, EDNS version, answer
// or forward, then fit the answer to the client's buffer. It never returns
// nil.
func (s *Server) respond(r *dns.Msg, udp bool, client netip.Addr) (m *dns.Msg) {
	start := time.Now()
	var qtype uint16
	if len(r.Question) > 0 {
		qtype = r.Question[0].Qtype
	}
	defer func() {
		if p := recover(); p != nil {
			s.logger.Error("panic answering a DNS query", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			if s.metrics != nil {
				s.metrics.panics.Inc()
			}
			m = new(dns.Msg)
			m.SetRcode(r, dns.RcodeServerFailure)
		}
		s.metrics.observe(qtype, m.Rcode, start)
	}()

	opt := r.IsEdns0()
	switch {
	case opt != nil && opt.Version() != 0:
		m = new(dns.Msg)
		m.SetReply(r)
		m.Rcode = dns.RcodeBadVers // extended rcode: carried in the OPT record below
	case s.forwards(r, client):
		m = s.forward(r, udp)
	default:
		m = s.answer(r, s.mayForward(client))
	}
	size := dns.MinMsgSize
	if opt != nil {
		size = int(min(max(opt.UDPSize(), dns.MinMsgSize), maxUDPSize))
		if m.IsEdns0() == nil {
			m.SetEdns0(uint16(size), false)
		}
	}
	if !udp {
		size = dns.MaxMsgSize
	}
	if !fits(m, size) {
		m.Truncate(size) // sets TC when records had to go: the client retries over TCP
	}
	return m
}

// fits reports cheaply whether m surely packs within size bytes, so that the
// common small answer skips Truncate's exact (and costly) length count.
func fits(m *dns.Msg, size int) bool {
	n := 12
	for _, q := range m.Question {
		n += len(q.Name) + 2 + 4
	}
	for _, section := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range section {
			h := rr.Header()
			n += len(h.Name) + 2 + 10
			switch rr := rr.(type) {
			case *dns.A:
				n += 4
			case *dns.AAAA:
				n += 16
			case *dns.OPT:
				if len(rr.Option) > 0 {
					n += len(rr.String())
				}
			default:
				n += len(rr.String()) // rare types: a generous bound
			}
		}
	}
	return n <= size
}

// mayForward reports whether client may use forwarding: upstreams are
// configured and dns.allow holds the client's address.
func (s *Server) mayForward(client netip.Addr) bool {
	if len(s.cfg.Forward) == 0 || !client.IsValid() {
		return false
	}
	client = client.Unmap()
	for _, p := range s.allow {
		if p.Contains(client) {
			return true
		}
	}
	return false
}

// forwards reports whether respond would forward r from client: one
// question of class IN, of a type worth relaying (not ANY, AXFR, IXFR: see
// answer), for a name outside every zone, EDNS version 0 or none, and a
// client that mayForward. Anything else answer decides.
func (s *Server) forwards(r *dns.Msg, client netip.Addr) bool {
	if len(r.Question) != 1 || !s.mayForward(client) {
		return false
	}
	if opt := r.IsEdns0(); opt != nil && opt.Version() != 0 {
		return false
	}
	q := r.Question[0]
	if q.Qclass != dns.ClassINET || !relayed(q.Qtype) {
		return false
	}
	return s.zoneOf(strings.ToLower(q.Name)) == nil
}

// relayed reports whether a query type may go upstream: ANY is answered
// minimally here (RFC 8482) and zone transfers are refused, so that neither
// can turn the stub into an amplifier of someone else's large answers.
func relayed(qtype uint16) bool {
	switch qtype {
	case dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR:
		return false
	}
	return true
}

// forward asks the upstream resolvers in turn, over the transport the
// query came on. SERVFAIL when none answers.
func (s *Server) forward(r *dns.Msg, udp bool) *dns.Msg {
	network := "tcp"
	if udp {
		network = "udp"
	}
	c := *s.client
	c.Net = network
	q := r.Copy()
	var lastErr error
	for _, up := range s.cfg.Forward {
		ctx, cancel := context.WithTimeout(context.Background(), forwardTimeout)
		resp, _, err := c.ExchangeContext(ctx, q, up)
		cancel()
		if err == nil && resp != nil {
			resp.Id = r.Id
			return resp
		}
		lastErr = err
	}
	s.logger.Warn("forwarding failed", zap.String("name", r.Question[0].Name),
		zap.Strings("upstreams", s.cfg.Forward), zap.Error(lastErr))
	m := new(dns.Msg)
	m.SetRcode(r, dns.RcodeServerFailure)
	return m
}

var _ dns.Handler = (*Server)(nil)
