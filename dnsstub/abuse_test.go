package dnsstub

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func withClass(m *dns.Msg, class uint16) *dns.Msg {
	m.Question[0].Qclass = class
	return m
}

// TestMayForward: forwarding answers only the clients dns.allow holds,
// loopback and the private ranges by default.
func TestMayForward(t *testing.T) {
	def := testServer(t, Config{Forward: []string{"127.0.0.1:9"}}, nil)
	custom := testServer(t, Config{Forward: []string{"127.0.0.1:9"}, Allow: []string{"203.0.113.0/24", "::ffff:198.51.100.0/120", "2001:db8::/32"}}, nil)
	noForward := testServer(t, Config{}, nil)
	for _, tc := range []struct {
		s      *Server
		client string // "" is an unknown address
		want   bool
	}{
		{def, "127.0.0.1", true},
		{def, "127.8.9.10", true},
		{def, "::1", true},
		{def, "10.1.2.3", true},
		{def, "172.16.0.1", true},
		{def, "172.31.255.255", true},
		{def, "172.32.0.1", false},
		{def, "192.168.7.7", true},
		{def, "192.169.0.1", false},
		{def, "fd00::53", true},
		{def, "fc00::1", true},
		{def, "fe80::1", false},
		{def, "8.8.8.8", false},
		{def, "2001:db8::1", false},
		{def, "::ffff:10.0.0.1", true}, // an IPv4 client on a [::] socket
		{def, "::ffff:8.8.8.8", false},
		{def, "", false},
		{custom, "203.0.113.9", true},
		{custom, "198.51.100.4", true}, // a mapped prefix matches the unmapped client
		{custom, "::ffff:198.51.100.4", true},
		{custom, "2001:db8:1::1", true},
		{custom, "127.0.0.1", false}, // allow replaces the default
		{custom, "10.0.0.1", false},
		{noForward, "127.0.0.1", false}, // nothing to forward to
	} {
		var client netip.Addr
		if tc.client != "" {
			client = netip.MustParseAddr(tc.client)
		}
		if got := tc.s.mayForward(client); got != tc.want {
			t.Errorf("allow %v forward %v: mayForward(%s) = %v, want %v", tc.s.cfg.Allow, tc.s.cfg.Forward, tc.client, got, tc.want)
		}
	}
}

// TestForwardsDecision: what goes upstream, and what never does (ANY,
// zone transfers, classes other than IN, clients outside dns.allow).
func TestForwardsDecision(t *testing.T) {
	s := testServer(t, Config{Forward: []string{"127.0.0.1:9"}}, nil)
	outsider := netip.MustParseAddr("198.51.100.7")
	badvers := query("www.example.com.", dns.TypeA)
	badvers.SetEdns0(1232, false)
	badvers.IsEdns0().SetVersion(1)
	for _, tc := range []struct {
		name   string
		q      *dns.Msg
		client netip.Addr
		want   bool
	}{
		{"A outside, allowed client", query("www.example.com.", dns.TypeA), loopback, true},
		{"MX outside, allowed client", query("example.com.", dns.TypeMX), loopback, true},
		{"A outside, client not in allow", query("www.example.com.", dns.TypeA), outsider, false},
		{"ANY outside", query("example.com.", dns.TypeANY), loopback, false},
		{"AXFR outside", query("example.com.", dns.TypeAXFR), loopback, false},
		{"IXFR outside", query("example.com.", dns.TypeIXFR), loopback, false},
		{"CH TXT version.bind", withClass(query("version.bind.", dns.TypeTXT), dns.ClassCHAOS), loopback, false},
		{"class ANY outside", withClass(query("www.example.com.", dns.TypeA), dns.ClassANY), loopback, false},
		{"zone name", query("abcd1234.production-orch-0000.neo4j.io.", dns.TypeA), loopback, false},
		{"EDNS version 1", badvers, loopback, false},
	} {
		if got := s.forwards(tc.q, tc.client); got != tc.want {
			t.Errorf("%s: forwards = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestMinimalANY: ANY gets one RRset (RFC 8482) in the zones, and outside
// them a synthesized HINFO for a client forwarding serves, REFUSED for
// others; nothing is relayed.
func TestMinimalANY(t *testing.T) {
	plain := testServer(t, Config{AnswerIPv6: []string{"fd00::10"}}, nil)
	v6only := testServer(t, Config{AnswerIPv4: []string{}, AnswerIPv6: []string{"fd00::10", "fd00::11"}}, nil)
	plain.TXT().AddTXT(t.Context(), "_acme-challenge.production-orch-0000.neo4j.io.", "token")
	const zone = "production-orch-0000.neo4j.io."
	for _, tc := range []struct {
		name       string
		s          *Server
		q          string
		mayForward bool
		rcode      int
		types      []uint16 // of the answer, in order
	}{
		{"a dbid: the A records", plain, "abcd1234." + zone, true, dns.RcodeSuccess, []uint16{dns.TypeA}},
		{"no IPv4: the AAAA records", v6only, "abcd1234." + zone, true, dns.RcodeSuccess, []uint16{dns.TypeAAAA, dns.TypeAAAA}},
		{"the apex: the SOA", plain, zone, true, dns.RcodeSuccess, []uint16{dns.TypeSOA}},
		{"an ACME name: its TXT", plain, "_acme-challenge." + zone, true, dns.RcodeSuccess, []uint16{dns.TypeTXT}},
		{"in a zone, whatever the client", plain, "abcd1234." + zone, false, dns.RcodeSuccess, []uint16{dns.TypeA}},
		{"outside, client may forward: HINFO", plain, "example.com.", true, dns.RcodeSuccess, []uint16{dns.TypeHINFO}},
		{"outside, client may not forward", plain, "example.com.", false, dns.RcodeRefused, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.s.answer(query(tc.q, dns.TypeANY), tc.mayForward)
			if m.Rcode != tc.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode])
			}
			var types []uint16
			for _, rr := range m.Answer {
				types = append(types, rr.Header().Rrtype)
				if rr.Header().Name != tc.q {
					t.Errorf("owner %q, want %q", rr.Header().Name, tc.q)
				}
			}
			if len(types) != len(tc.types) {
				t.Fatalf("answer %v, want types %v", m.Answer, tc.types)
			}
			for i := range types {
				if types[i] != tc.types[i] {
					t.Fatalf("answer %v, want types %v", m.Answer, tc.types)
				}
			}
			if h, ok := firstHINFO(m); ok && (h.Cpu != "RFC8482" || h.Os != "") {
				t.Errorf("HINFO %q %q, want \"RFC8482\" \"\" (RFC 8482 section 4.2)", h.Cpu, h.Os)
			}
		})
	}
}

func firstHINFO(m *dns.Msg) (*dns.HINFO, bool) {
	for _, rr := range m.Answer {
		if h, ok := rr.(*dns.HINFO); ok {
			return h, true
		}
	}
	return nil, false
}

// TestRefusedClassesAndTransfers: zone transfers and classes other than IN
// are REFUSED, in the zones too.
func TestRefusedClassesAndTransfers(t *testing.T) {
	s := testServer(t, Config{Forward: []string{"127.0.0.1:9"}}, nil)
	const zone = "production-orch-0000.neo4j.io."
	ixfr := new(dns.Msg)
	ixfr.SetIxfr(zone, 1, "ns1."+zone, "hostmaster."+zone)
	for _, tc := range []struct {
		name string
		q    *dns.Msg
	}{
		{"AXFR of a zone", query(zone, dns.TypeAXFR)},
		{"IXFR of a zone", ixfr},
		{"AXFR under a zone", query("abcd1234."+zone, dns.TypeAXFR)},
		{"AXFR outside", query("example.com.", dns.TypeAXFR)},
		{"CH A in a zone", withClass(query("abcd1234."+zone, dns.TypeA), dns.ClassCHAOS)},
		{"CH TXT version.bind", withClass(query("version.bind.", dns.TypeTXT), dns.ClassCHAOS)},
		{"HS A in a zone", withClass(query("abcd1234."+zone, dns.TypeA), dns.ClassHESIOD)},
		{"class ANY in a zone", withClass(query("abcd1234."+zone, dns.TypeA), dns.ClassANY)},
	} {
		for _, network := range []string{"udp", "tcp"} {
			// Forwarding is configured, and a forward would be SERVFAIL:
			// nothing listens on port 9.
			w := newRecorder(network)
			s.ServeDNS(w, tc.q)
			if w.msg.Rcode != dns.RcodeRefused || len(w.msg.Answer)+len(w.msg.Ns) != 0 {
				t.Errorf("%s over %s: rcode %s, %d answers, %d authority; want REFUSED and nothing else",
					tc.name, network, dns.RcodeToString[w.msg.Rcode], len(w.msg.Answer), len(w.msg.Ns))
			}
		}
	}
}

// TestServeDNSRefusesOutsideAllow: a client outside dns.allow is not
// forwarded for (REFUSED, not the SERVFAIL a forward to the dead upstream
// gives), and still gets the zones' answers.
func TestServeDNSRefusesOutsideAllow(t *testing.T) {
	s := testServer(t, Config{Forward: []string{"127.0.0.1:9"}}, nil)
	for _, network := range []string{"udp", "tcp"} {
		for _, ip := range []string{"198.51.100.7", "2001:db8::7", "::ffff:198.51.100.7"} {
			w := newRecorderFrom(network, ip)
			s.ServeDNS(w, query("www.example.com.", dns.TypeA))
			if w.msg.Rcode != dns.RcodeRefused {
				t.Errorf("%s client %s, outside name: %s, want REFUSED", network, ip, dns.RcodeToString[w.msg.Rcode])
			}
			w = newRecorderFrom(network, ip)
			s.ServeDNS(w, query("example.com.", dns.TypeANY))
			if w.msg.Rcode != dns.RcodeRefused || len(w.msg.Answer) != 0 {
				t.Errorf("%s client %s, ANY outside: %s %v, want REFUSED", network, ip, dns.RcodeToString[w.msg.Rcode], w.msg.Answer)
			}
			w = newRecorderFrom(network, ip)
			s.ServeDNS(w, query("abcd1234.production-orch-0000.neo4j.io.", dns.TypeA))
			if w.msg.Rcode != dns.RcodeSuccess || len(w.msg.Answer) != 1 {
				t.Errorf("%s client %s, zone name: %s %v", network, ip, dns.RcodeToString[w.msg.Rcode], w.msg.Answer)
			}
		}
	}
	// The UDP path decides the same from the datagram's source.
	b, _ := query("www.example.com.", dns.TypeA).Pack()
	reply, forward := s.udpReply(b, netip.MustParseAddr("198.51.100.7"))
	if forward != nil || reply == nil || reply.Rcode != dns.RcodeRefused {
		t.Errorf("udpReply from outside allow: reply %v, forward %v; want REFUSED", reply, forward != nil)
	}
	if _, forward := s.udpReply(b, loopback); forward == nil {
		t.Error("udpReply from loopback: not forwarded")
	}
}

func TestAllowPrefixes(t *testing.T) {
	var got []string
	for _, p := range (Config{}).allowPrefixes() {
		got = append(got, p.String())
	}
	if want := strings.Join(DefaultAllow(), " "); strings.Join(got, " ") != want {
		t.Errorf("default allow %v, want %s", got, want)
	}
	got = nil
	for _, p := range (Config{Allow: []string{"10.1.2.3/8", "::ffff:192.0.2.0/120"}}).allowPrefixes() {
		got = append(got, p.String())
	}
	if strings.Join(got, " ") != "10.0.0.0/8 192.0.2.0/24" {
		t.Errorf("allow prefixes %v, want masked and unmapped", got)
	}
	// DefaultAllow hands out a fresh slice.
	DefaultAllow()[0] = "0.0.0.0/0"
	if DefaultAllow()[0] != "127.0.0.0/8" {
		t.Error("DefaultAllow shares its slice")
	}
	if (Config{}).maxTCPConnections() != DefaultMaxTCPConnections || (Config{MaxTCPConnections: -1}).maxTCPConnections() != DefaultMaxTCPConnections ||
		(Config{MaxTCPConnections: 7}).maxTCPConnections() != 7 {
		t.Error("maxTCPConnections: 0 or less is the default, else the value")
	}
}
