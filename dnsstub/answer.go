package dnsstub

import (
	"net"
	"strings"

	"github.com/miekg/dns"

	"github.com/neo4j/private-ingress/routing"
)

// zone is one authoritative zone and its fixed records.
type zone struct {
	name string // lower case FQDN: production-orch-<orch>.<domain>.
	orch string
	soa  *dns.SOA
	ns   *dns.NS
}

// answer builds the response to one query: the whole decision, apart from
// forwarding, without I/O, so that tests can drive it as a table.
// mayForward says whether the client may use forwarding (see
// Server.mayForward): it decides how an ANY outside the zones is answered.
func (s *Server) answer(r *dns.Msg, mayForward bool) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Compress = true
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	q := r.Question[0]
	// Only class IN is served. Any other class (CH's version.bind and
	// hostname.bind, HS, NONE, and ANY too) is REFUSED, for names in the
	// zones as well as outside them, and never forwarded.
	if q.Qclass != dns.ClassINET {
		m.Rcode = dns.RcodeRefused
		return m
	}
	// No zone transfers: REFUSED at once, in one message, which AXFR and
	// IXFR clients take as the end of the transfer (a lone SOA would leave
	// them waiting for the closing one), and never forwarded.
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		m.Rcode = dns.RcodeRefused
		return m
	}
	name := strings.ToLower(q.Name)
	z := s.zoneOf(name)
	if z == nil {
		if q.Qtype == dns.TypeANY && mayForward {
			// Never relayed (an amplifier's favourite): RFC 8482 section
			// 4.2's synthesized HINFO to a client forwarding serves.
			m.RecursionAvailable = true
			m.Answer = append(m.Answer, &dns.HINFO{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeHINFO, Class: dns.ClassINET, Ttl: s.cfg.TTL},
				Cpu: "RFC8482", Os: "",
			})
			return m
		}
		m.Rcode = dns.RcodeRefused // the caller forwards instead when it may
		return m
	}
	m.Authoritative = true

	if name == z.name { // the apex
		switch q.Qtype {
		case dns.TypeSOA, dns.TypeANY: // ANY: one RRset (RFC 8482), the SOA
			m.Answer = append(m.Answer, withName(z.soa, q.Name))
		case dns.TypeNS:
			m.Answer = append(m.Answer, withName(z.ns, q.Name))
			m.Extra = append(m.Extra, s.addresses(z.ns.Ns, dns.TypeA)...)
			m.Extra = append(m.Extra, s.addresses(z.ns.Ns, dns.TypeAAAA)...)
		case dns.TypeTXT:
			m.Answer = s.txt(name, q.Name)
		}
		return s.noData(m, z)
	}

	// Under the zone: the label left of the zone names the database.
	rest := strings.TrimSuffix(name[:len(name)-len(z.name)], ".")
	first := rest[strings.LastIndexByte(rest, '.')+1:]
	if first == "_acme-challenge" || strings.HasPrefix(rest, "_acme-challenge.") {
		if q.Qtype == dns.TypeTXT || q.Qtype == dns.TypeANY {
			m.Answer = s.txt(name, q.Name)
		}
		return s.noData(m, z)
	}
	if s.cfg.KnownOnly && s.routes != nil && name != z.ns.Ns && !s.routes.Load().Has(first, z.orch) {
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, z.soa)
		return m
	}
	switch q.Qtype {
	case dns.TypeA, dns.TypeAAAA:
		m.Answer = s.addresses(q.Name, q.Qtype)
	case dns.TypeANY: // one RRset (RFC 8482): the A records, else the AAAA
		if len(s.ipv4) > 0 {
			m.Answer = s.addresses(q.Name, dns.TypeA)
		} else {
			m.Answer = s.addresses(q.Name, dns.TypeAAAA)
		}
	}
	return s.noData(m, z)
}

// noData puts the zone's SOA in the authority section of an empty answer,
// so that resolvers cache the negative answer for the SOA's minimum TTL.
func (s *Server) noData(m *dns.Msg, z *zone) *dns.Msg {
	if len(m.Answer) == 0 && m.Rcode == dns.RcodeSuccess {
		m.Ns = append(m.Ns, z.soa)
	}
	return m
}

// zoneOf finds the zone name is in, walking its labels from the left.
func (s *Server) zoneOf(name string) *zone {
	for off, end := 0, false; !end; off, end = dns.NextLabel(name, off) {
		if z, ok := s.zones[name[off:]]; ok {
			return z
		}
	}
	return nil
}

// addresses answers A or AAAA for name (as the client wrote it).
func (s *Server) addresses(name string, qtype uint16) []dns.RR {
	hdr := dns.RR_Header{Name: name, Rrtype: qtype, Class: dns.ClassINET, Ttl: s.cfg.TTL}
	var rrs []dns.RR
	if qtype == dns.TypeA {
		for _, ip := range s.ipv4 {
			rrs = append(rrs, &dns.A{Hdr: hdr, A: ip})
		}
	} else {
		for _, ip := range s.ipv6 {
			rrs = append(rrs, &dns.AAAA{Hdr: hdr, AAAA: ip})
		}
	}
	return rrs
}

func (s *Server) txt(lower, asked string) []dns.RR {
	var rrs []dns.RR
	for _, v := range s.acme.lookup(lower) {
		rrs = append(rrs, &dns.TXT{
			// A challenge record must not be cached past its use.
			Hdr: dns.RR_Header{Name: asked, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 0},
			Txt: []string{v},
		})
	}
	return rrs
}

func withName(rr dns.RR, name string) dns.RR {
	c := dns.Copy(rr)
	c.Header().Name = name
	return c
}

func newZone(orch, domain string, ttl uint32, serial uint32) *zone {
	name := dns.Fqdn(routing.ZoneName(orch, domain))
	ns := "ns1." + name
	return &zone{
		name: name,
		orch: orch,
		soa: &dns.SOA{
			Hdr:     dns.RR_Header{Name: name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
			Ns:      ns,
			Mbox:    "hostmaster." + name,
			Serial:  serial,
			Refresh: 3600, Retry: 600, Expire: 86400,
			Minttl: ttl,
		},
		ns: &dns.NS{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: ttl}, Ns: ns},
	}
}

func parseIPs(list []string, v4 bool) []net.IP {
	var out []net.IP
	for _, s := range list {
		ip := net.ParseIP(s)
		if ip == nil {
			continue // internal/config has validated them
		}
		if v4 {
			ip = ip.To4()
		}
		out = append(out, ip)
	}
	return out
}
