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
