// Package dnsstub answers the wildcard zones production-orch-<orch>.<domain>
// with the private endpoint's addresses. Only its configuration exists so
// far; the server is the DNS stub issue's work.
package dnsstub

// Config is the dns: section of ingress.yaml.
type Config struct {
	Address    string   `yaml:"address"` // empty: no DNS server
	AnswerIPv4 []string `yaml:"answer_ipv4"`
	AnswerIPv6 []string `yaml:"answer_ipv6"`
	TTL        uint32   `yaml:"ttl"`
	KnownOnly  bool     `yaml:"known_only"`
	Forward    []string `yaml:"forward"`
}
