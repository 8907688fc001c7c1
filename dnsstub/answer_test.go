package dnsstub

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/neo4j/private-ingress/routing"
)

var testNS = routing.Namespace{Domain: "neo4j.io", Orchestras: []string{"0000", "0001"}}

// recorder is a dns.ResponseWriter that keeps what was written.
type recorder struct {
	remote net.Addr
	msg    *dns.Msg
	packed []byte
}

// loopback is the client of most tests: allowed to use forwarding by
// default.
var loopback = netip.MustParseAddr("127.0.0.1")

// newRecorderFrom is a recorder for a query that came from ip.
func newRecorderFrom(network, ip string) *recorder {
	w := newRecorder(network)
	switch a := w.remote.(type) {
	case *net.UDPAddr:
		a.IP = net.ParseIP(ip)
	case *net.TCPAddr:
		a.IP = net.ParseIP(ip)
	}
	return w
}

func newRecorder(network string) *recorder {
	if network == "tcp" {
		return &recorder{remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}}
	}
	return &recorder{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}}
}

func (r *recorder) LocalAddr() net.Addr  { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (r *recorder) RemoteAddr() net.Addr { return r.remote }
func (r *recorder) WriteMsg(m *dns.Msg) error {
	r.msg = m
	var err error
	r.packed, err = m.Pack()
	return err
}
func (r *recorder) Write(b []byte) (int, error) { r.packed = b; return len(b), nil }
func (r *recorder) Close() error                { return nil }
func (r *recorder) TsigStatus() error           { return nil }
func (r *recorder) TsigTimersOnly(bool)         {}
func (r *recorder) Hijack()                     {}

func testServer(t testing.TB, cfg Config, routes *routing.Holder) *Server {
	t.Helper()
	if cfg.TTL == 0 {
		cfg.TTL = 60
	}
	if cfg.AnswerIPv4 == nil {
		cfg.AnswerIPv4 = []string{"10.10.10.10"}
	}
	return New(Options{Config: cfg, Namespace: testNS, Routes: routes})
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

func TestAnswers(t *testing.T) {
	var routes routing.Holder
	table, err := routing.Parse("routes.yaml", []byte(`
instances:
  - {dbid: abcd1234, orch: "0000", public: true}
`), testNS, nil)
	if err != nil {
		t.Fatal(err)
	}
	routes.Store(table)
	plain := testServer(t, Config{}, nil)
	dual := testServer(t, Config{AnswerIPv6: []string{"fd00::10"}}, nil)
	known := testServer(t, Config{KnownOnly: true}, &routes)
	known.TXT().AddTXT(t.Context(), "_acme-challenge.production-orch-0000.neo4j.io", "token-wildcard")
	known.TXT().AddTXT(t.Context(), "_acme-challenge.production-orch-0000.neo4j.io.", "token-apex")

	const zone = "production-orch-0000.neo4j.io."
	for _, tc := range []struct {
		name    string
		srv     *Server
		q       *dns.Msg
		rcode   int
		answer  []string // RR strings, in order
		soaInNs bool
		aa      bool
	}{
		{"A for any dbid", plain, query("zz99.production-orch-0000.neo4j.io.", dns.TypeA), dns.RcodeSuccess,
			[]string{"zz99.production-orch-0000.neo4j.io.\t60\tIN\tA\t10.10.10.10"}, false, true},
		{"A deeper under the zone", plain, query("a.b.production-orch-0001.neo4j.io.", dns.TypeA), dns.RcodeSuccess,
			[]string{"a.b.production-orch-0001.neo4j.io.\t60\tIN\tA\t10.10.10.10"}, false, true},
		{"upper case echoed as asked", plain, query("ABCD1234.Production-ORCH-0000.NEO4J.io.", dns.TypeA), dns.RcodeSuccess,
			[]string{"ABCD1234.Production-ORCH-0000.NEO4J.io.\t60\tIN\tA\t10.10.10.10"}, false, true},
		{"AAAA without IPv6 is NODATA", plain, query("abcd1234."+zone, dns.TypeAAAA), dns.RcodeSuccess, nil, true, true},
		{"AAAA with IPv6", dual, query("abcd1234."+zone, dns.TypeAAAA), dns.RcodeSuccess,
			[]string{"abcd1234.production-orch-0000.neo4j.io.\t60\tIN\tAAAA\tfd00::10"}, false, true},
		{"MX under the zone is NODATA", plain, query("abcd1234."+zone, dns.TypeMX), dns.RcodeSuccess, nil, true, true},
		{"apex SOA", plain, query(zone, dns.TypeSOA), dns.RcodeSuccess, nil, false, true},
		{"apex NS", plain, query(zone, dns.TypeNS), dns.RcodeSuccess,
			[]string{"production-orch-0000.neo4j.io.\t60\tIN\tNS\tns1.production-orch-0000.neo4j.io."}, false, true},
		{"apex A is NODATA", plain, query(zone, dns.TypeA), dns.RcodeSuccess, nil, true, true},
		{"outside every zone", plain, query("example.com.", dns.TypeA), dns.RcodeRefused, nil, false, false},
		{"an orch not served", plain, query("abcd1234.production-orch-0002.neo4j.io.", dns.TypeA), dns.RcodeRefused, nil, false, false},
		{"the parent domain", plain, query("neo4j.io.", dns.TypeSOA), dns.RcodeRefused, nil, false, false},
		{"suffix without a label boundary", plain, query("xproduction-orch-0000.neo4j.io.", dns.TypeA), dns.RcodeRefused, nil, false, false},
		{"known_only: known dbid", known, query("abcd1234."+zone, dns.TypeA), dns.RcodeSuccess,
			[]string{"abcd1234.production-orch-0000.neo4j.io.\t60\tIN\tA\t10.10.10.10"}, false, true},
		{"known_only: the NS host answers", known, query("ns1."+zone, dns.TypeA), dns.RcodeSuccess,
			[]string{"ns1.production-orch-0000.neo4j.io.\t60\tIN\tA\t10.10.10.10"}, false, true},
		{"known_only: unknown dbid", known, query("nosuchdb."+zone, dns.TypeA), dns.RcodeNameError, nil, true, true},
		{"known_only: known dbid, other orch", known, query("abcd1234.production-orch-0001.neo4j.io.", dns.TypeA), dns.RcodeNameError, nil, true, true},
		{"ACME TXT holds both values", known, query("_acme-challenge."+zone, dns.TypeTXT), dns.RcodeSuccess, []string{
			"_acme-challenge.production-orch-0000.neo4j.io.\t0\tIN\tTXT\t\"token-wildcard\"",
			"_acme-challenge.production-orch-0000.neo4j.io.\t0\tIN\tTXT\t\"token-apex\"",
		}, false, true},
		{"no ACME TXT elsewhere", plain, query("_acme-challenge."+zone, dns.TypeTXT), dns.RcodeSuccess, nil, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.srv.answer(tc.q, true)
			if m.Rcode != tc.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode])
			}
			if m.Authoritative != tc.aa {
				t.Errorf("AA %v, want %v", m.Authoritative, tc.aa)
			}
			if m.Question[0].Name != tc.q.Question[0].Name {
				t.Errorf("question %q, want it echoed as %q", m.Question[0].Name, tc.q.Question[0].Name)
			}
			if tc.answer != nil || tc.q.Question[0].Qtype != dns.TypeSOA {
				if len(m.Answer) != len(tc.answer) {
					t.Fatalf("answer %v, want %v", m.Answer, tc.answer)
				}
				for i, rr := range m.Answer {
					if rr.String() != tc.answer[i] {
						t.Errorf("answer[%d] %q, want %q", i, rr.String(), tc.answer[i])
					}
				}
			}
			hasSOA := len(m.Ns) == 1 && m.Ns[0].Header().Rrtype == dns.TypeSOA
			if hasSOA != tc.soaInNs {
				t.Errorf("SOA in authority %v, want %v (%v)", hasSOA, tc.soaInNs, m.Ns)
			}
		})
	}
	t.Run("apex SOA content", func(t *testing.T) {
		m := plain.answer(query(zone, dns.TypeSOA), true)
		soa, ok := m.Answer[0].(*dns.SOA)
		if !ok || soa.Ns != "ns1."+zone || soa.Minttl != 60 || soa.Hdr.Name != zone {
			t.Fatalf("SOA %v", m.Answer)
		}
	})
	t.Run("NS glue", func(t *testing.T) {
		m := plain.answer(query(zone, dns.TypeNS), true)
		if len(m.Extra) != 1 || m.Extra[0].String() != "ns1.production-orch-0000.neo4j.io.\t60\tIN\tA\t10.10.10.10" {
			t.Fatalf("additional %v", m.Extra)
		}
	})
}

func TestServeDNSFitsTheClientsBuffer(t *testing.T) {
	var many []string
	for i := range 100 {
		many = append(many, fmt.Sprintf("10.0.%d.%d", i/250, i%250+1))
	}
	s := testServer(t, Config{AnswerIPv4: many}, nil)
	q := query("abcd1234.production-orch-0000.neo4j.io.", dns.TypeA)

	w := newRecorder("udp")
	s.ServeDNS(w, q) // no EDNS: 512 bytes
	if !w.msg.Truncated || len(w.packed) > 512 {
		t.Fatalf("plain UDP: TC %v, %d bytes", w.msg.Truncated, len(w.packed))
	}

	q.SetEdns0(1232, false)
	w = newRecorder("udp")
	s.ServeDNS(w, q)
	if !w.msg.Truncated || len(w.packed) > 1232 || w.msg.IsEdns0() == nil {
		t.Fatalf("EDNS 1232: TC %v, %d bytes, OPT %v", w.msg.Truncated, len(w.packed), w.msg.IsEdns0())
	}

	w = newRecorder("tcp")
	s.ServeDNS(w, q)
	if w.msg.Truncated || len(w.msg.Answer) != 100 {
		t.Fatalf("TCP: TC %v, %d answers, want all 100", w.msg.Truncated, len(w.msg.Answer))
	}
}

func TestServeDNSRefusesEDNSVersions(t *testing.T) {
	s := testServer(t, Config{}, nil)
	q := query("abcd1234.production-orch-0000.neo4j.io.", dns.TypeA)
	q.SetEdns0(1232, false)
	q.IsEdns0().SetVersion(1)
	w := newRecorder("udp")
	s.ServeDNS(w, q)
	if w.msg.Rcode != dns.RcodeBadVers || len(w.msg.Answer) != 0 {
		t.Fatalf("EDNS version 1: rcode %s, %d answers; want BADVERS", dns.RcodeToString[w.msg.Rcode], len(w.msg.Answer))
	}
	back := new(dns.Msg)
	if err := back.Unpack(w.packed); err != nil || back.Rcode != dns.RcodeBadVers {
		t.Fatalf("packed BADVERS: %v, rcode %d", err, back.Rcode)
	}
}

func TestFormErrWithoutOneQuestion(t *testing.T) {
	s := testServer(t, Config{}, nil)
	m := s.answer(&dns.Msg{}, true)
	if m.Rcode != dns.RcodeFormatError {
		t.Fatalf("no question: %s", dns.RcodeToString[m.Rcode])
	}
}

func TestTXTStoreRemove(t *testing.T) {
	var s TXTStore
	ctx := t.Context()
	s.AddTXT(ctx, "_acme-challenge.X.", "a")
	s.AddTXT(ctx, "_acme-challenge.x", "b")
	s.AddTXT(ctx, "_acme-challenge.x", "b")
	if got := s.lookup("_acme-challenge.x."); len(got) != 2 {
		t.Fatalf("values %v, want a and b once each", got)
	}
	s.RemoveTXT(ctx, "_acme-challenge.x", "a")
	s.RemoveTXT(ctx, "_acme-challenge.x", "b")
	if got := s.lookup("_acme-challenge.x."); len(got) != 0 {
		t.Fatalf("values %v after removal", got)
	}
}

func BenchmarkServeDNS(b *testing.B) {
	s := testServer(b, Config{}, nil)
	q := query("abcd1234.production-orch-0000.neo4j.io.", dns.TypeA)
	q.SetEdns0(1232, false)
	w := newRecorder("udp")
	b.ReportAllocs()
	for b.Loop() {
		s.ServeDNS(w, q)
	}
}

// BenchmarkUDPAnswer compares the UDP path's two ways to answer the
// common query: straight from the wire bytes, and unpack-answer-pack.
func BenchmarkUDPAnswer(b *testing.B) {
	s := testServer(b, Config{}, nil)
	q := query("abcd1234.production-orch-0000.neo4j.io.", dns.TypeA)
	q.SetEdns0(1232, false)
	pkt, _ := q.Pack()
	out := make([]byte, 0, maxUDPSize)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.fastAnswer(pkt, out)
		}
	})
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m, _ := s.udpReply(pkt, loopback)
			m.PackBuffer(out)
		}
	})
}

func TestFastAnswerDoesNotAllocate(t *testing.T) {
	s := testServer(t, Config{}, nil)
	q := query("abcd1234.production-orch-0000.neo4j.io.", dns.TypeA)
	q.SetEdns0(1232, false)
	pkt, _ := q.Pack()
	out := make([]byte, 0, maxUDPSize)
	if n := testing.AllocsPerRun(100, func() { s.fastAnswer(pkt, out) }); n != 0 {
		t.Errorf("fastAnswer allocates %v times per query, want 0", n)
	}
}

// TestUDPReplyHandsForwardsBack: the UDP read loop must not wait on an
// upstream, so udpReply leaves forwarded names to its caller and answers
// zone names itself.
func TestUDPReplyHandsForwardsBack(t *testing.T) {
	s := testServer(t, Config{AnswerIPv4: []string{"10.10.10.10"}, Forward: []string{"127.0.0.1:9"}}, nil)
	for _, tc := range []struct {
		name    string
		forward bool
	}{
		{"www.example.com.", true},
		{"abcd1234.production-orch-0000.neo4j.io.", false},
		{"ABCD1234.PRODUCTION-ORCH-0000.NEO4J.IO.", false},
	} {
		b, _ := query(tc.name, dns.TypeA).Pack()
		reply, forward := s.udpReply(b, loopback)
		if (forward != nil) != tc.forward || (reply != nil) == tc.forward {
			t.Errorf("%s: reply %v, forward %v; want forwarded=%v", tc.name, reply != nil, forward != nil, tc.forward)
		}
	}
}

// TestFastPathTakes says which queries the fast path answers itself; the
// fuzz test checks that its answers equal the full path's.
func TestFastPathTakes(t *testing.T) {
	plain := testServer(t, Config{}, nil)
	known := testServer(t, Config{KnownOnly: true}, &routing.Holder{})
	edns := query("abcd1234.production-orch-0000.neo4j.io.", dns.TypeA)
	edns.SetEdns0(1232, false)
	badvers := query("abcd1234.production-orch-0000.neo4j.io.", dns.TypeA)
	badvers.SetEdns0(1232, false)
	badvers.Extra[0].(*dns.OPT).SetVersion(1)
	for _, tc := range []struct {
		name  string
		s     *Server
		q     *dns.Msg
		takes bool
	}{
		{"A for a dbid", plain, query("abcd1234.production-orch-0000.neo4j.io.", dns.TypeA), true},
		{"upper case", plain, query("ABCD1234.PRODUCTION-ORCH-0000.NEO4J.IO.", dns.TypeA), true},
		{"deeper name", plain, query("a.b.production-orch-0001.neo4j.io.", dns.TypeA), true},
		{"with EDNS", plain, edns, true},
		{"EDNS version 1 (BADVERS)", plain, badvers, false},
		{"AAAA without IPv6 answers (NODATA)", plain, query("abcd1234.production-orch-0000.neo4j.io.", dns.TypeAAAA), false},
		{"the apex", plain, query("production-orch-0000.neo4j.io.", dns.TypeA), false},
		{"an ACME name", plain, query("_acme-challenge.production-orch-0000.neo4j.io.", dns.TypeA), false},
		{"outside the zones", plain, query("example.com.", dns.TypeA), false},
		{"ANY (RFC 8482: one RRset, full path)", plain, query("abcd1234.production-orch-0000.neo4j.io.", dns.TypeANY), false},
		{"AXFR", plain, query("production-orch-0000.neo4j.io.", dns.TypeAXFR), false},
		{"class CH", plain, withClass(query("abcd1234.production-orch-0000.neo4j.io.", dns.TypeA), dns.ClassCHAOS), false},
		{"class ANY", plain, withClass(query("abcd1234.production-orch-0000.neo4j.io.", dns.TypeA), dns.ClassANY), false},
		{"known_only", known, query("abcd1234.production-orch-0000.neo4j.io.", dns.TypeA), false},
	} {
		b, _ := tc.q.Pack()
		if _, _, took := tc.s.fastAnswer(b, make([]byte, 0, maxUDPSize)); took != tc.takes {
			t.Errorf("%s: fast path took it: %v, want %v", tc.name, took, tc.takes)
		}
	}
}
