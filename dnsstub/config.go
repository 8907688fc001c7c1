// Package dnsstub is the DNS server for the private endpoint: authoritative
// for production-orch-<orch>.<domain> of every served orch, it answers every
// name under those zones (the wildcard) with the endpoint's addresses, the
// apex with SOA and NS, and refuses or forwards everything else. It also
// serves the _acme-challenge TXT records the certificate solver places.
package dnsstub

// Config is the dns: section of ingress.yaml.
type Config struct {
	Address    string   `yaml:"address"` // empty: no DNS server
	AnswerIPv4 []string `yaml:"answer_ipv4"`
	AnswerIPv6 []string `yaml:"answer_ipv6"`
	TTL        uint32   `yaml:"ttl"`
	KnownOnly  bool     `yaml:"known_only"` // NXDOMAIN for dbids absent from the routing table
	Forward    []string `yaml:"forward"`    // upstream resolvers (ip:port) for names outside the zones
}
