package dnsstub

import (
	"encoding/binary"
	"net"
	"time"

	"github.com/miekg/dns"
)

// The fast path answers the query that is nearly all of the traffic, an A
// (or AAAA) for a database name under a zone, straight from the wire bytes:
// no unpacking into a dns.Msg, no packing back, no allocation. Anything it
// does not recognise exactly goes to the full path, and a fuzz test checks
// that both give the same bytes wherever the fast one answers.

// wireName is a zone's name in wire form (lower case, as given), for
// suffix matching.
func wireName(fqdn string) []byte {
	buf := make([]byte, 256)
	n, _ := dns.PackDomainName(fqdn, buf, 0, nil, false)
	return buf[:n]
}

// fastAnswer writes into out the answer to pkt if pkt is a plain A or AAAA
// query for a name strictly under a zone, and reports whether it did.
func (s *Server) fastAnswer(pkt, out []byte) (answer []byte, qtype uint16, ok bool) {
	if s.cfg.KnownOnly || len(pkt) < 12+1+4 {
		return nil, 0, false
	}
	// Header: a query (QR 0, opcode 0), one question, no answers or
	// authority, at most one additional record (the OPT).
	if pkt[2]&0xF8 != 0 || binary.BigEndian.Uint32(pkt[4:]) != 1<<16 || binary.BigEndian.Uint16(pkt[8:]) != 0 {
		return nil, 0, false
	}
	arcount := binary.BigEndian.Uint16(pkt[10:])
	if arcount > 1 {
		return nil, 0, false
	}
	nameEnd, named := s.scanName(pkt)
	if !named {
		return nil, 0, false
	}
	qEnd := nameEnd + 4
	if len(pkt) < qEnd || binary.BigEndian.Uint16(pkt[nameEnd+2:]) != dns.ClassINET {
		return nil, 0, false
	}
	qtype = binary.BigEndian.Uint16(pkt[nameEnd:])
	var ips []net.IP
	switch qtype {
	case dns.TypeA:
		ips = s.ipv4
	case dns.TypeAAAA:
		ips = s.ipv6
	}
	if len(ips) == 0 {
		return nil, 0, false // NODATA, or another type: the full path adds the SOA
	}
	size := dns.MinMsgSize
	edns := arcount == 1
	if edns {
		// The OPT record: root name, type 41, class = the client's buffer,
		// TTL = extended rcode, version (must be 0), flags; then its data.
		opt := pkt[qEnd:]
		if len(opt) < 11 || opt[0] != 0 || binary.BigEndian.Uint16(opt[1:]) != dns.TypeOPT || opt[6] != 0 ||
			int(binary.BigEndian.Uint16(opt[9:])) != len(opt)-11 {
			return nil, 0, false
		}
		size = min(max(int(binary.BigEndian.Uint16(opt[3:])), dns.MinMsgSize), maxUDPSize)
	} else if len(pkt) != qEnd {
		return nil, 0, false
	}

	// The answer, as miekg/dns packs the full path's message.
	out = append(out[:0], pkt[0], pkt[1],
		0x80|0x04|pkt[2]&0x01, // QR, AA, the client's RD
		pkt[3]&0x10,           // the client's CD; RCODE 0
		0, 1, byte(len(ips)>>8), byte(len(ips)), 0, 0, 0, 0)
	if edns {
		out[11] = 1
	}
	out = append(out, pkt[12:qEnd]...)
	for _, ip := range ips {
		out = append(out, 0xC0, 12) // the name: a pointer to the question's
		out = binary.BigEndian.AppendUint16(out, qtype)
		out = binary.BigEndian.AppendUint16(out, dns.ClassINET)
		out = binary.BigEndian.AppendUint32(out, s.cfg.TTL)
		out = binary.BigEndian.AppendUint16(out, uint16(len(ip)))
		out = append(out, ip...)
	}
	if edns {
		out = append(out, 0, 0, byte(dns.TypeOPT), byte(size>>8), byte(size), 0, 0, 0, 0, 0, 0)
	}
	if len(out) > size {
		return nil, 0, false // the full path truncates and sets TC
	}
	return out, qtype, true
}

// scanName reads the question's name from pkt[12:]: plain labels of
// letters, digits and hyphens, left of a zone's name at a label boundary,
// with at least one label left of the zone. It returns where the name ends.
func (s *Server) scanName(pkt []byte) (end int, ok bool) {
	var starts [128]int // label offsets; a 255-byte name has fewer
	n := 0
	off := 12
	for {
		if off >= len(pkt) {
			return 0, false
		}
		l := int(pkt[off])
		if l == 0 {
			off++
			break
		}
		if l > 63 || off+1+l > len(pkt) || off+1+l-12 >= 255 {
			return 0, false // a pointer, a bad length, or too long
		}
		starts[n] = off
		n++
		off += 1 + l
	}
	name := pkt[12:off]
	for i := 1; i < n; i++ {
		suffix := pkt[starts[i]:off]
		for _, z := range s.wireZones {
			if equalFoldASCII(suffix, z) {
				return off, isLDH(name[:starts[i]-12])
			}
		}
	}
	return 0, false
}

// isLDH reports whether the labels in b (wire form) hold only letters,
// digits and hyphens: names like _acme-challenge take the full path.
func isLDH(b []byte) bool {
	for i := 0; i < len(b); {
		l := int(b[i])
		for _, c := range b[i+1 : i+1+l] {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
		i += 1 + l
	}
	return true
}

func equalFoldASCII(a, lower []byte) bool {
	if len(a) != len(lower) {
		return false
	}
	for i, c := range a {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// fastIndex is a fast answer's qtype as an index: 0 for A, 1 for AAAA.
func fastIndex(qtype uint16) int {
	if qtype == dns.TypeA {
		return 0
	}
	return 1
}

// observeFast counts a batch's fast answers (NOERROR, by fastIndex), each
// taking the time since start.
func (m *metrics) observeFast(n [2]int, start time.Time) {
	if m == nil || n == [2]int{} {
		return
	}
	m.fastA.Add(float64(n[0]))
	m.fastAAAA.Add(float64(n[1]))
	d := time.Since(start).Seconds()
	for range n[0] + n[1] {
		m.duration.Observe(d)
	}
}
