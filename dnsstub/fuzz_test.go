package dnsstub

import (
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
	f.Fuzz(func(t *testing.T, pkt []byte) {
		reply, forward := s.udpReply(pkt)
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
