// Package dnsstub is the DNS server for the private endpoint: authoritative
// for production-orch-<orch>.<domain> of every served orch, it answers every
// name under those zones (the wildcard) with the endpoint's addresses, the
// apex with SOA and NS, and refuses or forwards everything else. It also
// serves the _acme-challenge TXT records the certificate solver places.
package dnsstub

import "slices"

// DefaultTTL is the answers' TTL when dns.ttl is left out.
const DefaultTTL = 60

// Config is the dns: section of ingress.yaml.
type Config struct {
	Address    string   `yaml:"address"` // empty: no DNS server
	AnswerIPv4 []string `yaml:"answer_ipv4"`
	AnswerIPv6 []string `yaml:"answer_ipv6"`
	TTL        uint32   `yaml:"ttl"`
	KnownOnly  bool     `yaml:"known_only"` // NXDOMAIN for dbids absent from the routing table
	Forward    []string `yaml:"forward"`    // upstream resolvers (ip:port) for names outside the zones
}

// Equal reports whether two configs are the same.
func (c Config) Equal(o Config) bool {
	return c.Address == o.Address && c.TTL == o.TTL && c.KnownOnly == o.KnownOnly &&
		slices.Equal(c.AnswerIPv4, o.AnswerIPv4) && slices.Equal(c.AnswerIPv6, o.AnswerIPv6) &&
		slices.Equal(c.Forward, o.Forward)
}
