// Package dnsstub is the DNS server for the private endpoint: authoritative
// for production-orch-<orch>.<domain> of every served orch, it answers every
// name under those zones (the wildcard) with the endpoint's addresses, the
// apex with SOA and NS, and refuses or forwards everything else. It also
// serves the _acme-challenge TXT records the certificate solver places.
package dnsstub

import (
	"net/netip"
	"slices"
)

// DefaultTTL is the answers' TTL when dns.ttl is left out.
const DefaultTTL = 60

// DefaultMaxTCPConnections is dns.max_tcp_connections when left out: the
// DNS-over-TCP connections open at once; more are closed at accept.
const DefaultMaxTCPConnections = 256

// DefaultAllow is dns.allow when left out: the clients that may use
// forwarding are those on loopback and in the private ranges (RFC 1918,
// RFC 4193). It returns a fresh slice.
func DefaultAllow() []string {
	return []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"}
}

// Config is the dns: section of ingress.yaml.
type Config struct {
	Address    string   `yaml:"address"` // empty: no DNS server
	AnswerIPv4 []string `yaml:"answer_ipv4"`
	AnswerIPv6 []string `yaml:"answer_ipv6"`
	TTL        uint32   `yaml:"ttl"`
	KnownOnly  bool     `yaml:"known_only"` // NXDOMAIN for dbids absent from the routing table
	Forward    []string `yaml:"forward"`    // upstream resolvers (ip:port) for names outside the zones
	// Allow lists the clients (CIDRs) that forwarding answers; others get
	// REFUSED for names outside the zones. Empty: DefaultAllow.
	Allow []string `yaml:"allow"`
	// MaxTCPConnections caps the DNS-over-TCP connections open at once;
	// 0 or less: DefaultMaxTCPConnections.
	MaxTCPConnections int `yaml:"max_tcp_connections"`
}

// Equal reports whether two configs are the same.
func (c Config) Equal(o Config) bool {
	return c.Address == o.Address && c.TTL == o.TTL && c.KnownOnly == o.KnownOnly &&
		slices.Equal(c.AnswerIPv4, o.AnswerIPv4) && slices.Equal(c.AnswerIPv6, o.AnswerIPv6) &&
		slices.Equal(c.Forward, o.Forward) && slices.Equal(c.Allow, o.Allow) &&
		c.MaxTCPConnections == o.MaxTCPConnections
}

// maxTCPConnections is the cap in force: the configured one, or the default.
func (c Config) maxTCPConnections() int {
	if c.MaxTCPConnections <= 0 {
		return DefaultMaxTCPConnections
	}
	return c.MaxTCPConnections
}

// allowPrefixes parses Allow (DefaultAllow when empty); entries that do not
// parse are skipped, internal/config has refused them.
func (c Config) allowPrefixes() []netip.Prefix {
	list := c.Allow
	if len(list) == 0 {
		list = DefaultAllow()
	}
	var out []netip.Prefix
	for _, s := range list {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			continue
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			// Clients are matched unmapped: ::ffff:10.0.0.0/104 is 10.0.0.0/8.
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out
}
