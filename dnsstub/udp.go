package dnsstub

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
	"golang.org/x/net/ipv4"
)

// maxUDPSize caps UDP answers whatever buffer a client advertises (RFC 9715
// territory: large UDP answers fragment); longer answers set TC and the
// client retries over TCP. It also bounds the per-message buffers below.
const maxUDPSize = 4096

// udpBatch is how many datagrams one recvmmsg/sendmmsg call moves.
const udpBatch = 32

// serveUDP answers UDP queries with as many readers as the process has
// cores, each a loop of batched reads (recvmmsg), answers, and batched
// writes (sendmmsg) on its own buffers. miekg/dns's UDP server starts a
// goroutine per packet and makes two syscalls per query; under load the
// syscalls, not the answers, are where the time goes.
func (s *Server) serveUDP(conn *net.UDPConn) error {
	var wg sync.WaitGroup
	errs := make([]error, runtime.GOMAXPROCS(0))
	for i := range errs {
		wg.Go(func() { errs[i] = s.udpReader(conn) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *Server) udpReader(conn *net.UDPConn) error {
	// ipv4.PacketConn's batch calls take any UDP socket; we use no control
	// messages, which is where IPv4 and IPv6 differ.
	pc := ipv4.NewPacketConn(conn)
	in := make([]ipv4.Message, udpBatch)
	out := make([]ipv4.Message, 0, udpBatch)
	outBufs := make([][]byte, udpBatch)
	// Each answer's one-buffer list, reused: a fresh [][]byte per answer
	// was the hot loop's last allocation.
	outVecs := make([][1][]byte, udpBatch)
	send := func(b []byte, addr net.Addr) {
		v := &outVecs[len(out)]
		v[0] = b
		out = append(out, ipv4.Message{Buffers: v[:], Addr: addr})
	}
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, maxUDPSize)}
		outBufs[i] = make([]byte, maxUDPSize)
	}
	for {
		// MSG_WAITFORONE: return once one datagram is in, even if the socket
		// was turned blocking under us (a hand-over's exec clears
		// O_NONBLOCK on the shared socket for a moment): a blocking read
		// would otherwise wait for a full batch.
		n, err := pc.ReadBatch(in, readBatchFlags)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		out = out[:0]
		for i := range in[:n] {
			pkt := in[i].Buffers[0][:in[i].N]
			start := time.Now()
			if b, qtype, ok := s.fastAnswer(pkt, outBufs[i]); ok {
				s.metrics.observeFast(qtype, start)
				send(b, in[i].Addr)
				continue
			}
			reply, forward := s.udpReply(pkt, clientAddr(in[i].Addr))
			if forward != nil {
				s.forwardUDP(conn, forward, in[i].Addr)
				continue
			}
			if reply == nil {
				continue
			}
			packed, err := reply.PackBuffer(outBufs[i])
			if err != nil {
				s.logger.Debug("packing DNS answer", zap.Error(err))
				continue
			}
			send(packed, in[i].Addr)
		}
		for len(out) > 0 {
			sent, err := pc.WriteBatch(out, 0)
			if err != nil {
				s.logger.Debug("writing DNS answers", zap.Error(err))
				sent = max(sent, 1) // skip the datagram that failed
			}
			out = out[sent:]
		}
	}
}

// udpReply decides what to send back for one datagram from client, with
// miekg/dns's default acceptance rules: responses and unparseable headers
// get nothing (any reply could be used to amplify), other opcodes NOTIMP,
// anything but exactly one question or a body that does not parse FORMERR.
// A query to forward comes back as forward instead, to be answered off the
// read loop.
func (s *Server) udpReply(pkt []byte, client netip.Addr) (reply, forward *dns.Msg) {
	if len(pkt) < 12 {
		return nil, nil
	}
	id := binary.BigEndian.Uint16(pkt[0:])
	bits := binary.BigEndian.Uint16(pkt[2:])
	if bits&(1<<15) != 0 { // QR: a response, not a query
		return nil, nil
	}
	opcode := int(bits>>11) & 0xF
	refuse := func(rcode int) *dns.Msg {
		m := new(dns.Msg)
		m.Id, m.Response, m.Opcode, m.Rcode = id, true, opcode, rcode
		s.metrics.observe(0, rcode, time.Now())
		return m
	}
	if opcode != dns.OpcodeQuery {
		return refuse(dns.RcodeNotImplemented), nil
	}
	if binary.BigEndian.Uint16(pkt[4:]) != 1 {
		return refuse(dns.RcodeFormatError), nil
	}
	r := new(dns.Msg)
	if err := r.Unpack(pkt); err != nil {
		return refuse(dns.RcodeFormatError), nil
	}
	if s.forwards(r, client) {
		return nil, r
	}
	return s.respond(r, true, client), nil
}

// maxForwards bounds the forwarded UDP queries waiting on upstreams.
const maxForwards = 256

// forwardUDP answers a query to forward in a goroutine of its own: the
// upstreams may take up to forwardTimeout each, and the read loop must not
// wait for them while authoritative queries queue behind. With maxForwards
// already waiting it answers SERVFAIL at once.
func (s *Server) forwardUDP(conn *net.UDPConn, r *dns.Msg, addr net.Addr) {
	select {
	case s.forwarding <- struct{}{}:
	default:
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeServerFailure)
		s.metrics.observe(r.Question[0].Qtype, m.Rcode, time.Now())
		if b, err := m.Pack(); err == nil {
			conn.WriteTo(b, addr)
		}
		return
	}
	go func() {
		defer func() { <-s.forwarding }()
		m := s.respond(r, true, clientAddr(addr))
		b, err := m.Pack()
		if err == nil {
			_, err = conn.WriteTo(b, addr)
		}
		if err != nil {
			s.logger.Debug("writing a forwarded DNS answer", zap.Error(err))
		}
	}()
}
