package dnsstub

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// FuzzServeDNS feeds raw bytes, as they would arrive on the socket, to the
// handler: it must never panic, and an answer must never be much larger
// than the question allows (no amplification).
func FuzzServeDNS(f *testing.F) {
	for _, seed := range []*dns.Msg{
		query("abcd1234.production-orch-0000.neo4j.io.", dns.TypeA),
		query("production-orch-0000.neo4j.io.", dns.TypeNS),
		query("_acme-challenge.production-orch-0000.neo4j.io.", dns.TypeTXT),
		query("example.com.", dns.TypeANY),
		query("abcd1234.production-orch-0000.neo4j.io.", dns.TypeANY),
		query("production-orch-0000.neo4j.io.", dns.TypeAXFR),
		withClass(query("version.bind.", dns.TypeTXT), dns.ClassCHAOS),
	} {
		seed.SetEdns0(4096, true)
		b, _ := seed.Pack()
		f.Add(b)
	}
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{})
	many := make([]string, 30)
	for i := range many {
		many[i] = "10.0.0.1"
	}
	s := testServer(f, Config{AnswerIPv4: many, AnswerIPv6: []string{"fd00::1"}}, nil)
	s.TXT().AddTXT(f.Context(), "_acme-challenge.production-orch-0000.neo4j.io.", "token")
	f.Fuzz(func(t *testing.T, raw []byte) {
		q := new(dns.Msg)
		if err := q.Unpack(raw); err != nil {
			return // miekg/dns answers FORMERR or drops before the handler
		}
		if q.Response || len(q.Question) != 1 {
			return // rejected by miekg/dns's default accept function
		}
		w := newRecorder("udp")
		s.ServeDNS(w, q)
		if w.msg == nil {
			t.Fatal("no answer written")
		}
		limit := dns.MinMsgSize
		if opt := q.IsEdns0(); opt != nil && int(opt.UDPSize()) > limit {
			limit = int(opt.UDPSize())
		}
		if len(w.packed) > limit {
			t.Fatalf("UDP answer of %d bytes for a client buffer of %d", len(w.packed), limit)
		}
		// Zone transfers and classes other than IN are always refused
		// (BADVERS aside, which comes first).
		qq := q.Question[0]
		if opt := q.IsEdns0(); opt == nil || opt.Version() == 0 {
			if (qq.Qtype == dns.TypeAXFR || qq.Qtype == dns.TypeIXFR || qq.Qclass != dns.ClassINET) && w.msg.Rcode != dns.RcodeRefused {
				t.Fatalf("type %d class %d answered %s, want REFUSED", qq.Qtype, qq.Qclass, dns.RcodeToString[w.msg.Rcode])
			}
		}
		// ANY is answered with one RRset at most (RFC 8482).
		if qq.Qtype == dns.TypeANY && len(w.msg.Answer) > 0 {
			first := w.msg.Answer[0].Header().Rrtype
			for _, rr := range w.msg.Answer {
				if rr.Header().Rrtype != first {
					t.Fatalf("ANY answered with several RRsets: %v", w.msg.Answer)
				}
			}
		}
	})
}

// FuzzUDPReply feeds raw datagrams to the UDP path's own parser, the one
// production traffic meets: it must never panic, must stay silent for
// responses and runts, and must never answer with more than the client's
// buffer allows.
func FuzzUDPReply(f *testing.F) {
	for _, seed := range []*dns.Msg{
		query("abcd1234.production-orch-0000.neo4j.io.", dns.TypeA),
		query("ABCD1234.Production-Orch-0000.neo4j.io.", dns.TypeAAAA),
		query("example.com.", dns.TypeA),
		query("example.com.", dns.TypeANY),
		query("example.com.", dns.TypeAXFR),
		withClass(query("version.bind.", dns.TypeTXT), dns.ClassCHAOS),
	} {
		seed.SetEdns0(1232, false)
		b, _ := seed.Pack()
		f.Add(b)
	}
	f.Add([]byte{0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0}) // a response
	f.Add([]byte{0, 1, 0x28, 0, 0, 1, 0, 0, 0, 0, 0, 0}) // an UPDATE
	f.Add([]byte{0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0})    // two questions
	many := make([]string, 40)
	for i := range many {
		many[i] = "10.0.0.1"
	}
	s := testServer(f, Config{AnswerIPv4: many, Forward: []string{"127.0.0.1:9"}}, nil)
	outsider := netip.MustParseAddr("198.51.100.7")
	f.Fuzz(func(t *testing.T, pkt []byte) {
		// A client outside dns.allow is never forwarded for.
		if _, forward := s.udpReply(pkt, outsider); forward != nil {
			t.Fatalf("forwarded for a client outside allow: %v", forward.Question)
		}
		reply, forward := s.udpReply(pkt, loopback)
		if len(pkt) < 12 || pkt[2]&0x80 != 0 {
			if reply != nil || forward != nil {
				t.Fatal("answered a runt or a response")
			}
			return
		}
		if forward != nil {
			if reply != nil || len(forward.Question) != 1 {
				t.Fatal("a forward must be one question and no reply")
			}
			if q := forward.Question[0]; q.Qclass != dns.ClassINET || !relayed(q.Qtype) {
				t.Fatalf("forwarded type %d class %d: only class IN, never ANY or a transfer", q.Qtype, q.Qclass)
			}
			return
		}
		if reply == nil {
			t.Fatal("a query got neither a reply nor a forward")
		}
		packed, err := reply.Pack()
		if err != nil {
			t.Fatalf("packing the reply: %v", err)
		}
		limit := dns.MinMsgSize
		q := new(dns.Msg)
		if q.Unpack(pkt) == nil {
			if opt := q.IsEdns0(); opt != nil && int(opt.UDPSize()) > limit {
				limit = min(int(opt.UDPSize()), maxUDPSize)
			}
		}
		if len(packed) > limit {
			t.Fatalf("UDP answer of %d bytes for a client buffer of %d", len(packed), limit)
		}
	})
}

// FuzzFastPathMatchesFullPath: wherever the fast path answers, its bytes
// are exactly those the full path (unpack, answer, pack) sends.
func FuzzFastPathMatchesFullPath(f *testing.F) {
	for _, seed := range []struct {
		name   string
		qtype  uint16
		edns   uint16
		rd, cd bool
	}{
		{"abcd1234.production-orch-0000.neo4j.io.", dns.TypeA, 0, true, false},
		{"ABCD1234.Production-Orch-0000.NEO4J.io.", dns.TypeAAAA, 1232, false, true},
		{"x.abcd1234.production-orch-0001.neo4j.io.", dns.TypeA, 4096, true, true},
		{"abcd1234.production-orch-0000.neo4j.io.", dns.TypeA, 100, false, false},
		{"_acme-challenge.production-orch-0000.neo4j.io.", dns.TypeA, 0, false, false},
		{"production-orch-0000.neo4j.io.", dns.TypeA, 0, false, false},
		{"abcd1234.production-orch-0000.neo4j.io.", dns.TypeANY, 1232, true, false},
		{"production-orch-0000.neo4j.io.", dns.TypeAXFR, 0, false, false},
	} {
		m := query(seed.name, seed.qtype)
		m.RecursionDesired, m.CheckingDisabled = seed.rd, seed.cd
		if seed.edns != 0 {
			m.SetEdns0(seed.edns, true)
		}
		b, _ := m.Pack()
		f.Add(b)
	}
	// 31 addresses overflow 512 bytes: without EDNS the full path truncates,
	// and the fast path must step aside.
	many := make([]string, 31)
	for i := range many {
		many[i] = fmt.Sprintf("10.0.0.%d", i+1)
	}
	s := testServer(f, Config{AnswerIPv4: many, AnswerIPv6: []string{"fd00::1", "fd00::2"}, TTL: 60}, nil)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		fast, _, ok := s.fastAnswer(pkt, make([]byte, 0, maxUDPSize))
		if !ok {
			return
		}
		reply, forward := s.udpReply(pkt, loopback)
		if reply == nil || forward != nil {
			t.Fatalf("the fast path answered what the full path does not: %x", pkt)
		}
		full, err := reply.Pack()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fast, full) {
			t.Fatalf("query %x\nfast %x\nfull %x", pkt, fast, full)
		}
	})
}
