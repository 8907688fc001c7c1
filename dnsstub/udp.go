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
)

// maxUDPSize caps UDP answers whatever buffer a client advertises (RFC 9715
// territory: large UDP answers fragment); longer answers set TC and the
// client retries over TCP. It also bounds the per-message buffers below.
const maxUDPSize = 4096

// serveUDP answers UDP queries with as many readers as the process has
// cores, each a loop of batched reads (recvmmsg), answers, and batched
// writes (sendmmsg) on its own buffers (udpBatcher). miekg/dns's UDP
// server starts a goroutine per packet and makes two syscalls per query;
// under load the syscalls, not the answers, are where the time goes.
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
	b, err := newUDPBatcher(conn)
	if err != nil {
		return err
	}
	for {
		n, err := b.read()
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
		// One clock reading for the batch: the fast answers' duration is
		// the batch's, from its read to its last answer, an upper bound
		// that costs no clock reading per query.
		start := time.Now()
		fast := [2]int{} // A, AAAA
		for i := range n {
			pkt := b.packet(i)
			if answer, qtype, ok := s.fastAnswer(pkt, b.answerBuf(i)); ok {
				fast[fastIndex(qtype)]++
				b.answer(i, answer)
				continue
			}
			from := b.peer(i)
			reply, forward := s.udpReply(pkt, from.Addr().Unmap())
			if forward != nil {
				s.forwardUDP(conn, forward, from)
				continue
			}
			if reply == nil {
				continue
			}
			packed, err := reply.PackBuffer(b.answerBuf(i))
			if err != nil {
				s.logger.Debug("packing DNS answer", zap.Error(err))
				continue
			}
			b.answer(i, packed)
		}
		s.metrics.observeFast(fast, start)
		if err := b.flush(); err != nil {
			s.logger.Debug("writing DNS answers", zap.Error(err))
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
func (s *Server) forwardUDP(conn *net.UDPConn, r *dns.Msg, addr netip.AddrPort) {
	select {
	case s.forwarding <- struct{}{}:
	default:
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeServerFailure)
		s.metrics.observe(r.Question[0].Qtype, m.Rcode, time.Now())
		if b, err := m.Pack(); err == nil {
			conn.WriteToUDPAddrPort(b, addr)
		}
		return
	}
	go func() {
		defer func() { <-s.forwarding }()
		m := s.respond(r, true, addr.Addr().Unmap())
		b, err := m.Pack()
		if err == nil {
			_, err = conn.WriteToUDPAddrPort(b, addr)
		}
		if err != nil {
			s.logger.Debug("writing a forwarded DNS answer", zap.Error(err))
		}
	}()
}
